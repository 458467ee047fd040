//! RFC 9728 OAuth 2.0 Protected Resource Metadata: the documents the filter serves or
//! corrects, and the `WWW-Authenticate` challenge that points clients at them.
//!
//! Section 3.3: a document's `resource` is the identifier its URL was derived from, so the
//! path-inserted document `/.well-known/oauth-protected-resource/mcp` names
//! `https://host/mcp` and the root document names the origin `https://host`. Section 5.1:
//! the MCP endpoint's 401 carries `resource_metadata="<document URL>"`, which clients read
//! only from a `Bearer` challenge (RFC 6750 section 3).

use serde_json::Value;

use crate::json_doc::JsonDoc;
use crate::policy::resources::{Metadata, Resource};
use crate::reply::Reply;

/// The document for `resource.identifiers[identifier]`, from the policy (`mode: serve`).
pub fn document(resource: &Resource, identifier: usize) -> Option<Vec<u8>> {
    let id = resource.identifiers.get(identifier)?;
    let mut members: Vec<(&str, Value)> = vec![
        ("resource", Value::from(id.url.clone())),
        (
            "authorization_servers",
            Value::from(resource.authorization_servers.clone()),
        ),
    ];
    if let Metadata::Serve { members: extra } = &resource.metadata {
        members.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    }
    let mut out = String::from("{");
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name).ok()?);
        out.push(':');
        out.push_str(&serde_json::to_string(value).ok()?);
    }
    out.push('}');
    Some(out.into_bytes())
}

/// The `200` answer of a served document. `allow_origin` is the CORS value for this request.
pub fn served(
    resource: &Resource,
    identifier: usize,
    allow_origin: Option<String>,
) -> Option<Reply> {
    let body = document(resource, identifier)?;
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("cache-control", resource.cache_control.clone()),
        ("x-content-type-options", "nosniff".to_owned()),
    ];
    headers.extend(cors_headers(resource, allow_origin));
    Some(Reply {
        status: 200,
        headers,
        body,
    })
}

/// `Access-Control-Allow-Origin` (and `Vary: Origin` when it depends on the request).
pub fn cors_headers(
    resource: &Resource,
    allow_origin: Option<String>,
) -> Vec<(&'static str, String)> {
    match allow_origin {
        Some(origin) if origin == "*" => vec![("access-control-allow-origin", origin)],
        Some(origin) => vec![
            ("access-control-allow-origin", origin),
            ("vary", "Origin".to_owned()),
        ],
        None if resource.cors.is_some() => vec![("vary", "Origin".to_owned())],
        None => Vec::new(),
    }
}

/// The upstream's document with `resource` and `authorization_servers` set (`mode:
/// correct`). `None` when the body is not a JSON object; `Some(None)` when it was already
/// right, so its bytes can stay as they are.
pub fn correct(body: &[u8], resource_url: &str, servers: &[String]) -> Option<Option<Vec<u8>>> {
    let mut doc = JsonDoc::parse(body)?;
    let a = doc.set("resource", &Value::from(resource_url));
    let b = doc.set("authorization_servers", &Value::from(servers.to_vec()));
    Some((a || b).then(|| doc.to_bytes()))
}

// ---------------------------------------------------------------------------------------
// WWW-Authenticate (RFC 9110 section 11.6.1).

/// The parameters a challenge made from another scheme's keeps.
const CARRIED: [&str; 5] = ["realm", "scope", "error", "error_description", "error_uri"];
/// Longest `WWW-Authenticate` the filter rewrites.
const MAX_CHALLENGE_BYTES: usize = 8 * 1024;

#[derive(Debug)]
struct Challenge<'a> {
    scheme: &'a str,
    /// The challenge as sent: scheme and parameters.
    raw: &'a str,
    /// Each parameter's name (lower case) and `name=value` text as sent.
    params: Vec<(String, &'a str)>,
    token68: bool,
}

/// The new `WWW-Authenticate` of a 401 from the MCP endpoint, or `None` to keep it.
///
/// `values` are the response's `WWW-Authenticate` headers; `None` means one was not text,
/// which is kept as it came. No challenge: `Bearer resource_metadata="…"`. A `Bearer`
/// challenge without `resource_metadata` gets it appended. Only other schemes: a `Bearer`
/// challenge with their `realm`, `scope` and `error*` parameters goes first, the original
/// challenges follow. Unparseable values and a `Bearer` that already names a document are
/// kept.
pub fn fix_challenge(values: Option<&[String]>, document_url: &str) -> Option<String> {
    let values = values?;
    let param = format!("resource_metadata=\"{document_url}\"");
    let joined = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    if joined.len() > MAX_CHALLENGE_BYTES {
        return None;
    }
    let challenges = parse_challenges(&joined)?;
    if challenges.is_empty() {
        return Some(format!("Bearer {param}"));
    }
    let bearer = challenges
        .iter()
        .position(|c| c.scheme.eq_ignore_ascii_case("bearer"));
    let mut out = match bearer {
        Some(at) => {
            let b = challenges.get(at)?;
            if b.token68 || b.params.iter().any(|(n, _)| n == "resource_metadata") {
                return None;
            }
            if b.params.is_empty() {
                format!("{} {param}", b.raw)
            } else {
                format!("{}, {param}", b.raw)
            }
        }
        None => {
            let mut carried: Vec<&str> = Vec::new();
            for name in CARRIED {
                if let Some((_, raw)) = challenges
                    .iter()
                    .flat_map(|c| c.params.iter())
                    .find(|(n, _)| n == name)
                {
                    carried.push(raw);
                }
            }
            carried.push(&param);
            format!("Bearer {}", carried.join(", "))
        }
    };
    for (i, c) in challenges.iter().enumerate() {
        if Some(i) != bearer {
            out.push_str(", ");
            out.push_str(c.raw);
        }
    }
    Some(out)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        (self.at > start)
            .then(|| self.text.get(start..self.at))
            .flatten()
    }

    fn quoted(&mut self) -> Option<()> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.at += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
    }

    fn at_end_of_item(&self) -> bool {
        matches!(self.peek(), None | Some(b','))
    }
}

/// Splits a challenge list into challenges. `None` when the text is not one.
fn parse_challenges(text: &str) -> Option<Vec<Challenge<'_>>> {
    let mut c = Cursor { text, at: 0 };
    let mut out = Vec::new();
    loop {
        c.skip_list_separators();
        if c.peek().is_none() {
            return Some(out);
        }
        let start = c.at;
        let scheme = c.token()?;
        let mut end = c.at;
        let mut params = Vec::new();
        let mut token68 = false;
        if !c.at_end_of_item() {
            if !matches!(c.peek(), Some(b' ' | b'\t')) {
                return None;
            }
            c.skip_ows();
            // token68: `Negotiate abc/def==`.
            let save = c.at;
            while c.peek().is_some_and(is_token68_char) {
                c.at += 1;
            }
            let body_end = c.at;
            while c.peek() == Some(b'=') {
                c.at += 1;
            }
            let t68_end = c.at;
            c.skip_ows();
            if body_end > save && c.at_end_of_item() {
                token68 = true;
                end = t68_end;
            } else {
                c.at = save;
                // auth-params, until a token not followed by `=` starts the next challenge.
                loop {
                    let param_start = c.at;
                    let name = c.token()?;
                    c.skip_ows();
                    if c.peek() != Some(b'=') {
                        if params.is_empty() {
                            return None;
                        }
                        c.at = param_start;
                        break;
                    }
                    c.at += 1;
                    c.skip_ows();
                    if c.peek() == Some(b'"') {
                        c.quoted()?;
                    } else {
                        c.token()?;
                    }
                    params.push((name.to_ascii_lowercase(), text.get(param_start..c.at)?));
                    end = c.at;
                    c.skip_ows();
                    if c.peek().is_none() {
                        break;
                    }
                    if c.peek() != Some(b',') {
                        return None;
                    }
                    c.skip_list_separators();
                    if c.peek().is_none() {
                        break;
                    }
                }
            }
        }
        out.push(Challenge {
            scheme,
            raw: text.get(start..end)?,
            params,
            token68,
        });
    }
}

/// `Access-Control-Expose-Headers` with `WWW-Authenticate` added, or `None` when it is
/// already exposed.
pub fn expose_challenge(existing: Option<&str>) -> Option<String> {
    match existing.map(str::trim).filter(|e| !e.is_empty()) {
        None => Some("WWW-Authenticate".to_owned()),
        Some(e)
            if e.split(',')
                .map(str::trim)
                .any(|h| h == "*" || h.eq_ignore_ascii_case("www-authenticate")) =>
        {
            None
        }
        Some(e) => Some(format!("{e}, WWW-Authenticate")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    const URL: &str = "https://h/.well-known/oauth-protected-resource/mcp";

    fn fix(values: &[&str]) -> Option<String> {
        let owned: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        fix_challenge(Some(&owned), URL)
    }

    #[test]
    fn missing_challenge_gets_one() {
        assert_eq!(
            fix(&[]).unwrap(),
            format!("Bearer resource_metadata=\"{URL}\"")
        );
        assert_eq!(
            fix(&[""]).unwrap(),
            format!("Bearer resource_metadata=\"{URL}\"")
        );
    }

    #[test]
    fn bearer_without_document_keeps_its_parameters() {
        assert_eq!(
            fix(&["Bearer"]).unwrap(),
            format!("Bearer resource_metadata=\"{URL}\"")
        );
        assert_eq!(
            fix(&[r#"Bearer realm="mcp", error="invalid_token", error_description="expired""#])
                .unwrap(),
            format!(
                r#"Bearer realm="mcp", error="invalid_token", error_description="expired", resource_metadata="{URL}""#
            )
        );
        assert_eq!(
            fix(&["bearer error=invalid_token"]).unwrap(),
            format!(r#"bearer error=invalid_token, resource_metadata="{URL}""#)
        );
    }

    #[test]
    fn bearer_goes_first_and_other_challenges_stay() {
        assert_eq!(
            fix(&[r#"Basic realm="mcp""#, r#"Bearer scope="a b""#]).unwrap(),
            format!(r#"Bearer scope="a b", resource_metadata="{URL}", Basic realm="mcp""#)
        );
        assert_eq!(
            fix(&[r#"Basic realm="mcp", error="invalid_token", charset="UTF-8""#]).unwrap(),
            format!(
                r#"Bearer realm="mcp", error="invalid_token", resource_metadata="{URL}", Basic realm="mcp", error="invalid_token", charset="UTF-8""#
            )
        );
        assert_eq!(
            fix(&["Negotiate abc/def==, Basic realm=x"]).unwrap(),
            format!(
                r#"Bearer realm=x, resource_metadata="{URL}", Negotiate abc/def==, Basic realm=x"#
            )
        );
    }

    #[test]
    fn challenges_with_a_document_or_unparseable_are_kept() {
        assert_eq!(fix(&[r#"Bearer resource_metadata="https://x/y""#]), None);
        assert_eq!(fix(&[r#"Bearer Resource_Metadata="https://x/y""#]), None);
        for bad in [
            r#"Bearer realm="unterminated"#,
            "Bearer realm=",
            "Bearer =x",
            "Bearer a b c",
            "(garbage)",
            "Bearer realm=\"x\" junk",
        ] {
            assert_eq!(fix(&[bad]), None, "{bad}");
        }
        assert_eq!(fix_challenge(None, URL), None);
        assert_eq!(
            fix(&[&format!("Bearer realm=\"{}\"", "x".repeat(9000))]),
            None
        );
    }

    #[test]
    fn quoted_strings_may_hold_commas_and_escapes() {
        assert_eq!(
            fix(&[r#"Bearer error_description="a, b \" c", error="invalid_token""#]).unwrap(),
            format!(
                r#"Bearer error_description="a, b \" c", error="invalid_token", resource_metadata="{URL}""#
            )
        );
    }

    #[test]
    fn never_panics_on_arbitrary_challenges() {
        let alphabet = b"Bearer Basic resource_metadata=\",\\ \t=a/+";
        let mut seed: u32 = 99;
        for _ in 0..30_000 {
            let mut s = String::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                s.push(char::from(alphabet[(seed >> 16) as usize % alphabet.len()]));
            }
            if let Some(out) = fix(&[&s]) {
                // Whatever was made starts with a Bearer challenge naming the document.
                assert!(
                    out.to_ascii_lowercase().starts_with("bearer"),
                    "{s:?} -> {out:?}"
                );
                assert!(out.contains(URL), "{s:?} -> {out:?}");
            }
            seed = seed.wrapping_add(11);
        }
    }

    #[test]
    fn expose_header() {
        assert_eq!(expose_challenge(None).as_deref(), Some("WWW-Authenticate"));
        assert_eq!(
            expose_challenge(Some("Mcp-Session-Id")).as_deref(),
            Some("Mcp-Session-Id, WWW-Authenticate")
        );
        assert_eq!(
            expose_challenge(Some("mcp-session-id, www-authenticate")),
            None
        );
        assert_eq!(expose_challenge(Some("*")), None);
    }

    fn policy(mode: &str) -> Policy {
        let text = format!(
            "version: 1\nproviders: [{{name: a}}]\nresources:\n  - resource: https://api.example.com/mcp\n    aliases: [https://api.example.com]\n    authorization_servers: [https://auth.example.com, https://b.example]\n    metadata: {mode}\n    max_age: 600\n"
        );
        Policy::from_bytes(text.as_bytes()).unwrap()
    }

    #[test]
    fn served_documents_name_their_identifier() {
        let p = policy("{mode: serve, scopes_supported: [mcp, 'mcp:read'], resource_name: Demo}");
        let r = &p.resources.list[0];
        let doc: Value = serde_json::from_slice(&document(r, 0).unwrap()).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "resource": "https://api.example.com/mcp",
                "authorization_servers": ["https://auth.example.com", "https://b.example"],
                "scopes_supported": ["mcp", "mcp:read"],
                "resource_name": "Demo"
            })
        );
        let root: Value = serde_json::from_slice(&document(r, 1).unwrap()).unwrap();
        assert_eq!(root["resource"], "https://api.example.com");
        assert!(document(r, 2).is_none());
        let reply = served(r, 0, None).unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply
            .headers
            .contains(&("cache-control", "public, max-age=600".to_owned())));
        assert!(!reply
            .headers
            .iter()
            .any(|(n, _)| n.starts_with("access-control")));
    }

    #[test]
    fn correction_changes_only_the_two_members() {
        let upstream = br#"{"resource":"http://localhost:8000/","authorization_servers":["https://example.com"],"scopes_supported":["x"], "bearer_methods_supported" : ["header"]}"#;
        let fixed = correct(
            upstream,
            "https://api.example.com/mcp",
            &["https://auth.example.com".to_owned()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(fixed).unwrap(),
            r#"{"resource":"https://api.example.com/mcp","authorization_servers":["https://auth.example.com"],"scopes_supported":["x"],"bearer_methods_supported":["header"]}"#
        );
        let right = br#"{"resource":"https://api.example.com/mcp", "authorization_servers":["https://auth.example.com"]}"#;
        assert_eq!(
            correct(
                right,
                "https://api.example.com/mcp",
                &["https://auth.example.com".to_owned()]
            ),
            Some(None)
        );
        assert_eq!(correct(b"<html>", "x", &[]), None);
        assert_eq!(correct(b"[]", "x", &[]), None);
    }
}
