//! RFC 8414 authorization server metadata (and OpenID Connect Discovery 1.0, whose document
//! has the same `issuer` rule): the `issuer` must be identical to the issuer identifier the
//! document was derived from (RFC 8414 section 3.3), which for MCP clients is the entry of
//! the protected resource metadata's `authorization_servers` they followed (BRIEF field
//! case 12). Only the policy knows that entry, and only the answer shows the issuer, so a
//! mismatch is found at request time: it is reported, and replaced when the operator says
//! `fix_issuer: true`.

use serde_json::Value;

use crate::json_doc::JsonDoc;

/// What the filter found in an authorization server's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The `issuer` as stated, cleaned for a log line (it is a URL, never a secret).
    pub stated: Option<String>,
    /// Whether it is identical to the expected issuer.
    pub matches: bool,
    /// The corrected document, when a mismatch was fixed.
    pub fixed: Option<Vec<u8>>,
}

/// Reads `issuer` from a metadata document. `None` when the body is not a JSON object.
pub fn inspect(body: &[u8], expected: &str, fix: bool) -> Option<Inspection> {
    let mut doc = JsonDoc::parse(body)?;
    let stated = doc.string("issuer");
    let matches = stated.as_deref() == Some(expected);
    let fixed =
        (!matches && fix && doc.set("issuer", &Value::from(expected))).then(|| doc.to_bytes());
    Some(Inspection {
        stated: stated.map(|s| for_log(&s)),
        matches,
        fixed,
    })
}

/// At most 200 printable ASCII characters; anything else becomes `?`.
fn for_log(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_issuer_passes() {
        let i = inspect(br#"{"issuer":"https://clerk.example.com","token_endpoint":"https://clerk.example.com/token"}"#, "https://clerk.example.com", true).unwrap();
        assert!(i.matches);
        assert_eq!(i.fixed, None);
    }

    #[test]
    fn another_spelling_is_a_mismatch() {
        // RFC 8414 section 3.3 compares strings: a trailing slash is another issuer.
        let i = inspect(
            br#"{"issuer":"https://example.com/"}"#,
            "https://example.com",
            false,
        )
        .unwrap();
        assert!(!i.matches);
        assert_eq!(i.stated.as_deref(), Some("https://example.com/"));
        assert_eq!(i.fixed, None);
    }

    #[test]
    fn mismatch_is_fixed_only_when_asked() {
        let body = br#"{"issuer":"https://clerk.example.com", "authorization_endpoint":"https://clerk.example.com/authorize"}"#;
        let i = inspect(body, "https://example.com", true).unwrap();
        assert!(!i.matches);
        assert_eq!(i.stated.as_deref(), Some("https://clerk.example.com"));
        assert_eq!(
            String::from_utf8(i.fixed.unwrap()).unwrap(),
            r#"{"issuer":"https://example.com","authorization_endpoint":"https://clerk.example.com/authorize"}"#
        );
        let missing = inspect(br#"{"token_endpoint":"/t"}"#, "https://example.com", true).unwrap();
        assert_eq!(missing.stated, None);
        assert!(missing.fixed.is_some());
    }

    #[test]
    fn odd_issuers_are_logged_safely() {
        let i = inspect(
            "{\"issuer\":\"https://x/\\u0000\u{e9}\"}".as_bytes(),
            "https://x",
            false,
        )
        .unwrap();
        assert_eq!(i.stated.as_deref(), Some("https://x/??"));
        assert!(inspect(br#"{"issuer":1}"#, "https://x", false).is_some_and(|i| i.stated.is_none()));
        assert_eq!(inspect(b"not json", "https://x", true), None);
    }
}
