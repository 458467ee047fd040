//! The MCP endpoint side: reading an access token's issue time, unverified. Unverified claims
//! may only deny (answer `invalid_token` so the client refreshes), never allow or route: the
//! MCP server still validates every token it accepts.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// Largest JWT payload segment read (Envoy's default header limit is 60 KiB).
const MAX_PAYLOAD: usize = 16 * 1024;

/// The `iat` of a JWT bearer token issued to a client (`client_id`, `azp` or `cid` claim).
/// `None` for opaque tokens, malformed tokens and tokens without a client claim.
pub fn client_token_issued_at(authorization: &str) -> Option<i64> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut parts = token.trim().split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let Value::Object(claims) = serde_json::from_slice::<Value>(&bytes).ok()? else {
        return None;
    };
    let has_client = ["client_id", "azp", "cid"]
        .iter()
        .any(|k| matches!(claims.get(*k), Some(Value::String(s)) if !s.is_empty()));
    if !has_client {
        return None;
    }
    claims.get("iat")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "Bearer eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn reads_iat_of_client_tokens() {
        assert_eq!(
            client_token_issued_at(&jwt(r#"{"client_id":"c","iat":5}"#)),
            Some(5)
        );
        assert_eq!(
            client_token_issued_at(&jwt(r#"{"azp":"c","iat":6}"#)),
            Some(6)
        );
        assert_eq!(
            client_token_issued_at(&jwt(r#"{"cid":"c","iat":7}"#)),
            Some(7)
        );
    }

    #[test]
    fn everything_else_is_opaque() {
        for value in [
            jwt(r#"{"sub":"u","iat":5}"#),
            jwt(r#"{"client_id":"c"}"#),
            jwt(r#"{"client_id":"c","iat":"5"}"#),
            jwt("[1]"),
            "Bearer opaque-token".to_owned(),
            "Bearer a.b".to_owned(),
            "Bearer a.%%%.c".to_owned(),
            "Basic YTpi".to_owned(),
            "Bearer".to_owned(),
            format!("Bearer a.{}.c", "A".repeat(MAX_PAYLOAD + 1)),
        ] {
            assert_eq!(client_token_issued_at(&value), None, "{value}");
        }
    }
}
