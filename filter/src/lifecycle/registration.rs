//! Checking `/register` answers (RFC 7591 section 3.2.1). A provider that deduplicates
//! registrations can hand back an old or expired client as if it were new; such an answer must
//! not reach the client as a fresh registration. Fresh ones get the signed envelope and, when
//! asked, a `client_secret_expires_at` that matches the policy.

use serde_json::{Map, Value};

use super::{Lifecycle, Retirement};

/// What to do with a registration answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a registration the filter understands, or nothing to change.
    Unchanged,
    /// The same registration with the envelope and/or expiry set; `signed` tells which.
    Rewritten { body: Vec<u8>, signed: bool },
    /// Already expired, or older than the policy allows.
    Refused(Stale),
}

/// Why a registration answer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// `client_secret_expires_at` is in the past.
    Expired,
    Retired(Retirement),
    /// Plain client_ids are refused and this registration could not be signed.
    Unsigned,
}

impl Stale {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "client_secret_expires_at",
            Self::Retired(r) => r.as_str(),
            Self::Unsigned => "unsigned",
        }
    }
}

/// Checks a 2xx registration answer body at `now`.
pub fn check(lifecycle: &Lifecycle, body: &[u8], now: i64) -> Verdict {
    let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Unchanged;
    };
    let Some(client_id) = doc
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Verdict::Unchanged;
    };
    let issued_at = doc
        .get("client_id_issued_at")
        .and_then(seconds)
        .map_or(now, |t| plausible_issued_at(t, now));
    let expires_at = doc
        .get("client_secret_expires_at")
        .and_then(seconds)
        .unwrap_or(0);
    if expires_at > 0 && expires_at <= now {
        return Verdict::Refused(Stale::Expired);
    }
    if let Some(retirement) = lifecycle.retirement(issued_at, now) {
        return Verdict::Refused(Stale::Retired(retirement));
    }

    let mut changed = false;
    let mut signed = false;
    if let Some(envelope) = lifecycle
        .signer
        .as_ref()
        .and_then(|s| s.wrap(&client_id, issued_at))
    {
        doc.insert("client_id".to_owned(), Value::String(envelope));
        changed = true;
        signed = true;
    }
    if let (true, Some(max_age)) = (lifecycle.inject_expiry, lifecycle.max_age) {
        let policy_expiry = issued_at.saturating_add(i64::try_from(max_age).unwrap_or(i64::MAX));
        let expiry = if expires_at > 0 {
            expires_at.min(policy_expiry)
        } else {
            policy_expiry
        };
        set_number(&mut doc, "client_secret_expires_at", expiry);
        if !doc.contains_key("client_id_issued_at") {
            set_number(&mut doc, "client_id_issued_at", issued_at);
        }
        changed = true;
    }
    if !changed {
        return Verdict::Unchanged;
    }
    match serde_json::to_vec(&Value::Object(doc)) {
        Ok(body) => Verdict::Rewritten { body, signed },
        Err(_) => Verdict::Unchanged,
    }
}

/// RFC 7591 times are seconds, as JSON numbers; some servers send floats or strings.
fn seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// Allowed clock skew between the provider and this Envoy.
const SKEW: i64 = 300;

/// A registration time from the future cannot be right: milliseconds are read as such, and
/// anything else is taken as "now", so that no client escapes the maximum age.
fn plausible_issued_at(t: i64, now: i64) -> i64 {
    if t <= now.saturating_add(SKEW) {
        return t;
    }
    let from_millis = t / 1000;
    if from_millis <= now.saturating_add(SKEW)
        && from_millis > now.saturating_sub(10 * 366 * 86_400)
    {
        from_millis
    } else {
        now
    }
}

fn set_number(doc: &mut Map<String, Value>, key: &str, value: i64) {
    doc.insert(key.to_owned(), Value::from(value));
}

#[cfg(test)]
mod tests {
    use super::super::envelope::{Signer, SigningKey};
    use super::*;

    fn json(v: &Verdict) -> Value {
        match v {
            Verdict::Rewritten { body, .. } => serde_json::from_slice(body).unwrap(),
            other => panic!("not rewritten: {other:?}"),
        }
    }

    #[test]
    fn old_or_expired_registrations_are_refused() {
        let lc = Lifecycle {
            max_age: Some(100),
            epoch: Some(500),
            ..Default::default()
        };
        let body = |iat: i64, exp: i64| {
            format!(
                r#"{{"client_id":"c","client_id_issued_at":{iat},"client_secret_expires_at":{exp}}}"#
            )
        };
        assert_eq!(
            check(&lc, body(400, 0).as_bytes(), 600),
            Verdict::Refused(Stale::Retired(Retirement::Epoch))
        );
        assert_eq!(
            check(&lc, body(500, 0).as_bytes(), 700),
            Verdict::Refused(Stale::Retired(Retirement::Age))
        );
        assert_eq!(
            check(&lc, body(600, 650).as_bytes(), 700),
            Verdict::Refused(Stale::Expired)
        );
        assert_eq!(check(&lc, body(650, 0).as_bytes(), 700), Verdict::Unchanged);
    }

    #[test]
    fn fresh_registrations_are_signed_and_given_an_expiry() {
        let lc = Lifecycle {
            max_age: Some(100),
            inject_expiry: true,
            signer: Some(Signer::new(vec![SigningKey::new("k".into(), vec![1; 32])])),
            ..Default::default()
        };
        let v = check(
            &lc,
            br#"{"client_id":"c","redirect_uris":["http://x/cb"]}"#,
            1000,
        );
        let doc = json(&v);
        assert!(doc["client_id"]
            .as_str()
            .unwrap()
            .starts_with("mog1.k.1000."));
        assert_eq!(doc["client_secret_expires_at"], 1100);
        assert_eq!(doc["client_id_issued_at"], 1000);
        assert_eq!(doc["redirect_uris"][0], "http://x/cb");
        let earlier = check(
            &lc,
            br#"{"client_id":"c","client_secret_expires_at":1050}"#,
            1000,
        );
        assert_eq!(json(&earlier)["client_secret_expires_at"], 1050);
    }

    #[test]
    fn rewritten_registrations_keep_field_order_and_number_text() {
        let lc = Lifecycle {
            signer: Some(Signer::new(vec![SigningKey::new("k".into(), vec![1; 32])])),
            ..Default::default()
        };
        let body = br#"{"z":1,"client_id":"c","big":123456789012345678901234567890,"a":0.10}"#;
        let Verdict::Rewritten { body, .. } = check(&lc, body, 1000) else {
            panic!("not rewritten")
        };
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.starts_with(r#"{"z":1,"client_id":"mog1.k.1000."#),
            "{text}"
        );
        assert!(
            text.ends_with(r#""big":123456789012345678901234567890,"a":0.10}"#),
            "{text}"
        );
    }

    #[test]
    fn implausible_times_are_read_safely() {
        let lc = Lifecycle {
            max_age: Some(100),
            ..Default::default()
        };
        let at = |body: &str| check(&lc, body.as_bytes(), 1_000_000);
        // Milliseconds: registered long ago, so refused by age.
        assert_eq!(
            at(r#"{"client_id":"c","client_id_issued_at":500000000}"#),
            Verdict::Refused(Stale::Retired(Retirement::Age))
        );
        assert_eq!(
            at(r#"{"client_id":"c","client_id_issued_at":"500"}"#),
            Verdict::Refused(Stale::Retired(Retirement::Age))
        );
        assert_eq!(
            at(r#"{"client_id":"c","client_secret_expires_at":999999.5}"#),
            Verdict::Refused(Stale::Expired)
        );
        assert_eq!(
            at(r#"{"client_id":"c","client_id_issued_at":99999999999999}"#),
            Verdict::Unchanged
        );
    }

    #[test]
    fn other_bodies_pass() {
        let lc = Lifecycle {
            max_age: Some(1),
            ..Default::default()
        };
        for body in [&b"{}"[..], b"[]", b"not json", br#"{"client_id":5}"#] {
            assert_eq!(check(&lc, body, 10), Verdict::Unchanged);
        }
    }
}
