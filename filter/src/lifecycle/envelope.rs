//! The signed `client_id` envelope: how every Envoy replica knows when a client registered,
//! with no storage and no coordination.
//!
//! When a registration passes, the provider's `client_id` is wrapped as
//! `mog1.<key id>.<issued at>.<base64url client_id>.<tag>`, where the tag is the first 16 bytes
//! of HMAC-SHA256 over everything before it. The client stores and sends the envelope; the
//! filter verifies and unwraps it on every request to the provider, which only ever sees its
//! own `client_id`. Any replica with the same key reaches the same verdict.
//!
//! Trade-offs: the `client_id` the client shows is longer and opaque to operators (the log
//! prints neither); clients registered before signing was enabled carry plain ids whose age is
//! unknown (they pass, unless `retire_unsigned` is set); losing every key retires every signed
//! client at once, which is safe (they register again) but noisy.
//!
//! Key rotation: put the new key first (it signs) and keep the old ones after it (they still
//! verify). Remove an old key once `client_max_age` has passed since the rotation, or accept
//! that clients signed with it register again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "mog1";
const TAG_BYTES: usize = 16;
/// Longest provider `client_id` the envelope wraps; longer ones pass unsigned.
const MAX_CLIENT_ID: usize = 1024;

/// One HMAC key with its identifier.
#[derive(Clone)]
pub struct SigningKey {
    pub id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, [redacted])", self.id)
    }
}

impl SigningKey {
    pub fn new(id: String, secret: Vec<u8>) -> Self {
        Self { id, secret }
    }
}

/// A verified envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped {
    pub client_id: String,
    pub issued_at: i64,
}

/// Why an envelope was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Looks like an envelope but is malformed.
    Malformed,
    /// Signed with a key the policy no longer holds.
    UnknownKey,
    /// The tag does not verify: forged or corrupted.
    BadTag,
}

/// Signs and verifies envelopes with the policy's keys; the first key signs.
#[derive(Debug, Clone)]
pub struct Signer {
    keys: Vec<SigningKey>,
}

impl Signer {
    /// `keys` must not be empty (the policy compiler guarantees it).
    pub fn new(keys: Vec<SigningKey>) -> Self {
        Self { keys }
    }

    /// Whether `client_id` is in envelope form (it may still fail to verify).
    pub fn is_envelope(client_id: &str) -> bool {
        client_id.starts_with("mog1.")
    }

    /// Wraps a provider `client_id` issued at `issued_at`. `None` when it cannot be wrapped.
    pub fn wrap(&self, client_id: &str, issued_at: i64) -> Option<String> {
        let key = self.keys.first()?;
        if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID || Self::is_envelope(client_id) {
            return None;
        }
        let signed = format!(
            "{PREFIX}.{}.{issued_at}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(client_id)
        );
        let tag = tag(&key.secret, &signed)?;
        Some(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Verifies and opens an envelope. The tag is checked in constant time.
    pub fn unwrap(&self, envelope: &str) -> Result<Unwrapped, EnvelopeError> {
        let (signed, tag_text) = envelope.rsplit_once('.').ok_or(EnvelopeError::Malformed)?;
        let mut parts = signed.split('.');
        let (Some(PREFIX), Some(kid), Some(iat), Some(id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(EnvelopeError::Malformed);
        };
        let issued_at: i64 = iat.parse().map_err(|_| EnvelopeError::Malformed)?;
        let tag_bytes = URL_SAFE_NO_PAD
            .decode(tag_text)
            .map_err(|_| EnvelopeError::Malformed)?;
        if tag_bytes.len() != TAG_BYTES {
            return Err(EnvelopeError::Malformed);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or(EnvelopeError::UnknownKey)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&key.secret).map_err(|_| EnvelopeError::BadTag)?;
        mac.update(signed.as_bytes());
        mac.verify_truncated_left(&tag_bytes)
            .map_err(|_| EnvelopeError::BadTag)?;
        let raw = URL_SAFE_NO_PAD
            .decode(id)
            .map_err(|_| EnvelopeError::Malformed)?;
        let client_id = String::from_utf8(raw).map_err(|_| EnvelopeError::Malformed)?;
        Ok(Unwrapped {
            client_id,
            issued_at,
        })
    }
}

fn tag(secret: &[u8], signed: &str) -> Option<Vec<u8>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(signed.as_bytes());
    Some(mac.finalize().into_bytes()[..TAG_BYTES].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(ids: &[(&str, u8)]) -> Signer {
        Signer::new(
            ids.iter()
                .map(|(id, b)| SigningKey::new((*id).into(), vec![*b; 32]))
                .collect(),
        )
    }

    #[test]
    fn round_trip_keeps_id_and_time() {
        let s = signer(&[("k1", 1)]);
        let env = s.wrap("abc-123_XYZ", 1_700_000_000).unwrap();
        assert!(env.starts_with("mog1.k1.1700000000."));
        assert!(env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
        assert_eq!(
            s.unwrap(&env),
            Ok(Unwrapped {
                client_id: "abc-123_XYZ".into(),
                issued_at: 1_700_000_000
            })
        );
    }

    #[test]
    fn two_replicas_with_one_key_agree() {
        let a = signer(&[("k1", 7)]);
        let b = signer(&[("k1", 7)]);
        let env = a.wrap("client", 42).unwrap();
        assert_eq!(b.unwrap(&env).unwrap().issued_at, 42);
    }

    #[test]
    fn tampering_is_detected() {
        let s = signer(&[("k1", 1)]);
        let env = s.wrap("client", 1000).unwrap();
        let older = env.replacen(".1000.", ".1.", 1);
        assert_eq!(s.unwrap(&older), Err(EnvelopeError::BadTag));
        let other_key = signer(&[("k1", 2)]);
        assert_eq!(other_key.unwrap(&env), Err(EnvelopeError::BadTag));
        for bad in [
            "mog1.",
            "mog1.k1.x.y.z",
            "mog1.k1.1.Y2xpZW50.AAAA",
            "mog1.a.b.c.d.e.f",
        ] {
            assert!(s.unwrap(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rotation_old_keys_verify_new_key_signs() {
        let old = signer(&[("k1", 1)]);
        let env_old = old.wrap("c", 5).unwrap();
        let rotated = signer(&[("k2", 2), ("k1", 1)]);
        assert!(rotated.unwrap(&env_old).is_ok());
        assert!(rotated.wrap("c", 5).unwrap().starts_with("mog1.k2."));
        let dropped = signer(&[("k2", 2)]);
        assert_eq!(dropped.unwrap(&env_old), Err(EnvelopeError::UnknownKey));
    }

    #[test]
    fn envelopes_are_not_wrapped_twice() {
        let s = signer(&[("k1", 1)]);
        let env = s.wrap("c", 1).unwrap();
        assert!(s.wrap(&env, 2).is_none());
        assert!(s.wrap("", 2).is_none());
        assert!(format!("{:?}", s).contains("[redacted]"));
    }
}
