//! One spelling per URL: parsing and normalizing the absolute `http`/`https` URLs that name
//! protected resources (RFC 9728 resource identifiers, RFC 8707 `resource` parameters) and
//! authorization server issuers (RFC 8414).
//!
//! Normalization is RFC 3986 section 6.2.2 and 6.2.3 only: scheme and host to lower case,
//! the scheme's default port removed, percent-encoding of unreserved characters decoded and
//! the remaining escapes upper-cased, and an empty path equal to `/`. A trailing slash on a
//! non-empty path, or the origin standing for a path, are different identifiers: only the
//! policy can declare them aliases. Anything unusual (user info, a fragment, dot segments, a
//! bad escape, spaces or non-ASCII) is not a URL here, so a value carrying it is never
//! rewritten.

use std::fmt;

/// Longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// `http` or `https`; no other scheme names a protected resource here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// RFC 9110 section 4.2: 80 for `http`, 443 for `https`.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// Why a text is not an acceptable absolute URL. The policy compiler turns these into
/// field-named errors; at request time any error means "leave the value alone".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    Empty,
    TooLong,
    /// Space, control character or non-ASCII byte.
    Character,
    /// Not `http://` or `https://`.
    Scheme,
    /// `user:password@` before the host.
    UserInfo,
    Host,
    Port,
    /// A `%` not followed by two hex digits.
    Escape,
    /// A `.` or `..` path segment.
    DotSegment,
    /// RFC 8707 section 2 and RFC 9728 section 1.2: identifiers carry no fragment.
    Fragment,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "is empty",
            Self::TooLong => "is longer than 2048 bytes",
            Self::Character => "contains a space, a control character or a non-ASCII character",
            Self::Scheme => "is not an absolute `https://` (or `http://`) URL",
            Self::UserInfo => "contains user information (`user@`)",
            Self::Host => "has no valid host",
            Self::Port => "has an invalid port",
            Self::Escape => "contains a `%` that is not followed by two hex digits",
            Self::DotSegment => "contains a `.` or `..` path segment",
            Self::Fragment => "contains a fragment (`#`)",
        })
    }
}

/// An absolute `http`/`https` URL in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// Lower case; an IPv6 literal keeps its brackets.
    pub host: String,
    /// `None` when absent, empty or the scheme's default.
    pub port: Option<u16>,
    /// Normalized escapes; empty when the URL has no path.
    pub path: String,
    /// Without the `?`; normalized escapes.
    pub query: Option<String>,
}

/// What two URLs must share to name the same resource: everything but the spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    scheme: Scheme,
    host: String,
    port: Option<u16>,
    /// `/` for an empty path.
    path: String,
    query: Option<String>,
}

impl Url {
    /// Parses and normalizes `text`. Never panics; any doubt is an error.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        if text.is_empty() {
            return Err(UrlError::Empty);
        }
        if text.len() > MAX_URL_BYTES {
            return Err(UrlError::TooLong);
        }
        if !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(UrlError::Character);
        }
        if text.contains('#') {
            return Err(UrlError::Fragment);
        }
        let (scheme_text, rest) = text.split_once("://").ok_or(UrlError::Scheme)?;
        let scheme = if scheme_text.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else if scheme_text.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else {
            return Err(UrlError::Scheme);
        };

        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = split_host_port(authority)?;
        let port = port.filter(|p| *p != scheme.default_port());

        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let path = normalize_component(path, is_path_byte)?;
        if path.split('/').any(|s| s == "." || s == "..") {
            return Err(UrlError::DotSegment);
        }
        let query = match query {
            Some(q) => Some(normalize_component(q, is_query_byte)?),
            None => None,
        };
        Ok(Self {
            scheme,
            host,
            port,
            path,
            query,
        })
    }

    /// `host` or `host:port` (port only when not the default).
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// `scheme://authority`, without a trailing slash.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority())
    }

    /// The path with an empty path read as `/`.
    pub fn path_or_root(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }

    /// Whether the path is empty or `/`: the URL is the origin form.
    pub fn is_origin_form(&self) -> bool {
        self.path.is_empty() || self.path == "/"
    }

    /// The comparison key: same key, same resource.
    pub fn key(&self) -> IdentityKey {
        IdentityKey {
            scheme: self.scheme,
            host: self.host.clone(),
            port: self.port,
            path: self.path_or_root().to_owned(),
            query: self.query.clone(),
        }
    }

    /// Whether the host is a loopback name or address, where plain `http` is acceptable
    /// (development setups; OAuth 2.1 and RFC 8252 make the same exception).
    pub fn is_loopback(&self) -> bool {
        let host = self.host.as_str();
        host == "localhost"
            || host.ends_with(".localhost")
            || host == "[::1]"
            || host
                .strip_prefix("127.")
                .is_some_and(|rest| rest.split('.').count() == 3 && is_ipv4_tail(rest))
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

fn is_ipv4_tail(rest: &str) -> bool {
    rest.split('.')
        .all(|part| !part.is_empty() && part.len() <= 3 && part.parse::<u8>().is_ok())
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), UrlError> {
    let (host, port_text) = if let Some(inner) = authority.strip_prefix('[') {
        let (v6, after) = inner.split_once(']').ok_or(UrlError::Host)?;
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(UrlError::Host);
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::Port)?),
        };
        (format!("[{}]", v6.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        // A trailing dot (`example.com.`) is a valid DNS name but another spelling; refused.
        if host.is_empty() || !host.split('.').all(valid_label) {
            return Err(UrlError::Host);
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port_text {
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| UrlError::Port)?)
        }
        Some(_) => return Err(UrlError::Port),
    };
    if port == Some(0) {
        return Err(UrlError::Port);
    }
    Ok((host, port))
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// RFC 3986 pchar and `/` (the `%` is handled by the caller).
fn is_path_byte(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*+,;=:@/".contains(&b)
}

fn is_query_byte(b: u8) -> bool {
    is_path_byte(b) || b == b'?'
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 section 6.2.2.1 and 6.2.2.2: decode escaped unreserved characters, upper-case
/// the hex digits of the others; refuse characters the component may not hold.
fn normalize_component(text: &str, allowed: fn(u8) -> bool) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(UrlError::Escape);
            };
            let value = hi * 16 + lo;
            if is_unreserved(value) {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(hi)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(lo)]));
            }
            i += 3;
            continue;
        }
        if !allowed(b) {
            return Err(UrlError::Character);
        }
        out.push(char::from(b));
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        Url::parse(s).unwrap().to_string()
    }

    #[test]
    fn spellings_of_one_url_share_a_key() {
        let canonical = Url::parse("https://api.example.com/mcp").unwrap();
        for spelling in [
            "https://api.example.com/mcp",
            "HTTPS://API.Example.COM/mcp",
            "https://api.example.com:443/mcp",
            "https://api.example.com:/mcp",
            "https://api.example.com/%6Dcp",
            "https://api.example.com/%6dcp",
        ] {
            assert_eq!(
                Url::parse(spelling).unwrap().key(),
                canonical.key(),
                "{spelling}"
            );
        }
        assert_eq!(
            n("HTTPS://API.example.com:443/mcp"),
            "https://api.example.com/mcp"
        );
    }

    #[test]
    fn trailing_slash_and_root_are_other_identifiers() {
        let key = |s| Url::parse(s).unwrap().key();
        assert_ne!(key("https://h/mcp"), key("https://h/mcp/"));
        assert_ne!(key("https://h/mcp"), key("https://h"));
        assert_ne!(key("https://h/mcp"), key("https://h/MCP"));
        assert_ne!(key("https://h/mcp"), key("http://h/mcp"));
        assert_ne!(key("https://h/mcp"), key("https://h:8443/mcp"));
        // An empty path and `/` are the same (RFC 3986 section 6.2.3).
        assert_eq!(key("https://h"), key("https://H:443/"));
        assert_eq!(n("https://h"), "https://h");
        assert_eq!(n("https://h/"), "https://h/");
    }

    #[test]
    fn escapes_are_normalized_not_decoded_when_reserved() {
        assert_eq!(n("https://h/a%2fb"), "https://h/a%2Fb");
        assert_eq!(n("https://h/a?x=%7e&y=%2f"), "https://h/a?x=~&y=%2F");
        assert_ne!(
            Url::parse("https://h/a%2Fb").unwrap().key(),
            Url::parse("https://h/a/b").unwrap().key()
        );
    }

    #[test]
    fn hosts_and_ports() {
        let u = Url::parse("http://[::1]:8080/mcp").unwrap();
        assert_eq!(u.authority(), "[::1]:8080");
        assert!(u.is_loopback());
        assert!(Url::parse("http://localhost:8000/").unwrap().is_loopback());
        assert!(Url::parse("http://127.0.0.1/").unwrap().is_loopback());
        assert!(!Url::parse("http://127.0.0.1.example.com/")
            .unwrap()
            .is_loopback());
        assert!(!Url::parse("http://localhost.example.com/")
            .unwrap()
            .is_loopback());
        assert!(!Url::parse("https://example.com/").unwrap().is_loopback());
        assert_eq!(Url::parse("http://h:80").unwrap().origin(), "http://h");
        assert_eq!(Url::parse("https://h:80").unwrap().origin(), "https://h:80");
    }

    #[test]
    fn doubtful_urls_are_refused() {
        let cases = [
            ("", UrlError::Empty),
            ("/mcp", UrlError::Scheme),
            ("api.example.com/mcp", UrlError::Scheme),
            ("ftp://h/", UrlError::Scheme),
            ("https://u:p@h/", UrlError::UserInfo),
            ("https:///mcp", UrlError::Host),
            ("https://h:99999/", UrlError::Port),
            ("https://h:0/", UrlError::Port),
            ("https://h:x/", UrlError::Port),
            ("https://h/a%zz", UrlError::Escape),
            ("https://h/a%2", UrlError::Escape),
            ("https://h/a/../b", UrlError::DotSegment),
            ("https://h/a/%2E/b", UrlError::DotSegment),
            ("https://h/mcp#x", UrlError::Fragment),
            ("https://h/m cp", UrlError::Character),
            ("https://h/m\u{e9}", UrlError::Character),
            ("https://h/a\"b", UrlError::Character),
            ("https://h\\@evil/", UrlError::UserInfo),
            ("https://[zz]/", UrlError::Host),
            ("https://h..x/", UrlError::Host),
        ];
        for (text, want) in cases {
            assert_eq!(Url::parse(text), Err(want), "{text}");
        }
        assert_eq!(
            Url::parse(&format!("https://h/{}", "a".repeat(3000))),
            Err(UrlError::TooLong)
        );
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A cheap deterministic sweep over short inputs built from URL-ish bytes.
        let alphabet = b"h:/%?#[]@.1aA-";
        let mut seed: u32 = 12345;
        for _ in 0..20_000 {
            let mut s = String::from("https://");
            for _ in 0..(seed % 12) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                s.push(char::from(alphabet[(seed >> 16) as usize % alphabet.len()]));
            }
            let _ = Url::parse(&s).map(|u| u.to_string());
            seed = seed.wrapping_add(7);
        }
    }
}
