//! Reading a provider's answer body into the one thing the filter needs: the error it
//! reports. Providers use RFC 6749 section 5.2 JSON, form encoding (GitHub), their own
//! envelopes (Okta `errorCode`, Supabase `error_code`/`msg`), charset variants and gzip.
//! Anything that cannot be read yields `None`, and the answer then passes through untouched.

use std::borrow::Cow;

use crate::json_error;

/// The error a provider reported, as far as the filter cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderError {
    /// `error`, `errorCode`, `error_code` or a string `code`, lower-cased.
    pub code: Option<String>,
    /// `error_description`, `errorSummary`, `msg`, `message` or `detail`.
    pub description: Option<String>,
    /// The body carries an `access_token`: a success, whatever else it says.
    pub has_access_token: bool,
    /// The body is already RFC 6749 section 5.2 JSON: the code is the top-level `error` string.
    pub standard_shape: bool,
    /// The code came only from a generic `code` field, which success envelopes use too
    /// (`{"code":"SUCCESS","data":{...}}`): never enough to call a 2xx an error.
    pub weak_code: bool,
}

impl ProviderError {
    /// Whether the body reports an error at all.
    pub fn is_error(&self) -> bool {
        self.code.is_some()
    }
}

/// How the body is encoded, from `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Json,
    Form,
    /// No content type, or `text/plain`: sniffed from the first bytes.
    Unknown,
    /// HTML, plain text and the rest: never an OAuth error body.
    Other,
}

/// Classifies a `Content-Type` value (`application/json;charset=UTF-8`, `+json` suffixes ...).
pub fn media_kind(content_type: Option<&str>) -> MediaKind {
    let Some(value) = content_type else {
        return MediaKind::Unknown;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("text/json")
        || essence.to_ascii_lowercase().ends_with("+json")
    {
        MediaKind::Json
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        MediaKind::Form
    } else if essence.is_empty() || essence.eq_ignore_ascii_case("text/plain") {
        // Some providers label JSON or form bodies as text/plain: sniffed like a missing type.
        MediaKind::Unknown
    } else {
        MediaKind::Other
    }
}

/// `Content-Encoding` the filter can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCoding {
    Identity,
    Gzip,
    /// HTTP `deflate` is zlib-wrapped (RFC 9110 section 8.4.1.2).
    Deflate,
}

/// Parses `Content-Encoding`; `None` for codings the filter cannot read (br, zstd, stacked).
pub fn content_coding(value: Option<&str>) -> Option<ContentCoding> {
    let Some(value) = value.map(str::trim) else {
        return Some(ContentCoding::Identity);
    };
    if value.is_empty() || value.eq_ignore_ascii_case("identity") {
        Some(ContentCoding::Identity)
    } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
        Some(ContentCoding::Gzip)
    } else if value.eq_ignore_ascii_case("deflate") {
        Some(ContentCoding::Deflate)
    } else {
        None
    }
}

/// Decodes `body`, refusing to produce more than `limit` bytes (a gzip bomb yields `None`).
pub fn decode(coding: ContentCoding, body: &[u8], limit: usize) -> Option<Cow<'_, [u8]>> {
    match coding {
        ContentCoding::Identity => Some(Cow::Borrowed(body)),
        ContentCoding::Gzip => {
            let deflate = gzip_member_data(body)?;
            miniz_oxide::inflate::decompress_to_vec_with_limit(deflate, limit)
                .ok()
                .map(Cow::Owned)
        }
        ContentCoding::Deflate => {
            miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(body, limit)
                .ok()
                .map(Cow::Owned)
        }
    }
}

/// The deflate stream inside a gzip member (RFC 1952 section 2.3), header fields skipped.
fn gzip_member_data(body: &[u8]) -> Option<&[u8]> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;

    if body.len() < 18 || body[0] != 0x1f || body[1] != 0x8b || body[2] != 8 {
        return None;
    }
    let flags = body[3];
    let mut at = 10usize;
    if flags & FEXTRA != 0 {
        let len = usize::from(u16::from_le_bytes([*body.get(at)?, *body.get(at + 1)?]));
        at = at.checked_add(2 + len)?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = body.get(at..)?.iter().position(|&b| b == 0)?;
            at = at.checked_add(end + 1)?;
        }
    }
    if flags & FHCRC != 0 {
        at = at.checked_add(2)?;
    }
    // The 8-byte trailer (CRC32, size) follows the deflate data.
    body.get(at..body.len().checked_sub(8)?)
}

/// Reads the error from a decoded body. `None` when the body is not an error body the filter
/// understands: not JSON or form, malformed, not an object, or with no error field.
pub fn parse(kind: MediaKind, body: &[u8]) -> Option<ProviderError> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match kind {
        MediaKind::Json => parse_json(body),
        MediaKind::Form => parse_form(body),
        MediaKind::Unknown if first == Some(b'{') => parse_json(body),
        MediaKind::Unknown if looks_like_form_error(body) => parse_form(body),
        MediaKind::Unknown => None,
        MediaKind::Other => None,
    }
}

/// A form body that starts with `error=` or has an `&error=` pair, and nothing but form bytes.
fn looks_like_form_error(body: &[u8]) -> bool {
    let form_bytes = body
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"_.~%+=&-*".contains(b));
    form_bytes && (body.starts_with(b"error=") || body.windows(7).any(|w| w == b"&error="))
}

fn parse_json(body: &[u8]) -> Option<ProviderError> {
    // A Latin-1 description (charset=ISO-8859-1) must not hide the code: only the structure
    // and the ASCII codes matter, so undecodable bytes become U+FFFD. serde_json stops at 128
    // levels of nesting with an error, never a stack overflow.
    let text = String::from_utf8_lossy(body);
    let f = json_error::fields(&text)?;
    let first = |slots: &mut [Option<String>]| slots.iter_mut().find_map(Option::take);
    let mut codes = f.codes;
    let mut nested_codes = f.nested_codes;
    let mut descriptions = f.descriptions;
    let mut nested_descriptions = f.nested_descriptions;
    let standard_shape = codes[0].is_some();
    let strong = first(&mut codes).or_else(|| first(&mut nested_codes));
    let weak_code = strong.is_none();
    let code = strong.or(f.weak_code);
    let description = first(&mut descriptions).or_else(|| first(&mut nested_descriptions));
    Some(ProviderError {
        code: code.map(|c| c.to_ascii_lowercase()),
        description,
        has_access_token: f.has_access_token,
        standard_shape,
        weak_code,
    })
}

fn parse_form(body: &[u8]) -> Option<ProviderError> {
    let mut found = ProviderError::default();
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "error" if found.code.is_none() && !value.trim().is_empty() => {
                found.code = Some(value.trim().to_ascii_lowercase());
            }
            "error_description" if found.description.is_none() => {
                found.description = Some(value.into_owned());
            }
            "access_token" => found.has_access_token = true,
            _ => {}
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> ProviderError {
        parse(MediaKind::Json, body.as_bytes()).unwrap()
    }

    #[test]
    fn media_kinds_cover_charset_and_suffix_variants() {
        for ct in [
            "application/json",
            "application/json;charset=UTF-8",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
        ] {
            assert_eq!(media_kind(Some(ct)), MediaKind::Json, "{ct}");
        }
        assert_eq!(
            media_kind(Some("application/x-www-form-urlencoded; charset=utf-8")),
            MediaKind::Form
        );
        assert_eq!(media_kind(Some("text/html")), MediaKind::Other);
        assert_eq!(media_kind(None), MediaKind::Unknown);
    }

    #[test]
    fn rfc6749_body() {
        let e = json(r#"{"error":"invalid_client","error_description":"Client not found"}"#);
        assert_eq!(e.code.as_deref(), Some("invalid_client"));
        assert_eq!(e.description.as_deref(), Some("Client not found"));
        assert!(!e.has_access_token);
    }

    #[test]
    fn okta_and_supabase_envelopes() {
        let okta = json(r#"{"errorCode":"invalid_client","errorSummary":"Invalid value"}"#);
        assert_eq!(okta.code.as_deref(), Some("invalid_client"));
        assert_eq!(okta.description.as_deref(), Some("Invalid value"));
        let sb = json(r#"{"code":400,"error_code":"refresh_token_not_found","msg":"gone"}"#);
        assert_eq!(sb.code.as_deref(), Some("refresh_token_not_found"));
        assert_eq!(sb.description.as_deref(), Some("gone"));
    }

    #[test]
    fn nested_error_object() {
        let e = json(r#"{"error":{"code":"client_not_found","message":"no such client"}}"#);
        assert_eq!(e.code.as_deref(), Some("client_not_found"));
        assert_eq!(e.description.as_deref(), Some("no such client"));
    }

    #[test]
    fn errors_array_envelope() {
        let e = json(r#"{"errors":[{"code":"client_not_found","message":"gone"}]}"#);
        assert_eq!(e.code.as_deref(), Some("client_not_found"));
        assert_eq!(e.description.as_deref(), Some("gone"));
        assert!(!e.standard_shape);
    }

    #[test]
    fn standard_shape_only_for_top_level_error_strings() {
        assert!(json(r#"{"error":"invalid_grant"}"#).standard_shape);
        assert!(!json(r#"{"errorCode":"invalid_grant"}"#).standard_shape);
        let form = parse(MediaKind::Form, b"error=invalid_grant").unwrap();
        assert!(!form.standard_shape);
    }

    #[test]
    fn success_envelopes_are_successes() {
        let e = json(r#"{"code":"SUCCESS","data":{"access_token":"t"}}"#);
        assert!(e.has_access_token);
        assert!(e.weak_code);
        assert!(!json(r#"{"error":"x"}"#).weak_code);
    }

    #[test]
    fn numeric_code_alone_is_not_an_error_code() {
        assert_eq!(json(r#"{"code":400}"#).code, None);
    }

    #[test]
    fn form_body_and_bom() {
        let e = parse(
            MediaKind::Form,
            b"error=incorrect_client_credentials&error_description=The+client_id+is+bad",
        )
        .unwrap();
        assert_eq!(e.code.as_deref(), Some("incorrect_client_credentials"));
        assert_eq!(e.description.as_deref(), Some("The client_id is bad"));
        assert!(parse(MediaKind::Json, b"\xef\xbb\xbf{\"error\":\"x\"}").is_some());
    }

    #[test]
    fn text_plain_and_untyped_bodies_are_sniffed() {
        assert_eq!(
            media_kind(Some("text/plain; charset=utf-8")),
            MediaKind::Unknown
        );
        let form = parse(
            MediaKind::Unknown,
            b"error=invalid_client&error_description=x",
        )
        .unwrap();
        assert_eq!(form.code.as_deref(), Some("invalid_client"));
        let json = parse(MediaKind::Unknown, b" {\"error\":\"invalid_client\"}").unwrap();
        assert_eq!(json.code.as_deref(), Some("invalid_client"));
    }

    #[test]
    fn latin1_description_does_not_hide_the_code() {
        let e = parse(
            MediaKind::Json,
            b"{\"error\":\"invalid_client\",\"msg\":\"Cl\xe9\"}",
        )
        .unwrap();
        assert_eq!(e.code.as_deref(), Some("invalid_client"));
    }

    #[test]
    fn stytch_style_fields() {
        let e = json(
            r#"{"status_code":404,"error_type":"oauth2_client_not_found","error_message":"x"}"#,
        );
        assert_eq!(e.code.as_deref(), Some("oauth2_client_not_found"));
        assert_eq!(e.description.as_deref(), Some("x"));
    }

    #[test]
    fn success_bodies_are_marked() {
        assert!(json(r#"{"access_token":"t","error":"x"}"#).has_access_token);
        let form = parse(MediaKind::Form, b"access_token=t&token_type=bearer").unwrap();
        assert!(form.has_access_token && !form.is_error());
    }

    #[test]
    fn malformed_bodies_yield_nothing() {
        for body in [
            &b"{"[..],
            b"[1,2]",
            b"\xff\xfe",
            b"<html>",
            b"\"error\"",
            &[b'['; 5000],
        ] {
            assert_eq!(parse(MediaKind::Json, body), None);
        }
        assert_eq!(parse(MediaKind::Other, b"{\"error\":\"x\"}"), None);
        assert_eq!(parse(MediaKind::Unknown, b"hello=x"), None);
        assert_eq!(parse(MediaKind::Unknown, b"error=x <html>"), None);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        out.extend([0u8; 8]);
        out
    }

    #[test]
    fn gzip_and_deflate_decode_within_limit() {
        let body = br#"{"error":"invalid_client"}"#;
        let z = gzip(body);
        assert_eq!(
            decode(ContentCoding::Gzip, &z, 1024).unwrap().as_ref(),
            body
        );
        let zlib = miniz_oxide::deflate::compress_to_vec_zlib(body, 6);
        assert_eq!(
            decode(ContentCoding::Deflate, &zlib, 1024)
                .unwrap()
                .as_ref(),
            body
        );
    }

    #[test]
    fn gzip_bomb_and_garbage_are_refused() {
        let bomb = gzip(&vec![b'a'; 1 << 20]);
        assert!(decode(ContentCoding::Gzip, &bomb, 64 * 1024).is_none());
        assert!(decode(ContentCoding::Gzip, b"\x1f\x8b\x08\x04\x00", 1024).is_none());
        assert!(decode(ContentCoding::Gzip, b"not gzip at all, really", 1024).is_none());
    }

    #[test]
    fn content_codings() {
        assert_eq!(content_coding(None), Some(ContentCoding::Identity));
        assert_eq!(content_coding(Some("GZIP")), Some(ContentCoding::Gzip));
        assert_eq!(content_coding(Some("br")), None);
        assert_eq!(content_coding(Some("gzip, br")), None);
    }
}
