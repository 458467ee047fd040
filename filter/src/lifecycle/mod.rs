//! Client lifecycle: a maximum client age and a registration epoch, enforced on every path a
//! client takes (token, revocation and authorization endpoints, the MCP endpoint, `/register`
//! answers), with no shared state between Envoy replicas. See [`envelope`] for how a client's
//! registration time travels with its `client_id`.

pub mod bearer;
pub mod client_id;
pub mod envelope;
pub mod registration;
pub mod time;

use envelope::Signer;

/// A provider's lifecycle rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// Seconds after registration when a client is treated as gone.
    pub max_age: Option<u64>,
    /// Unix time before which every registration is treated as gone.
    pub epoch: Option<i64>,
    /// Set `client_secret_expires_at` in `/register` answers to registration + `max_age`.
    pub inject_expiry: bool,
    /// Wraps `client_id`s in signed envelopes when set.
    pub signer: Option<Signer>,
    /// With signing on: a plain (unsigned) `client_id` is treated as gone.
    pub retire_unsigned: bool,
    /// The RFC 9728 metadata URL named in `invalid_token` challenges at the MCP endpoint.
    pub resource_metadata: Option<String>,
}

/// Why a client is treated as gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// Older than `client_max_age`.
    Age,
    /// Registered before `registration_epoch`.
    Epoch,
}

impl Retirement {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Age => "client_max_age",
            Self::Epoch => "registration_epoch",
        }
    }
}

impl Lifecycle {
    /// Whether a client registered at `issued_at` is gone at `now`. The epoch is checked
    /// first: it is the operator's explicit decision.
    pub fn retirement(&self, issued_at: i64, now: i64) -> Option<Retirement> {
        if self.epoch.is_some_and(|epoch| issued_at < epoch) {
            return Some(Retirement::Epoch);
        }
        let age = now.saturating_sub(issued_at);
        if self
            .max_age
            .is_some_and(|max| age > i64::try_from(max).unwrap_or(i64::MAX))
        {
            return Some(Retirement::Age);
        }
        None
    }

    /// Whether the provider has lifecycle rules at all.
    pub fn is_active(&self) -> bool {
        self.checks_registrations() || self.inject_expiry
    }

    /// Whether any rule needs the filter to look at registrations.
    pub fn checks_registrations(&self) -> bool {
        self.max_age.is_some() || self.epoch.is_some() || self.signer.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_then_age() {
        let lc = Lifecycle {
            max_age: Some(100),
            epoch: Some(1000),
            ..Default::default()
        };
        assert_eq!(lc.retirement(999, 1000), Some(Retirement::Epoch));
        assert_eq!(lc.retirement(1000, 1100), None);
        assert_eq!(lc.retirement(1000, 1101), Some(Retirement::Age));
        assert_eq!(Lifecycle::default().retirement(0, i64::MAX), None);
        assert_eq!(lc.retirement(i64::MIN, i64::MAX), Some(Retirement::Epoch));
    }
}
