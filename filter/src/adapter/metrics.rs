//! Envoy stats for each decision. Envoy exposes them as `wasmcustom.mcp_oauth_guard.*`.

use crate::exchange::Outcome;
use crate::policy::Policy;

use super::host;

const OUTCOMES: [Outcome; 4] = [
    Outcome::InvalidClient,
    Outcome::InvalidGrant,
    Outcome::ErrorInSuccess,
    Outcome::StaleClientPage,
];

/// Counter ids, defined once per plugin configuration.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `[provider][outcome]`: answers rewritten.
    rewrites: Vec<[Option<u32>; 4]>,
    /// Targeted answers whose body was held for a decision.
    buffered: Option<u32>,
    /// Targeted answers released untouched because the body grew over the cap.
    over_cap: Option<u32>,
    /// Targeted answers left untouched because the filter could not apply its decision.
    host_refused: Option<u32>,
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
            buffered: counter("mcp_oauth_guard.response.buffered".to_owned()),
            over_cap: counter("mcp_oauth_guard.response.over_cap".to_owned()),
            host_refused: counter("mcp_oauth_guard.response.host_refused".to_owned()),
        }
    }

    pub fn rewrite(&self, provider: usize, outcome: Outcome) {
        let slot = OUTCOMES.iter().position(|o| *o == outcome);
        if let Some(id) = slot.and_then(|i| self.rewrites.get(provider).and_then(|ids| ids[i])) {
            host::increment(id);
        }
    }

    pub fn buffered(&self) {
        bump(self.buffered);
    }

    pub fn over_cap(&self) {
        bump(self.over_cap);
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
