//! Request-side decisions of the client lifecycle: unwrapping signed `client_id`s before the
//! provider sees them, and answering for a client that is gone without asking the provider.

use crate::endpoint::EndpointKind;
use crate::exchange::Exchange;
use crate::lifecycle::client_id::{find_param, replace_value, BasicCredentials};
use crate::lifecycle::envelope::{EnvelopeError, Signer};
use crate::lifecycle::{bearer, Lifecycle, Retirement};
use crate::policy::Policy;
use crate::provider_error::{media_kind, MediaKind};
use crate::reply::{self, Reply};

/// The request head fields the lifecycle reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_length: Option<&'a str>,
}

/// Why the filter acted on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// The client's registration is retired by the policy.
    Retired(Retirement),
    /// A signed `client_id` that does not verify (forged, corrupted, key removed).
    EnvelopeInvalid,
    /// An unsigned `client_id` while `retire_unsigned_clients` is on.
    UnsignedRetired,
    /// A signed `client_id` was verified and replaced by the provider's own.
    Unwrapped,
}

impl LifecycleEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retired(r) => r.as_str(),
            Self::EnvelopeInvalid => "envelope_invalid",
            Self::UnsignedRetired => "unsigned_client",
            Self::Unwrapped => "unwrapped",
        }
    }
}

/// A reply made by the filter; the request never reaches the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub reply: Reply,
    pub event: LifecycleEvent,
}

/// The decision on a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAction {
    Continue,
    /// Set these request headers; then hold the request until its body is complete when
    /// `buffer_body` (the body is handed to [`Exchange::on_request_body`]).
    Proceed {
        set_headers: Vec<(&'static str, String)>,
        buffer_body: bool,
        event: Option<LifecycleEvent>,
    },
    Respond(LocalReply),
}

/// The decision on a complete request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyAction {
    Continue,
    Replace {
        body: Vec<u8>,
        event: LifecycleEvent,
    },
    Respond(LocalReply),
}

/// What a `client_id` says about its client.
enum ClientIdCheck {
    /// Not an envelope: the age is unknown.
    Plain,
    Valid(String),
    Gone(LifecycleEvent),
}

fn check_client_id(lifecycle: &Lifecycle, client_id: &str, now: i64) -> ClientIdCheck {
    let Some(signer) = lifecycle.signer.as_ref() else {
        return ClientIdCheck::Plain;
    };
    if !Signer::is_envelope(client_id) {
        return if lifecycle.retire_unsigned {
            ClientIdCheck::Gone(LifecycleEvent::UnsignedRetired)
        } else {
            ClientIdCheck::Plain
        };
    }
    match signer.unwrap(client_id) {
        Ok(open) => match lifecycle.retirement(open.issued_at, now) {
            Some(r) => ClientIdCheck::Gone(LifecycleEvent::Retired(r)),
            None => ClientIdCheck::Valid(open.client_id),
        },
        Err(EnvelopeError::Malformed | EnvelopeError::UnknownKey | EnvelopeError::BadTag) => {
            ClientIdCheck::Gone(LifecycleEvent::EnvelopeInvalid)
        }
    }
}

impl Exchange {
    fn lifecycle<'p>(&self, policy: &'p Policy) -> Option<&'p Lifecycle> {
        policy.providers.get(self.provider).map(|p| &p.lifecycle)
    }

    fn gone_reply(&self, policy: &Policy, event: LifecycleEvent) -> LocalReply {
        let reply = match self.kind {
            EndpointKind::Authorization => reply::stale_client_page(),
            _ => reply::invalid_client(
                &policy.rewrite.error_description,
                &policy.rewrite.realm,
                &self.client_auth,
            ),
        };
        LocalReply { reply, event }
    }

    /// Decides on a request head, before anything is forwarded. `now` is Unix seconds.
    pub fn on_request_head(
        &self,
        policy: &Policy,
        head: &RequestHead<'_>,
        now: i64,
    ) -> RequestAction {
        let Some(lifecycle) = self.lifecycle(policy) else {
            return RequestAction::Continue;
        };
        match self.kind {
            EndpointKind::Resource => self.check_bearer(lifecycle, head, now),
            EndpointKind::Token | EndpointKind::Revocation if lifecycle.signer.is_some() => {
                self.check_client_credentials(policy, lifecycle, head, now)
            }
            EndpointKind::Authorization if lifecycle.signer.is_some() => {
                self.check_authorization_query(policy, lifecycle, head, now)
            }
            _ => RequestAction::Continue,
        }
    }

    fn check_bearer(&self, lc: &Lifecycle, head: &RequestHead<'_>, now: i64) -> RequestAction {
        let Some(issued_at) = head.authorization.and_then(bearer::client_token_issued_at) else {
            return RequestAction::Continue;
        };
        // A token is never older than its client's registration, so a token issued before
        // the epoch, or longer ago than the maximum age, belongs to a retired client.
        match lc.retirement(issued_at, now) {
            Some(r) => RequestAction::Respond(LocalReply {
                reply: reply::invalid_token(lc.resource_metadata.as_deref()),
                event: LifecycleEvent::Retired(r),
            }),
            None => RequestAction::Continue,
        }
    }

    fn check_client_credentials(
        &self,
        policy: &Policy,
        lc: &Lifecycle,
        head: &RequestHead<'_>,
        now: i64,
    ) -> RequestAction {
        let mut set_headers = Vec::new();
        let mut event = None;
        if let Some(basic) = head.authorization.and_then(BasicCredentials::parse) {
            match check_client_id(lc, &basic.client_id, now) {
                ClientIdCheck::Plain => {}
                ClientIdCheck::Valid(original) => {
                    set_headers.push(("authorization", basic.with_client_id(&original)));
                    event = Some(LifecycleEvent::Unwrapped);
                }
                ClientIdCheck::Gone(e) => {
                    return RequestAction::Respond(self.gone_reply(policy, e))
                }
            }
        }
        let form = media_kind(head.content_type) == MediaKind::Form;
        let small = head.content_length.is_none_or(|l| {
            l.trim()
                .parse::<usize>()
                .is_ok_and(|n| n > 0 && n <= policy.max_body_bytes)
        });
        RequestAction::Proceed {
            set_headers,
            buffer_body: form && small,
            event,
        }
    }

    fn check_authorization_query(
        &self,
        policy: &Policy,
        lc: &Lifecycle,
        head: &RequestHead<'_>,
        now: i64,
    ) -> RequestAction {
        let Some((path, query)) = head.path.split_once('?') else {
            return RequestAction::Continue;
        };
        let Ok(Some(found)) = find_param(query.as_bytes(), "client_id") else {
            return RequestAction::Continue;
        };
        match check_client_id(lc, &found.decoded, now) {
            ClientIdCheck::Plain => RequestAction::Continue,
            ClientIdCheck::Gone(e) => RequestAction::Respond(self.gone_reply(policy, e)),
            ClientIdCheck::Valid(original) => {
                let query = replace_value(query.as_bytes(), found.value, &original);
                let query = String::from_utf8_lossy(&query);
                RequestAction::Proceed {
                    set_headers: vec![(":path", format!("{path}?{query}"))],
                    buffer_body: false,
                    event: Some(LifecycleEvent::Unwrapped),
                }
            }
        }
    }

    /// Decides on a complete (form) request body of the token or revocation endpoint.
    pub fn on_request_body(&self, policy: &Policy, body: &[u8], now: i64) -> BodyAction {
        let Some(lc) = self.lifecycle(policy) else {
            return BodyAction::Continue;
        };
        if body.len() > policy.max_body_bytes {
            return BodyAction::Continue;
        }
        let Ok(Some(found)) = find_param(body, "client_id") else {
            return BodyAction::Continue;
        };
        match check_client_id(lc, &found.decoded, now) {
            ClientIdCheck::Plain => BodyAction::Continue,
            ClientIdCheck::Gone(e) => BodyAction::Respond(self.gone_reply(policy, e)),
            ClientIdCheck::Valid(original) => BodyAction::Replace {
                body: replace_value(body, found.value, &original),
                event: LifecycleEvent::Unwrapped,
            },
        }
    }
}
