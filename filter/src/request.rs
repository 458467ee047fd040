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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::LoadContext;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;

    const NOW: i64 = 1_800_000_000;
    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn policy(lifecycle: &str) -> Policy {
        let text = format!(
            "version: 1\nproviders:\n  - name: op\n    endpoints:\n      token: [/token]\n      \
             revocation: [/revoke]\n      registration: [/register]\n      authorization: \
             [/authorize]\n    lifecycle:\n{lifecycle}"
        );
        let env = |_: &str| None;
        Policy::from_bytes_with(
            text.as_bytes(),
            &LoadContext {
                now: NOW,
                env: &env,
            },
        )
        .unwrap()
    }

    fn signed(p: &Policy, id: &str, iat: i64) -> String {
        p.providers[0]
            .lifecycle
            .signer
            .as_ref()
            .unwrap()
            .wrap(id, iat)
            .unwrap()
    }

    fn signing() -> String {
        format!(
            "      client_max_age: 1h\n      sign_client_ids: true\n      signing_keys: \
             [{{id: k1, secret: '{KEY}'}}]\n      mcp_endpoints: [/mcp]\n      \
             resource_metadata: https://mcp.example/.well-known/oauth-protected-resource/mcp\n"
        )
    }

    fn head<'a>(path: &'a str, auth: Option<&'a str>) -> RequestHead<'a> {
        RequestHead {
            path,
            authorization: auth,
            content_type: Some("application/x-www-form-urlencoded"),
            content_length: Some("40"),
        }
    }

    #[test]
    fn young_envelope_in_body_is_unwrapped_byte_for_byte() {
        let p = policy(&signing());
        let env = signed(&p, "real-id", NOW - 60);
        let x = p.on_request("POST", "/token", None).unwrap();
        assert!(matches!(
            x.on_request_head(&p, &head("/token", None), NOW),
            RequestAction::Proceed {
                buffer_body: true,
                ..
            }
        ));
        let body = format!("grant_type=refresh_token&client_id={env}&refresh_token=r");
        let BodyAction::Replace { body, event } = x.on_request_body(&p, body.as_bytes(), NOW)
        else {
            panic!("not replaced")
        };
        assert_eq!(
            body,
            b"grant_type=refresh_token&client_id=real-id&refresh_token=r"
        );
        assert_eq!(event, LifecycleEvent::Unwrapped);
    }

    #[test]
    fn old_envelope_is_answered_without_the_provider() {
        let p = policy(&signing());
        let env = signed(&p, "real-id", NOW - 7200);
        let x = p.on_request("POST", "/token", None).unwrap();
        let body = format!("client_id={env}&grant_type=refresh_token");
        let BodyAction::Respond(local) = x.on_request_body(&p, body.as_bytes(), NOW) else {
            panic!("not answered")
        };
        assert_eq!(local.event, LifecycleEvent::Retired(Retirement::Age));
        assert_eq!(local.reply.status, 401);
        assert!(String::from_utf8(local.reply.body)
            .unwrap()
            .contains("invalid_client"));
    }

    #[test]
    fn basic_credentials_are_checked_at_header_time() {
        let p = policy(&signing());
        let young = signed(&p, "real-id", NOW - 1);
        let header = format!("Basic {}", STANDARD.encode(format!("{young}:secret")));
        let x = p.on_request("POST", "/token", Some(&header)).unwrap();
        let RequestAction::Proceed { set_headers, .. } =
            x.on_request_head(&p, &head("/token", Some(&header)), NOW)
        else {
            panic!("not proceeding")
        };
        let expected = format!("Basic {}", STANDARD.encode("real-id:secret"));
        assert_eq!(set_headers, vec![("authorization", expected)]);

        let forged = young.replacen("mog1.k1.", "mog1.k1.1", 1);
        let header = format!("Basic {}", STANDARD.encode(format!("{forged}:secret")));
        let x = p.on_request("POST", "/revoke", Some(&header)).unwrap();
        let RequestAction::Respond(local) =
            x.on_request_head(&p, &head("/revoke", Some(&header)), NOW)
        else {
            panic!("forged envelope passed")
        };
        assert_eq!(local.event, LifecycleEvent::EnvelopeInvalid);
        assert!(local
            .reply
            .headers
            .iter()
            .any(|(n, v)| *n == "www-authenticate" && v.starts_with("Basic ")));
    }

    #[test]
    fn authorize_query_is_unwrapped_or_refused() {
        let p = policy(&signing());
        let young = signed(&p, "real id", NOW - 1);
        let path = format!("/authorize?response_type=code&client_id={young}&state=s");
        let x = p.on_request("GET", &path, None).unwrap();
        let RequestAction::Proceed { set_headers, .. } =
            x.on_request_head(&p, &head(&path, None), NOW)
        else {
            panic!("not proceeding")
        };
        assert_eq!(
            set_headers,
            vec![(
                ":path",
                "/authorize?response_type=code&client_id=real+id&state=s".to_owned()
            )]
        );
        let old = signed(&p, "real id", NOW - 7200);
        let path = format!("/authorize?client_id={old}");
        let x = p.on_request("GET", &path, None).unwrap();
        let RequestAction::Respond(local) = x.on_request_head(&p, &head(&path, None), NOW) else {
            panic!("old client passed")
        };
        assert_eq!(local.reply.status, 400);
        assert!(!local.reply.headers.iter().any(|(n, _)| *n == "location"));
    }

    #[test]
    fn plain_client_ids_pass_unless_retired_by_policy() {
        let p = policy(&signing());
        let x = p.on_request("POST", "/token", None).unwrap();
        assert_eq!(
            x.on_request_body(&p, b"client_id=plain&grant_type=x", NOW),
            BodyAction::Continue
        );
        let strict = policy(&format!(
            "{}      retire_unsigned_clients: true\n",
            signing()
        ));
        let x = strict.on_request("POST", "/token", None).unwrap();
        assert!(matches!(
            x.on_request_body(&strict, b"client_id=plain", NOW),
            BodyAction::Respond(LocalReply {
                event: LifecycleEvent::UnsignedRetired,
                ..
            })
        ));
    }

    fn bearer(claims: &str) -> String {
        format!("Bearer e30.{}.sig", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn mcp_endpoint_refuses_tokens_of_retired_clients_only() {
        let p = policy(&signing());
        let old = bearer(&format!(r#"{{"client_id":"c","iat":{}}}"#, NOW - 7200));
        let x = p.on_request("POST", "/mcp", Some(&old)).unwrap();
        let RequestAction::Respond(local) = x.on_request_head(&p, &head("/mcp", Some(&old)), NOW)
        else {
            panic!("old token passed")
        };
        assert_eq!(local.reply.status, 401);
        let challenge = &local
            .reply
            .headers
            .iter()
            .find(|(n, _)| *n == "www-authenticate")
            .unwrap()
            .1;
        assert!(challenge.starts_with("Bearer error=\"invalid_token\""));
        assert!(challenge.contains(
            "resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\""
        ));

        let young = bearer(&format!(r#"{{"azp":"c","iat":{}}}"#, NOW - 10));
        let x = p.on_request("POST", "/mcp", Some(&young)).unwrap();
        assert_eq!(
            x.on_request_head(&p, &head("/mcp", Some(&young)), NOW),
            RequestAction::Continue
        );
        for opaque in ["Bearer opaque", "Basic eDp5"] {
            let x = p.on_request("POST", "/mcp", Some(opaque)).unwrap();
            assert_eq!(
                x.on_request_head(&p, &head("/mcp", Some(opaque)), NOW),
                RequestAction::Continue
            );
        }
        assert!(p.on_request("OPTIONS", "/mcp", Some(&old)).is_none());
    }

    #[test]
    fn epoch_retires_older_registrations() {
        let p = policy(
            "      registration_epoch: '2027-01-15T08:00:00Z'\n      mcp_endpoints: [/mcp]\n",
        );
        let epoch = NOW; // 2027-01-15T08:00:00Z
        let before = bearer(&format!(r#"{{"cid":"c","iat":{}}}"#, epoch - 1));
        let x = p.on_request("GET", "/mcp", Some(&before)).unwrap();
        assert!(matches!(
            x.on_request_head(&p, &head("/mcp", Some(&before)), NOW),
            RequestAction::Respond(LocalReply {
                event: LifecycleEvent::Retired(Retirement::Epoch),
                ..
            })
        ));
    }
}
