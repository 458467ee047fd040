//! Envoy stats for each decision. Envoy exposes them as `wasmcustom.mcp_oauth_guard.*`.

use crate::exchange::Outcome;
use crate::lifecycle::Retirement;
use crate::policy::Policy;
use crate::request::LifecycleEvent;

use super::host;

const OUTCOMES: [Outcome; 6] = [
    Outcome::InvalidClient,
    Outcome::InvalidGrant,
    Outcome::ErrorInSuccess,
    Outcome::StaleClientPage,
    Outcome::RegistrationRewritten,
    Outcome::RegistrationRefused,
];

/// Lifecycle counters per provider, in this order.
const LIFECYCLE: [&str; 5] = [
    "retired_by_age",
    "retired_by_epoch",
    "envelope_invalid",
    "unsigned_retired",
    "client_id_unwrapped",
];

fn lifecycle_slot(event: LifecycleEvent) -> usize {
    match event {
        LifecycleEvent::Retired(Retirement::Age) => 0,
        LifecycleEvent::Retired(Retirement::Epoch) => 1,
        LifecycleEvent::EnvelopeInvalid => 2,
        LifecycleEvent::UnsignedRetired => 3,
        LifecycleEvent::Unwrapped => 4,
    }
}

/// Counter ids, defined once per plugin configuration.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `[provider][outcome]`: answers rewritten.
    rewrites: Vec<[Option<u32>; 6]>,
    /// `[provider][event]`: lifecycle decisions.
    lifecycle: Vec<[Option<u32>; 5]>,
    /// `[provider]`: registration answers checked.
    registrations_checked: Vec<Option<u32>>,
    /// Targeted answers whose body was held for a decision.
    buffered: Option<u32>,
    /// Targeted answers released untouched because the body grew over the cap.
    over_cap: Option<u32>,
    /// Targeted answers left untouched because the filter could not apply its decision.
    host_refused: Option<u32>,
    /// Decisions a `mode: observe` policy logged instead of applying.
    observed: Option<u32>,
}

impl Metrics {
    pub fn define(policy: &Policy) -> Self {
        let counter = |name: String| host::define_counter(&name).ok();
        Self {
            rewrites: policy
                .providers
                .iter()
                .map(|p| {
                    OUTCOMES.map(|o| {
                        counter(format!(
                            "mcp_oauth_guard.provider.{}.rewrite.{}",
                            p.name,
                            o.as_str()
                        ))
                    })
                })
                .collect(),
            lifecycle: policy
                .providers
                .iter()
                .map(|p| {
                    LIFECYCLE.map(|name| {
                        counter(format!(
                            "mcp_oauth_guard.provider.{}.lifecycle.{name}",
                            p.name
                        ))
                    })
                })
                .collect(),
            registrations_checked: policy
                .providers
                .iter()
                .map(|p| {
                    counter(format!(
                        "mcp_oauth_guard.provider.{}.lifecycle.registrations_checked",
                        p.name
                    ))
                })
                .collect(),
            buffered: counter("mcp_oauth_guard.response.buffered".to_owned()),
            over_cap: counter("mcp_oauth_guard.response.over_cap".to_owned()),
            host_refused: counter("mcp_oauth_guard.response.host_refused".to_owned()),
            observed: counter("mcp_oauth_guard.observe.would_act".to_owned()),
        }
    }

    pub fn rewrite(&self, provider: usize, outcome: Outcome) {
        let slot = OUTCOMES.iter().position(|o| *o == outcome);
        if let Some(id) = slot.and_then(|i| self.rewrites.get(provider).and_then(|ids| ids[i])) {
            host::increment(id);
        }
    }

    pub fn lifecycle(&self, provider: usize, event: LifecycleEvent) {
        let slot = lifecycle_slot(event);
        bump(self.lifecycle.get(provider).and_then(|ids| ids[slot]));
    }

    pub fn registration_checked(&self, provider: usize) {
        bump(self.registrations_checked.get(provider).copied().flatten());
    }

    pub fn buffered(&self) {
        bump(self.buffered);
    }

    pub fn over_cap(&self) {
        bump(self.over_cap);
    }

    pub fn observed(&self) {
        bump(self.observed);
    }

    pub fn host_refused(&self) {
        bump(self.host_refused);
    }
}

fn bump(id: Option<u32>) {
    if let Some(id) = id {
        host::increment(id);
    }
}
