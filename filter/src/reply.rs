//! Answers the filter sends in place of the provider's: RFC 6749 section 5.2 error responses
//! and the stale-registration page of the authorization endpoint.

use serde_json::json;

/// A complete replacement answer: status, headers to set and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Upstream headers that describe the replaced body or contradict the new answer. They are
/// removed; every other upstream header (request ids, cookies, CORS) is kept.
pub const REPLACED_HEADERS: &[&str] = &[
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "content-md5",
    "content-range",
    "content-disposition",
    "content-language",
    "content-security-policy",
    "etag",
    "last-modified",
    "expires",
    "location",
    "refresh",
    "cache-control",
    "pragma",
    "www-authenticate",
];

/// How the client authenticated at the token endpoint, for the `WWW-Authenticate` scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthScheme {
    /// No `Authorization` header: client_id in the body, or a client assertion.
    None,
    /// `Authorization: Basic` (RFC 6749 section 2.3.1).
    Basic,
    /// Another HTTP authentication scheme, kept as its token.
    Other(String),
}

impl ClientAuthScheme {
    /// Reads the scheme from an `Authorization` header value. The credentials are not kept.
    pub fn from_authorization(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return Self::None;
        };
        let scheme = value.trim_start().split(' ').next().unwrap_or_default();
        if scheme.eq_ignore_ascii_case("basic") {
            Self::Basic
        } else if !scheme.is_empty() && scheme.len() <= 32 && scheme.bytes().all(is_tchar) {
            Self::Other(scheme.to_owned())
        } else {
            Self::None
        }
    }

    /// The challenge scheme: the client's own, else `Basic`, the scheme RFC 6749 requires
    /// servers to support for client authentication.
    fn challenge(&self) -> &str {
        match self {
            Self::Other(s) => s,
            Self::None | Self::Basic => "Basic",
        }
    }
}

/// RFC 9110 section 5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` fits RFC 6749's `error_description` character set (%x20-21 / %x23-5B /
/// %x5D-7E): printable ASCII without `"` and `\`.
pub fn is_error_description(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// Whether `s` fits RFC 6749's `error` character set (%x20-21 / %x23-5B / %x5D-7E, and
/// in practice a short code).
pub fn is_error_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && is_error_description(s) && !s.contains(' ')
}

/// A JSON answer that no cache may keep (RFC 6749 section 5.1, RFC 7591 section 3.2).
fn json_no_store(status: u16, body: Vec<u8>) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("cache-control", "no-store".to_owned()),
            ("pragma", "no-cache".to_owned()),
        ],
        body,
    }
}

fn json_error(status: u16, body: serde_json::Value) -> Reply {
    json_no_store(status, body.to_string().into_bytes())
}

/// RFC 6749 section 5.2 `invalid_client`: 401 with a challenge for the client's scheme. The
/// body is the same for every cause so that answers cannot be used to enumerate clients.
pub fn invalid_client(description: &str, realm: &str, scheme: &ClientAuthScheme) -> Reply {
    let mut reply = json_error(
        401,
        json!({"error": "invalid_client", "error_description": description}),
    );
    reply.headers.push((
        "www-authenticate",
        format!(
            "{} realm=\"{realm}\", error=\"invalid_client\"",
            scheme.challenge()
        ),
    ));
    reply
}

/// The `error_description` of rewritten `invalid_grant` answers.
pub const INVALID_GRANT_DESCRIPTION: &str =
    "The refresh token or authorization code is invalid, expired or revoked.";

/// RFC 6749 section 5.2 `invalid_grant`, for providers that say it in their own words.
pub fn invalid_grant() -> Reply {
    json_error(
        400,
        json!({"error": "invalid_grant", "error_description": INVALID_GRANT_DESCRIPTION}),
    )
}

/// A 2xx token answer that carried an error: the same error as a 400. The code and
/// description are kept only when they fit RFC 6749's character set.
pub fn error_in_success(code: &str, description: Option<&str>) -> Reply {
    let code = if is_error_code(code) {
        code
    } else {
        "invalid_request"
    };
    let body = match description.filter(|d| d.len() <= 512 && is_error_description(d)) {
        Some(d) => json!({"error": code, "error_description": d}),
        None => json!({"error": code}),
    };
    json_error(400, body)
}

/// The `error_description` of `invalid_token` answers for a retired client's token.
pub const RETIRED_TOKEN_DESCRIPTION: &str =
    "The access token belongs to a client registration that has been retired.";

/// RFC 6750 section 3.1 `invalid_token` from the MCP endpoint, naming the RFC 9728 metadata
/// (section 5.1) so the client finds its authorization server, refreshes, and registers again.
pub fn invalid_token(resource_metadata: Option<&str>) -> Reply {
    let mut challenge = format!(
        "Bearer error=\"invalid_token\", error_description=\"{RETIRED_TOKEN_DESCRIPTION}\""
    );
    if let Some(url) = resource_metadata {
        challenge.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    let mut reply = json_error(
        401,
        json!({"error": "invalid_token", "error_description": RETIRED_TOKEN_DESCRIPTION}),
    );
    reply.headers.push(("www-authenticate", challenge));
    reply
}

/// Adds CORS headers to an error answer the filter makes itself (nothing upstream set them):
/// browser MCP clients must be able to read the status, the body and the `WWW-Authenticate`
/// challenge. These answers carry no credentials and no user data.
pub fn with_cors(mut reply: Reply) -> Reply {
    reply
        .headers
        .push(("access-control-allow-origin", "*".to_owned()));
    reply.headers.push((
        "access-control-expose-headers",
        "WWW-Authenticate".to_owned(),
    ));
    reply
}

/// The `error_description` of a refused registration answer.
pub const STALE_REGISTRATION_DESCRIPTION: &str =
    "The authorization server returned a registration that is already expired or older than \
     this server allows (it reuses registrations). Register again with different metadata \
     (for example another client_name) or ask the operator.";

/// RFC 7591 section 3.2.2 error for a registration answer that must not reach the client.
pub fn stale_registration() -> Reply {
    json_error(
        400,
        json!({"error": "invalid_client_metadata", "error_description": STALE_REGISTRATION_DESCRIPTION}),
    )
}

/// A registration answer with a changed body (signed `client_id`, injected expiry).
pub fn registration(status: u16, body: Vec<u8>) -> Reply {
    json_no_store(status, body)
}

/// The page shown instead of a provider's "unknown client" answer at the authorization
/// endpoint. It echoes nothing from the request, redirects nowhere and runs no script
/// (RFC 6749 section 4.1.2.1: never redirect on an invalid client).
pub fn stale_client_page() -> Reply {
    const PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Sign-in needs a new registration</title></head><body>\
<h1>This application's registration has expired</h1>\
<p>The authorization server no longer knows the client that sent you here, \
so it cannot sign you in.</p>\
<p>Close this window and connect again from your application: it will register itself \
anew. If it keeps sending you here, remove the server from the application and add it again.</p>\
</body></html>\n";
    Reply {
        status: 400,
        headers: vec![
            ("content-type", "text/html; charset=utf-8".to_owned()),
            ("cache-control", "no-store".to_owned()),
            ("pragma", "no-cache".to_owned()),
            ("content-security-policy", "default-src 'none'".to_owned()),
            ("x-content-type-options", "nosniff".to_owned()),
            ("referrer-policy", "no-referrer".to_owned()),
        ],
        body: PAGE.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .as_str()
    }

    #[test]
    fn invalid_client_answers_with_the_clients_scheme() {
        let r = invalid_client("gone", "oauth", &ClientAuthScheme::Basic);
        assert_eq!(r.status, 401);
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert_eq!(header(&r, "pragma"), "no-cache");
        assert_eq!(
            header(&r, "www-authenticate"),
            "Basic realm=\"oauth\", error=\"invalid_client\""
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_description"], "gone");
        let other = invalid_client("gone", "oauth", &ClientAuthScheme::Other("DPoP".into()));
        assert!(header(&other, "www-authenticate").starts_with("DPoP "));
    }

    #[test]
    fn scheme_never_keeps_credentials() {
        assert_eq!(
            ClientAuthScheme::from_authorization(Some("Basic c2VjcmV0")),
            ClientAuthScheme::Basic
        );
        assert_eq!(
            ClientAuthScheme::from_authorization(Some("bAsIc x")),
            ClientAuthScheme::Basic
        );
        assert_eq!(
            ClientAuthScheme::from_authorization(Some("Bearer abc.def")),
            ClientAuthScheme::Other("Bearer".into())
        );
        assert_eq!(
            ClientAuthScheme::from_authorization(Some("\"x\" y")),
            ClientAuthScheme::None
        );
        assert_eq!(
            ClientAuthScheme::from_authorization(None),
            ClientAuthScheme::None
        );
    }

    #[test]
    fn error_in_success_keeps_only_clean_text() {
        let r = error_in_success("bad code", Some("x\"y"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, json!({"error": "invalid_request"}));
        let r = error_in_success("slow_down", Some("wait"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"error": "slow_down", "error_description": "wait"})
        );
        assert_eq!(r.status, 400);
    }

    #[test]
    fn stale_page_is_inert() {
        let r = stale_client_page();
        assert_eq!(r.status, 400);
        assert_eq!(header(&r, "content-security-policy"), "default-src 'none'");
        assert!(!r.headers.iter().any(|(n, _)| *n == "location"));
        assert!(!String::from_utf8(r.body).unwrap().contains("<script"));
    }
}
