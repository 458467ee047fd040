//! Request-side decisions of the client lifecycle: unwrapping signed `client_id`s before the
//! provider sees them, and answering for a client that is gone without asking the provider.

use crate::endpoint::{split_path, EndpointKind};
use crate::exchange::Exchange;
use crate::lifecycle::client_id::{find_param, replace_value, BasicCredentials, Found};
use crate::lifecycle::envelope::{EnvelopeError, Signer};
use crate::lifecycle::{bearer, Lifecycle, Retirement};
use crate::policy::Policy;
use crate::provider_error::{media_kind, MediaKind};
use crate::reply::{self, Reply};

/// The request head fields the lifecycle reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub path: &'a str,
    /// More than the headers will come (not `end_of_stream` at the header callback).
    pub has_body: bool,
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
            _ => reply::with_cors(reply::invalid_client(
                &policy.rewrite.error_description,
                &policy.rewrite.realm,
                &self.client_auth,
            )),
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
                reply: reply::with_cors(reply::invalid_token(lc.resource_metadata.as_deref())),
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
        let strict = is_strict(lc);
        let refuse = |event| RequestAction::Respond(self.gone_reply(policy, event));
        let mut set_headers = Vec::new();
        let mut event = None;
        let mut identified = false;

        if let Some(value) = head.authorization.filter(|v| is_basic(v)) {
            match BasicCredentials::parse(value) {
                // Credentials the filter cannot read may still be read by the provider.
                None if strict => return refuse(LifecycleEvent::UnsignedRetired),
                None => {}
                Some(basic) => match check_client_id(lc, &basic.client_id, now) {
                    ClientIdCheck::Plain => {}
                    ClientIdCheck::Valid(original) => {
                        set_headers.push(("authorization", basic.with_client_id(&original)));
                        event = Some(LifecycleEvent::Unwrapped);
                        identified = true;
                    }
                    ClientIdCheck::Gone(e) => return refuse(e),
                },
            }
        }

        let (path, query) = split_path(head.path);
        if let Some(query) = query {
            match find_param(query.as_bytes(), "client_id") {
                Err(()) if strict => return refuse(LifecycleEvent::UnsignedRetired),
                Ok(Some(found)) => match check_client_id(lc, &found.decoded, now) {
                    ClientIdCheck::Plain => {}
                    ClientIdCheck::Gone(e) => return refuse(e),
                    ClientIdCheck::Valid(original) => {
                        set_headers.push((":path", with_value(path, query, &found, &original)));
                        event = Some(LifecycleEvent::Unwrapped);
                        identified = true;
                    }
                },
                _ => {}
            }
        }

        let form = media_kind(head.content_type) == MediaKind::Form;
        let small = head.content_length.is_none_or(|l| {
            l.trim()
                .parse::<usize>()
                .is_ok_and(|n| n <= policy.max_body_bytes)
        });
        if strict && head.has_body && !(form && small) {
            // A body the filter cannot read could carry a plain client_id to the provider.
            return refuse(LifecycleEvent::UnsignedRetired);
        }
        if strict && !head.has_body && !identified {
            return refuse(LifecycleEvent::UnsignedRetired);
        }
        RequestAction::Proceed {
            set_headers,
            buffer_body: head.has_body && form && small,
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
        // A form-encoded POST to the authorization endpoint carries client_id in its body.
        if self.is_post {
            return self.check_client_credentials(policy, lc, head, now);
        }
        let Some((path, query)) = head.path.split_once('?') else {
            return RequestAction::Continue;
        };
        let found = match find_param(query.as_bytes(), "client_id") {
            Ok(Some(found)) => found,
            Err(()) if is_strict(lc) => {
                return RequestAction::Respond(
                    self.gone_reply(policy, LifecycleEvent::UnsignedRetired),
                )
            }
            _ => return RequestAction::Continue,
        };
        match check_client_id(lc, &found.decoded, now) {
            ClientIdCheck::Plain => RequestAction::Continue,
            ClientIdCheck::Gone(e) => RequestAction::Respond(self.gone_reply(policy, e)),
            ClientIdCheck::Valid(original) => RequestAction::Proceed {
                set_headers: vec![(":path", with_value(path, query, &found, &original))],
                buffer_body: false,
                event: Some(LifecycleEvent::Unwrapped),
            },
        }
    }

    /// Decides on a complete form request body (token, revocation, authorization POST).
    /// `authorization` is the request's header again: a client that identified itself with
    /// a signed `Authorization: Basic` needs no `client_id` in the body.
    pub fn on_request_body(
        &self,
        policy: &Policy,
        body: &[u8],
        authorization: Option<&str>,
        now: i64,
    ) -> BodyAction {
        let Some(lc) = self.lifecycle(policy) else {
            return BodyAction::Continue;
        };
        let strict = is_strict(lc);
        let refuse = |event| BodyAction::Respond(self.gone_reply(policy, event));
        if body.len() > policy.max_body_bytes {
            return self.on_request_body_over_cap(policy);
        }
        match find_param(body, "client_id") {
            Err(()) if strict => refuse(LifecycleEvent::UnsignedRetired),
            Err(()) => BodyAction::Continue,
            Ok(None) if strict && !signed_basic(lc, authorization, now) => {
                refuse(LifecycleEvent::UnsignedRetired)
            }
            Ok(None) => BodyAction::Continue,
            Ok(Some(found)) => match check_client_id(lc, &found.decoded, now) {
                ClientIdCheck::Plain => BodyAction::Continue,
                ClientIdCheck::Gone(e) => refuse(e),
                ClientIdCheck::Valid(original) => BodyAction::Replace {
                    body: replace_value(body, found.value, &original),
                    event: LifecycleEvent::Unwrapped,
                },
            },
        }
    }

    /// A request body that grew over the cap: released unread, unless plain client_ids are
    /// refused, in which case an unread body is refused too.
    pub fn on_request_body_over_cap(&self, policy: &Policy) -> BodyAction {
        match self.lifecycle(policy) {
            Some(lc) if is_strict(lc) => {
                BodyAction::Respond(self.gone_reply(policy, LifecycleEvent::UnsignedRetired))
            }
            _ => BodyAction::Continue,
        }
    }
}

/// `path?query` with the value of the found parameter replaced, every other byte kept.
fn with_value(path: &str, query: &str, found: &Found, value: &str) -> String {
    let query = replace_value(query.as_bytes(), found.value.clone(), value);
    format!("{path}?{}", String::from_utf8_lossy(&query))
}

/// Signing on and plain `client_id`s refused: whatever the filter cannot inspect is refused.
fn is_strict(lc: &Lifecycle) -> bool {
    lc.signer.is_some() && lc.retire_unsigned
}

fn is_basic(value: &str) -> bool {
    value
        .trim_start()
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
}

fn signed_basic(lc: &Lifecycle, authorization: Option<&str>, now: i64) -> bool {
    authorization
        .and_then(BasicCredentials::parse)
        .is_some_and(|b| {
            matches!(
                check_client_id(lc, &b.client_id, now),
                ClientIdCheck::Valid(_)
            )
        })
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
            has_body: true,
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
        let BodyAction::Replace { body, event } = x.on_request_body(&p, body.as_bytes(), None, NOW)
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
        let BodyAction::Respond(local) = x.on_request_body(&p, body.as_bytes(), None, NOW) else {
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
            x.on_request_body(&p, b"client_id=plain&grant_type=x", None, NOW),
            BodyAction::Continue
        );
        let strict = policy(&format!(
            "{}      retire_unsigned_clients: true\n",
            signing()
        ));
        let x = strict.on_request("POST", "/token", None).unwrap();
        assert!(matches!(
            x.on_request_body(&strict, b"client_id=plain", None, NOW),
            BodyAction::Respond(LocalReply {
                event: LifecycleEvent::UnsignedRetired,
                ..
            })
        ));
    }

    #[test]
    fn strict_mode_refuses_what_it_cannot_inspect() {
        let strict = policy(&format!(
            "{}      retire_unsigned_clients: true\n",
            signing()
        ));
        let env = signed(&strict, "real-id", NOW - 1);
        let x = strict.on_request("POST", "/token", None).unwrap();
        let refused = |a: &BodyAction| {
            matches!(
                a,
                BodyAction::Respond(LocalReply {
                    event: LifecycleEvent::UnsignedRetired,
                    ..
                })
            )
        };
        for body in [
            format!("client_id={env}&client_id={env}"),
            "client_id=plain%ff".to_owned(),
            "grant_type=refresh_token".to_owned(),
        ] {
            assert!(
                refused(&x.on_request_body(&strict, body.as_bytes(), None, NOW)),
                "{body}"
            );
        }
        assert!(refused(&x.on_request_body_over_cap(&strict)));
        // A signed Basic header identifies the client without a body client_id.
        let basic = format!("Basic {}", STANDARD.encode(format!("{env}:s")));
        assert_eq!(
            x.on_request_body(&strict, b"grant_type=refresh_token", Some(&basic), NOW),
            BodyAction::Continue
        );
        // Unreadable bodies, query client_ids and unreadable Basic are refused at the head.
        let mut h = head("/token", None);
        h.content_type = Some("text/plain");
        assert!(matches!(
            x.on_request_head(&strict, &h, NOW),
            RequestAction::Respond(_)
        ));
        let h = head("/token?client_id=plain", None);
        assert!(matches!(
            x.on_request_head(&strict, &h, NOW),
            RequestAction::Respond(_)
        ));
        let h = head("/token", Some("Basic !!"));
        assert!(matches!(
            x.on_request_head(&strict, &h, NOW),
            RequestAction::Respond(_)
        ));
        // The same inputs pass when plain client_ids are allowed.
        let lax = policy(&signing());
        let y = lax.on_request("POST", "/token", None).unwrap();
        assert_eq!(
            y.on_request_body(&lax, b"grant_type=refresh_token", None, NOW),
            BodyAction::Continue
        );
        assert_eq!(y.on_request_body_over_cap(&lax), BodyAction::Continue);
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
