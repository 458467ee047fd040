//! Issue 6 glue: applies [`crate::identity`] plans and edits through host calls. Kept apart
//! from the stream logic of `mod.rs`, which calls in at each phase through one-line hooks.
//! Like the rest of the adapter it decides nothing itself.

use std::cell::RefCell;

use proxy_wasm::types::Action;

use crate::exchange::ResponseHead;
use crate::identity::{DocEdit, DocEvent, DocHead, RequestHead, Watch};
use crate::policy::Policy;

use super::{header_text, host, HeadCopy};

/// Counter ids of the URL-identity features (`wasmcustom.mcp_oauth_guard.identity.*`).
#[derive(Debug, Default)]
struct Counters {
    /// Resource metadata documents answered from the policy.
    served: Option<u32>,
    /// Upstream resource metadata documents corrected.
    corrected: Option<u32>,
    /// 401 challenges given a `resource_metadata` parameter.
    challenge: Option<u32>,
    /// RFC 8707 `resource` values rewritten to the canonical identifier.
    resource_indicator: Option<u32>,
    /// Authorization server metadata whose issuer differs from the policy's.
    issuer_mismatch: Option<u32>,
    /// ... of which the issuer was replaced (`fix_issuer: true`).
    issuer_fixed: Option<u32>,
    /// Changes Envoy refused; the exchange went on unchanged.
    host_refused: Option<u32>,
    /// `mode: observe`: decisions logged instead of applied (the counter main defines too).
    observed: Option<u32>,
}

thread_local! {
    // A VM runs one thread; the counters are defined at `on_configure`.
    static COUNTERS: RefCell<Counters> = RefCell::new(Counters::default());
}

fn bump(pick: fn(&Counters) -> Option<u32>) {
    COUNTERS.with(|c| {
        if let Some(id) = pick(&c.borrow()) {
            host::increment(id);
        }
    });
}

/// Defines the counters and logs what the `resources:` section holds. Called once a policy
/// is accepted.
pub(super) fn configure(policy: &Policy) {
    if policy.resources.is_empty() {
        return;
    }
    let counter =
        |name: &str| host::define_counter(&format!("mcp_oauth_guard.identity.{name}")).ok();
    COUNTERS.with(|c| {
        *c.borrow_mut() = Counters {
            served: counter("metadata_served"),
            corrected: counter("metadata_corrected"),
            challenge: counter("challenge_added"),
            resource_indicator: counter("resource_indicator_rewritten"),
            issuer_mismatch: counter("issuer_mismatch"),
            issuer_fixed: counter("issuer_fixed"),
            host_refused: counter("host_refused"),
            observed: host::define_counter("mcp_oauth_guard.observe.would_act").ok(),
        }
    });
    let names: Vec<&str> = policy
        .resources
        .list
        .iter()
        .map(|r| r.canonical.as_str())
        .collect();
    host::log(
        host::LOG_INFO,
        &format!(
            "mcp-oauth-guard: {} resource(s) ({}), {} location(s)",
            names.len(),
            names.join(", "),
            policy.resources.location_count()
        ),
    );
}

/// `mode: observe`: logs what would have been done, counts it, and says to do nothing.
fn observed(policy: &Policy, what: &str) -> bool {
    if !policy.observe {
        return false;
    }
    bump(|c| c.observed);
    host::log(
        host::LOG_INFO,
        &format!("mcp-oauth-guard: observe: would {what}"),
    );
    true
}

fn refused(what: &str) {
    bump(|c| c.host_refused);
    host::log(
        host::LOG_WARN,
        &format!("mcp-oauth-guard: Envoy refused {what}; the exchange goes on unchanged"),
    );
}

#[derive(Debug, Default)]
enum Phase {
    #[default]
    Idle,
    /// Request headers held while the form body arrives (at most the cap).
    RequestBody,
    /// Answered locally: every later callback leaves the stream alone.
    Answered,
    /// Response headers held while a metadata document arrives.
    Document(HeadCopy),
}

/// Per-stream state of the URL-identity features.
#[derive(Debug, Default)]
pub(super) struct IdentityStream {
    watch: Option<Watch>,
    phase: Phase,
}

impl IdentityStream {
    /// Request headers. `Some` is the action to return (the request was answered or its
    /// body is awaited); `None` lets the rest of the filter go on.
    pub(super) fn on_request_headers(
        &mut self,
        policy: &Policy,
        method: &str,
        path: &str,
        end_of_stream: bool,
    ) -> Option<Action> {
        if policy.resources.is_empty() {
            return None;
        }
        let map = host::REQUEST_HEADERS;
        let authority = header_text(map, ":authority");
        let content_type = header_text(map, "content-type");
        let origin = header_text(map, "origin");
        let plan = policy.identity_request(&RequestHead {
            method,
            path,
            authority: authority.as_deref(),
            content_type: content_type.as_deref(),
            origin: origin.as_deref(),
        });

        if let Some(answer) = plan
            .answer
            .as_ref()
            .filter(|_| !observed(policy, "serve resource metadata from the policy"))
        {
            let reply = &answer.reply;
            let headers: Vec<(&str, &str)> = reply
                .headers
                .iter()
                .map(|(n, v)| (*n, v.as_str()))
                .collect();
            match host::send_local_response(reply.status, &headers, &reply.body) {
                Ok(()) => {
                    bump(|c| c.served);
                    let named = policy
                        .resources
                        .list
                        .get(answer.resource)
                        .and_then(|r| r.identifiers.get(answer.identifier))
                        .map(|i| i.url.as_str())
                        .unwrap_or("?");
                    host::log(
                        host::LOG_INFO,
                        &format!("mcp-oauth-guard: resource metadata served: resource={named}"),
                    );
                    self.phase = Phase::Answered;
                    // Never resume after a local reply.
                    return Some(Action::Pause);
                }
                Err(_) => refused("a local metadata answer"),
            }
        }

        if let Some(new_path) = plan.new_path.as_ref().filter(|_| {
            !observed(
                policy,
                &format!(
                    "change :path ({} resource parameter(s), or a metadata location sent to \
                     the upstream's)",
                    plan.query_indicators
                ),
            )
        }) {
            if host::set_header(map, ":path", new_path).is_err() {
                refused("a :path change");
                return None;
            }
            if plan.query_indicators > 0 {
                for _ in 0..plan.query_indicators {
                    bump(|c| c.resource_indicator);
                }
                host::log(
                    host::LOG_INFO,
                    &format!(
                        "mcp-oauth-guard: authorization request: {} resource parameter(s) \
                         rewritten to the canonical identifier",
                        plan.query_indicators
                    ),
                );
            }
        }
        self.watch = plan.watch.clone();

        if plan.rewrite_body && !end_of_stream {
            let fits = match header_text(map, "content-length") {
                Some(length) => length
                    .trim()
                    .parse::<usize>()
                    .is_ok_and(|n| n > 0 && n <= policy.max_body_bytes),
                // Chunked: held until the end or the cap, whichever comes first.
                None => true,
            };
            if fits {
                self.phase = Phase::RequestBody;
                return Some(Action::Pause);
            }
        }
        None
    }

    /// Whether this stream was answered by the filter (a served metadata document).
    pub(super) fn answered(&self) -> bool {
        matches!(self.phase, Phase::Answered)
    }

    /// Decides now on the whole held form body, for when another part of the filter held
    /// the same request and has finished with it (and may have replaced the body).
    pub(super) fn finish_request_body(&mut self, policy: &Policy) {
        let _ = self.on_request_trailers(policy);
    }

    /// Request body: rewrites `resource` parameters once the form body is complete.
    pub(super) fn on_request_body(
        &mut self,
        policy: &Policy,
        body_size: usize,
        end_of_stream: bool,
    ) -> Option<Action> {
        if !matches!(self.phase, Phase::RequestBody) {
            return None;
        }
        if body_size > policy.max_body_bytes {
            // Release everything held, unchanged.
            self.phase = Phase::Idle;
            return Some(Action::Continue);
        }
        if !end_of_stream {
            return Some(Action::Pause);
        }
        self.phase = Phase::Idle;
        self.rewrite_request_body(policy, body_size);
        Some(Action::Continue)
    }

    /// Request trailers: with trailers the body never ends in the body callback.
    pub(super) fn on_request_trailers(&mut self, policy: &Policy) -> Option<Action> {
        if !matches!(self.phase, Phase::RequestBody) {
            return None;
        }
        self.phase = Phase::Idle;
        self.rewrite_request_body(policy, usize::MAX);
        Some(Action::Continue)
    }

    fn rewrite_request_body(&self, policy: &Policy, body_size: usize) {
        let body = match host::buffer(host::REQUEST_BODY, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => return refused("reading the request body"),
        };
        let Some(rewritten) = policy.identity_request_body(&body) else {
            return;
        };
        if observed(
            policy,
            &format!(
                "rewrite {} resource parameter(s) of a token request",
                rewritten.changed
            ),
        ) {
            return;
        }
        if host::set_buffer(host::REQUEST_BODY, 0, body.len(), &rewritten.data).is_err() {
            return refused("a request body change");
        }
        if header_text(host::REQUEST_HEADERS, "content-length").is_some()
            && host::set_header(
                host::REQUEST_HEADERS,
                "content-length",
                &rewritten.data.len().to_string(),
            )
            .is_err()
        {
            // The body is already changed; the length header could not follow.
            refused("a content-length change");
        }
        for _ in 0..rewritten.changed {
            bump(|c| c.resource_indicator);
        }
        host::log(
            host::LOG_INFO,
            &format!(
                "mcp-oauth-guard: token request: {} resource parameter(s) rewritten to the \
                 canonical identifier",
                rewritten.changed
            ),
        );
    }

    /// Response headers. `Some` is the action to return; `None` when this stream has no
    /// URL-identity business.
    pub(super) fn on_response_headers(
        &mut self,
        policy: &Policy,
        end_of_stream: bool,
    ) -> Option<Action> {
        if matches!(self.phase, Phase::Answered) {
            return Some(Action::Continue);
        }
        let watch = self.watch.as_ref()?;
        let map = host::RESPONSE_HEADERS;
        let status = header_text(map, ":status").and_then(|s| s.parse::<u16>().ok())?;

        if let Watch::Endpoint { .. } = watch {
            if status != 401 {
                return Some(Action::Continue);
            }
            let challenges: Option<Vec<String>> = match host::header_values(map, "www-authenticate")
            {
                Ok(values) => values
                    .into_iter()
                    .map(|v| String::from_utf8(v).ok())
                    .collect(),
                Err(_) => None,
            };
            let expose = header_text(map, "access-control-expose-headers");
            let has_allow_origin = header_text(map, "access-control-allow-origin").is_some();
            let edits = watch.challenge_edits(
                policy,
                status,
                challenges.as_deref(),
                expose.as_deref(),
                has_allow_origin,
            );
            if !edits.is_empty()
                && observed(policy, "add resource_metadata / CORS headers to the 401")
            {
                return Some(Action::Continue);
            }
            for (name, value) in &edits {
                let result = if *name == "vary" {
                    host::add_header(map, name, value)
                } else {
                    host::set_header(map, name, value)
                };
                if result.is_err() {
                    refused("a 401 header change");
                    return Some(Action::Continue);
                }
            }
            if edits.iter().any(|(n, _)| *n == "www-authenticate") {
                bump(|c| c.challenge);
                host::log(
                    host::LOG_INFO,
                    "mcp-oauth-guard: MCP endpoint 401: resource_metadata added to the challenge",
                );
            }
            return Some(Action::Continue);
        }

        let head = HeadCopy {
            status,
            content_type: header_text(map, "content-type"),
            content_encoding: header_text(map, "content-encoding"),
            content_length: header_text(map, "content-length"),
            location: None,
        };
        match watch.document_head(policy, &head.view()) {
            DocHead::Buffer if !end_of_stream => {
                self.phase = Phase::Document(head);
                Some(Action::Pause)
            }
            _ => Some(Action::Continue),
        }
    }

    /// Response body of a held metadata document.
    pub(super) fn on_response_body(
        &mut self,
        policy: &Policy,
        body_size: usize,
        end_of_stream: bool,
    ) -> Option<Action> {
        match std::mem::take(&mut self.phase) {
            Phase::Document(head) => {
                if body_size > policy.max_body_bytes {
                    return Some(Action::Continue);
                }
                if !end_of_stream {
                    self.phase = Phase::Document(head);
                    return Some(Action::Pause);
                }
                self.finish_document(policy, &head.view(), body_size);
                Some(Action::Continue)
            }
            Phase::Answered => {
                self.phase = Phase::Answered;
                Some(Action::Continue)
            }
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// Response trailers of a held metadata document.
    pub(super) fn on_response_trailers(&mut self, policy: &Policy) -> Option<Action> {
        match std::mem::take(&mut self.phase) {
            Phase::Document(head) => {
                self.finish_document(policy, &head.view(), usize::MAX);
                Some(Action::Continue)
            }
            other => {
                let answered = matches!(other, Phase::Answered);
                self.phase = other;
                answered.then_some(Action::Continue)
            }
        }
    }

    fn finish_document(&self, policy: &Policy, head: &ResponseHead<'_>, body_size: usize) {
        let Some(watch) = self.watch.as_ref() else {
            return;
        };
        let body = match host::buffer(host::RESPONSE_BODY, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => return refused("reading a metadata document"),
        };
        let Some(edit) = watch.document_body(policy, head, &body) else {
            return;
        };
        if observed(
            policy,
            &format!("edit a metadata document ({:?})", edit.event),
        ) {
            return;
        }
        if apply_document(&edit, body.len()).is_err() {
            return refused("a metadata document change");
        }
        report(policy, watch, &edit.event);
    }
}

/// Body first: if Envoy refuses it, the headers stay as they were.
fn apply_document(edit: &DocEdit, old_size: usize) -> Result<(), host::HostError> {
    let map = host::RESPONSE_HEADERS;
    if let Some(body) = &edit.body {
        host::set_buffer(host::RESPONSE_BODY, 0, old_size, body)?;
        host::set_header(map, "content-length", &body.len().to_string())?;
    }
    for name in &edit.remove {
        host::remove_header(map, name)?;
    }
    for (name, value) in &edit.set {
        if *name == "vary" {
            host::add_header(map, name, value)?;
        } else {
            host::set_header(map, name, value)?;
        }
    }
    Ok(())
}

fn report(policy: &Policy, watch: &Watch, event: &DocEvent) {
    let (resource, what) = match watch {
        Watch::ResourceMetadata {
            resource,
            identifier,
            ..
        } => {
            let named = policy
                .resources
                .list
                .get(*resource)
                .and_then(|r| r.identifiers.get(*identifier))
                .map(|i| i.url.as_str())
                .unwrap_or("?");
            (*resource, format!("resource metadata for {named}"))
        }
        Watch::ServerMetadata { resource, .. } => {
            (*resource, "authorization server metadata".to_owned())
        }
        Watch::Endpoint { .. } => return,
    };
    let expected = policy
        .resources
        .list
        .get(resource)
        .and_then(|r| r.server_metadata.as_ref())
        .map(|s| s.issuer.as_str())
        .unwrap_or("?");
    match event {
        DocEvent::Corrected => {
            bump(|c| c.corrected);
            host::log(
                host::LOG_INFO,
                &format!("mcp-oauth-guard: {what} corrected (resource, authorization_servers)"),
            );
        }
        DocEvent::Unchanged => {}
        DocEvent::IssuerMismatch { stated, fixed } => {
            bump(|c| c.issuer_mismatch);
            if *fixed {
                bump(|c| c.issuer_fixed);
            }
            host::log(
                host::LOG_WARN,
                &format!(
                    "mcp-oauth-guard: {what}: issuer `{}` is not `{expected}`, the issuer the \
                     resource metadata names; strict clients stop here. {}",
                    stated.as_deref().unwrap_or("(none)"),
                    if *fixed {
                        "Replaced (fix_issuer: true)."
                    } else {
                        "Left as is; name the stated issuer in authorization_servers, or set \
                         fix_issuer: true."
                    }
                ),
            );
        }
    }
}
