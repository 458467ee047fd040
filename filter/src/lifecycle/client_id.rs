//! Finding and replacing the `client_id` a client sends: in a query string or form body
//! (RFC 6749 appendix B encoding) and in HTTP Basic credentials (RFC 6749 section 2.3.1).
//! Everything but the value's own bytes is kept byte for byte.

use std::ops::Range;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;

/// A parameter found in a form-encoded string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Byte range of the (still encoded) value.
    pub value: Range<usize>,
    /// The decoded value.
    pub decoded: String,
}

/// Finds the single `name` parameter. `Err(())` when it appears more than once or cannot be
/// decoded (the request is then left to the provider, unchanged).
#[allow(clippy::result_unit_err)]
pub fn find_param(raw: &[u8], name: &str) -> Result<Option<Found>, ()> {
    let mut found = None;
    let mut start = 0usize;
    for pair in raw.split(|b| *b == b'&') {
        let end = start + pair.len();
        let eq = pair.iter().position(|b| *b == b'=');
        let key = &pair[..eq.unwrap_or(pair.len())];
        if decode(key).as_deref() == Some(name) {
            if found.is_some() {
                return Err(());
            }
            let value = match eq {
                Some(i) => start + i + 1..end,
                None => end..end,
            };
            let decoded = decode(&raw[value.clone()]).ok_or(())?;
            found = Some(Found { value, decoded });
        }
        start = end + 1;
    }
    Ok(found)
}

fn decode(bytes: &[u8]) -> Option<String> {
    let plus: Vec<u8> = bytes
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// `raw` with the bytes in `range` replaced by `value`, form-encoded.
pub fn replace_value(raw: &[u8], range: Range<usize>, value: &str) -> Vec<u8> {
    let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let mut out = Vec::with_capacity(raw.len() + encoded.len());
    out.extend_from_slice(&raw[..range.start]);
    out.extend_from_slice(encoded.as_bytes());
    out.extend_from_slice(&raw[range.end..]);
    out
}

/// The client id in an `Authorization: Basic` value, and a function to rebuild the header
/// with another id and the same secret bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub client_id: String,
    secret_part: Vec<u8>,
}

impl BasicCredentials {
    /// Parses `Basic <base64(urlenc(id):urlenc(secret))>`; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        // Padding is optional in practice: many servers accept unpadded credentials.
        let token = token.trim().trim_end_matches('=');
        let decoded = STANDARD_NO_PAD.decode(token).ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        let client_id = decode(&decoded[..colon])?;
        Some(Self {
            client_id,
            secret_part: decoded[colon..].to_vec(),
        })
    }

    /// The header value with `client_id` in place of the current one.
    pub fn with_client_id(&self, client_id: &str) -> String {
        let mut raw: Vec<u8> = form_urlencoded::byte_serialize(client_id.as_bytes())
            .collect::<String>()
            .into_bytes();
        raw.extend_from_slice(&self.secret_part);
        format!("Basic {}", STANDARD.encode(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_replaces_only_the_value() {
        let body = b"grant_type=refresh_token&client_id=mog1.k.1.YQ.x&refresh_token=a%2Bb";
        let found = find_param(body, "client_id").unwrap().unwrap();
        assert_eq!(found.decoded, "mog1.k.1.YQ.x");
        let out = replace_value(body, found.value, "real id");
        assert_eq!(
            out,
            b"grant_type=refresh_token&client_id=real+id&refresh_token=a%2Bb".to_vec()
        );
    }

    #[test]
    fn encoded_names_empty_values_and_duplicates() {
        assert_eq!(
            find_param(b"client%5Fid=x", "client_id")
                .unwrap()
                .unwrap()
                .decoded,
            "x"
        );
        let empty = find_param(b"a=1&client_id", "client_id").unwrap().unwrap();
        assert_eq!(empty.decoded, "");
        assert_eq!(empty.value, 13..13);
        assert!(find_param(b"client_id=a&client_id=b", "client_id").is_err());
        assert!(find_param(b"client_id=%ff", "client_id").is_err());
        assert_eq!(find_param(b"", "client_id"), Ok(None));
        assert_eq!(find_param(b"&&=&", "client_id"), Ok(None));
    }

    #[test]
    fn basic_credentials_keep_the_secret_bytes() {
        let header = format!("Basic {}", STANDARD.encode(b"mog1.a:s%3Acr:et"));
        let creds = BasicCredentials::parse(&header).unwrap();
        assert_eq!(creds.client_id, "mog1.a");
        let rebuilt = creds.with_client_id("orig/1");
        let raw = STANDARD
            .decode(rebuilt.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(raw, b"orig%2F1:s%3Acr:et".to_vec());
        let unpadded = format!("Basic {}", STANDARD_NO_PAD.encode(b"id:secret"));
        assert_eq!(BasicCredentials::parse(&unpadded).unwrap().client_id, "id");
        assert!(BasicCredentials::parse("Bearer x").is_none());
        assert!(BasicCredentials::parse("Basic !!!").is_none());
        assert!(
            BasicCredentials::parse(&format!("Basic {}", STANDARD.encode("nocolon"))).is_none()
        );
    }
}
