//! The proxy-wasm adapter: moves the request head, response head and body between Envoy and
//! the core ([`crate::exchange`]), and applies the core's decision. It decides nothing itself.

mod host;
mod identity;
mod metrics;

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::exchange::{Exchange, HeadAction, Outcome, ResponseHead, Rewrite};
use crate::policy::Policy;
use crate::reply::REPLACED_HEADERS;
use crate::request::{BodyAction, LocalReply, RequestAction, RequestHead};

use metrics::Metrics;

proxy_wasm::main! {{
    std::panic::set_hook(Box::new(|info| {
        // A panic is a bug that traps this worker's VM; say where, never what data was seen.
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        host::log(host::LOG_CRITICAL, &format!("mcp-oauth-guard: panic at {at}"));
    }));
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

#[derive(Default)]
struct Root {
    policy: Option<Rc<Policy>>,
    metrics: Rc<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = match host::buffer(host::PLUGIN_CONFIGURATION, 0, usize::MAX) {
            Ok(Some(text)) => text,
            Ok(None) => Vec::new(),
            Err(e) => {
                host::log(
                    host::LOG_CRITICAL,
                    &format!(
                        "mcp-oauth-guard: cannot read the plugin configuration (status {})",
                        e.0
                    ),
                );
                return false;
            }
        };
        match Policy::from_bytes(&text) {
            Ok(policy) => {
                let routes = policy.router.routes().len();
                self.metrics = Rc::new(Metrics::define(&policy));
                host::info_with(|| {
                    format!(
                        "mcp-oauth-guard: policy loaded: {} provider(s), {routes} endpoint path(s), \
                         body cap {} bytes",
                        policy.providers.len(),
                        policy.max_body_bytes
                    )
                });
                identity::configure(&policy);
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(e) => {
                // Returning false makes Envoy refuse the plugin; the log names the field.
                host::log(
                    host::LOG_CRITICAL,
                    &format!("mcp-oauth-guard: policy refused: {e}"),
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            policy: self.policy.clone(),
            metrics: Rc::clone(&self.metrics),
            exchange: None,
            state: State::Idle,
            status: 0,
            holding_request: false,
            answered_locally: false,
            identity: identity::IdentityStream::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[derive(Debug)]
enum State {
    /// Not a target, or already decided: every callback continues.
    Idle,
    /// Response headers held; body accumulating in Envoy up to the cap.
    Buffering(HeadCopy),
    /// Decided at header time; the upstream body is dropped and replaced at its end.
    Replacing(Box<Rewrite>),
}

/// The response head fields the core reads, owned so they outlive the header callback.
#[derive(Debug, Default)]
struct HeadCopy {
    status: u16,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_length: Option<String>,
    location: Option<String>,
}

impl HeadCopy {
    fn view(&self) -> ResponseHead<'_> {
        ResponseHead {
            status: self.status,
            content_type: self.content_type.as_deref(),
            content_encoding: self.content_encoding.as_deref(),
            content_length: self.content_length.as_deref(),
            location: self.location.as_deref(),
        }
    }
}

struct Stream {
    policy: Option<Rc<Policy>>,
    metrics: Rc<Metrics>,
    exchange: Option<Exchange>,
    state: State,
    status: u16,
    /// The request is held until its body is complete (token/revocation unwrap).
    holding_request: bool,
    /// The filter answered; the response path carries its own reply and is left alone.
    answered_locally: bool,
    /// Issue 6: metadata documents, challenges and resource indicators.
    identity: identity::IdentityStream,
}

/// The first value of a header, from pairs read with [`host::headers`].
fn find_header(pairs: &[(String, Option<String>)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.clone())
}

/// The clock, read only for providers with lifecycle rules (the others never look at it).
fn clock(policy: &Policy, exchange: &Exchange) -> i64 {
    let uses_clock = policy
        .providers
        .get(exchange.provider)
        .is_some_and(|p| p.lifecycle.is_active());
    if uses_clock {
        now()
    } else {
        0
    }
}

/// Unix seconds from the host clock (WASI `clock_time_get`, provided by Envoy).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A header as text; absent, unreadable or non-UTF-8 values read as `None`.
fn header_text(map: u32, name: &str) -> Option<String> {
    host::header(map, name)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok())
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let Some(policy) = self.policy.as_deref() else {
            return Action::Continue;
        };
        // One header read decides most requests: a path the policy does not name (neither a
        // provider endpoint nor, issue 6, a resource's document, discovery or MCP endpoint).
        let Some(path) = header_text(host::REQUEST_HEADERS, ":path") else {
            return Action::Continue;
        };
        if !policy.targets(&path) && !policy.resources.targets(&path) {
            return Action::Continue;
        }
        // A target: every other header in one host call.
        let all = host::headers(host::REQUEST_HEADERS).unwrap_or_default();
        let get = |name: &str| find_header(&all, name);
        let Some(method) = get(":method") else {
            return Action::Continue;
        };
        // Issue 6 hook: may answer a metadata location, change :path, hold a form body for
        // its `resource` parameters, or watch the response. It runs first so that the
        // lifecycle's own 401 at the MCP endpoint still gets the resource_metadata challenge.
        let identity = self
            .identity
            .on_request_headers(policy, &method, &path, end_of_stream);
        if self.identity.answered() {
            return identity.unwrap_or(Action::Pause);
        }
        // Continue, or Pause while the identity part holds the body.
        let go_on = identity.unwrap_or(Action::Continue);
        let authorization = get("authorization");
        self.exchange = policy.on_request(&method, &path, authorization.as_deref());
        if let Some(exchange) = self.exchange.as_mut() {
            exchange.authority = get(":authority");
        }
        let Some(exchange) = self.exchange.as_ref() else {
            return go_on;
        };
        let content_type = get("content-type");
        let content_length = get("content-length");
        let head = RequestHead {
            path: &path,
            has_body: !end_of_stream,
            authorization: authorization.as_deref(),
            content_type: content_type.as_deref(),
            content_length: content_length.as_deref(),
        };
        match exchange.on_request_head(policy, &head, clock(policy, exchange)) {
            RequestAction::Continue => go_on,
            // In observe mode the filter does not answer and the request goes on.
            RequestAction::Respond(local) => match self.answer_locally(&local) {
                Action::Continue => go_on,
                paused => paused,
            },
            RequestAction::Proceed {
                set_headers,
                buffer_body,
                event,
            } => {
                if policy.observe && !set_headers.is_empty() {
                    // A dry run signs nothing, so there is nothing to unwrap either.
                    return Action::Continue;
                }
                for (name, value) in &set_headers {
                    if host::set_header(host::REQUEST_HEADERS, name, value).is_err() {
                        self.metrics.host_refused();
                    }
                }
                if let Some(event) = event {
                    self.metrics.lifecycle(exchange.provider, event);
                }
                if buffer_body && !end_of_stream {
                    self.holding_request = true;
                    Action::Pause
                } else {
                    go_on
                }
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(policy) = self.policy.clone() else {
            return Action::Continue;
        };
        if !self.holding_request {
            // Issue 6 hook: RFC 8707 resource parameters in form bodies.
            return self
                .identity
                .on_request_body(&policy, body_size, end_of_stream)
                .unwrap_or(Action::Continue);
        }
        let action = self.lifecycle_request_body(body_size, end_of_stream);
        // Issue 6 hook: once the lifecycle has decided (and maybe replaced the body), the
        // resource parameters of the body as it now is.
        if !self.holding_request && !self.answered_locally {
            self.identity.finish_request_body(&policy);
        }
        action
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        let Some(policy) = self.policy.clone() else {
            return Action::Continue;
        };
        let action = self.lifecycle_request_trailers();
        // Issue 6 hook.
        if !self.answered_locally {
            self.identity.finish_request_body(&policy);
        }
        action
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        // Issue 6 hook: metadata documents and MCP endpoint challenges (also on the
        // lifecycle's own 401).
        if let Some(policy) = self.policy.clone() {
            if let Some(action) = self.identity.on_response_headers(&policy, end_of_stream) {
                return action;
            }
        }
        self.lifecycle_response_headers(end_of_stream)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // Issue 6 hook.
        if let Some(policy) = self.policy.clone() {
            if let Some(action) = self
                .identity
                .on_response_body(&policy, body_size, end_of_stream)
            {
                return action;
            }
        }
        self.lifecycle_response_body(body_size, end_of_stream)
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        // Issue 6 hook.
        if let Some(policy) = self.policy.clone() {
            if let Some(action) = self.identity.on_response_trailers(&policy) {
                return action;
            }
        }
        self.lifecycle_response_trailers()
    }
}

/// The lifecycle and token-error phases of the stream, as on main before issue 6; the
/// `HttpContext` callbacks above call them after the issue 6 hooks.
impl Stream {
    fn lifecycle_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(policy), Some(exchange)) = (self.policy.clone(), self.exchange.clone()) else {
            return Action::Continue;
        };
        if body_size > policy.max_body_bytes {
            self.holding_request = false;
            let action = exchange.on_request_body_over_cap(&policy);
            return self.apply_request_body(&exchange, action, body_size);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.decide_request_body(&policy, &exchange, body_size)
    }

    fn lifecycle_request_trailers(&mut self) -> Action {
        // With request trailers the body callback never sees end_of_stream: decide here.
        if !self.holding_request {
            return Action::Continue;
        }
        let (Some(policy), Some(exchange)) = (self.policy.clone(), self.exchange.clone()) else {
            return Action::Continue;
        };
        self.decide_request_body(&policy, &exchange, usize::MAX)
    }

    fn lifecycle_response_headers(&mut self, end_of_stream: bool) -> Action {
        // Local replies and Envoy's own errors reach here too, possibly with no request seen.
        if self.answered_locally {
            return Action::Continue;
        }
        let (Some(policy), Some(exchange)) = (self.policy.as_deref(), self.exchange.as_ref())
        else {
            return Action::Continue;
        };
        let map = host::RESPONSE_HEADERS;
        let all = host::headers(map).unwrap_or_default();
        let get = |name: &str| find_header(&all, name);
        let Some(status) = get(":status").and_then(|s| s.parse::<u16>().ok()) else {
            return Action::Continue;
        };
        self.status = status;
        let head = HeadCopy {
            status,
            content_type: get("content-type"),
            content_encoding: get("content-encoding"),
            content_length: get("content-length"),
            location: get("location"),
        };
        match exchange.on_response_headers(policy, &head.view()) {
            HeadAction::PassThrough(_) => Action::Continue,
            HeadAction::Replace(rewrite) if end_of_stream => {
                // No body follows (e.g. a bodiless 302): only status and headers can change.
                self.apply(&rewrite, None);
                Action::Continue
            }
            HeadAction::Replace(rewrite) => {
                self.state = State::Replacing(Box::new(rewrite));
                Action::Pause
            }
            // No body will come: nothing to decide on.
            HeadAction::Buffer if end_of_stream => Action::Continue,
            HeadAction::Buffer => {
                self.metrics.buffered();
                self.state = State::Buffering(head);
                Action::Pause
            }
        }
    }

    fn lifecycle_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => Action::Continue,
            State::Replacing(rewrite) => {
                if end_of_stream {
                    // Also when this last callback carries 0 bytes: the page still goes in.
                    self.apply(&rewrite, Some(body_size));
                    Action::Continue
                } else {
                    // Drop what arrived so far: the answer is replaced, and nothing piles up.
                    if body_size > 0
                        && host::set_buffer(host::RESPONSE_BODY, 0, body_size, &[]).is_err()
                    {
                        self.metrics.host_refused();
                    }
                    self.state = State::Replacing(rewrite);
                    Action::Pause
                }
            }
            State::Buffering(head) => {
                let policy = self.policy.clone();
                let Some(policy) = policy.as_deref() else {
                    return Action::Continue;
                };
                if body_size > policy.max_body_bytes {
                    // Release everything held, unchanged, and stop watching this answer.
                    self.metrics.over_cap();
                    return Action::Continue;
                }
                if !end_of_stream {
                    self.state = State::Buffering(head);
                    return Action::Pause;
                }
                self.decide(policy, &head, body_size);
                Action::Continue
            }
        }
    }

    fn lifecycle_response_trailers(&mut self) -> Action {
        // With trailers the body callback never sees end_of_stream: decide here.
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => {}
            State::Replacing(rewrite) => self.apply(&rewrite, Some(usize::MAX)),
            State::Buffering(head) => {
                let policy = self.policy.clone();
                if let Some(policy) = policy.as_deref() {
                    self.decide(policy, &head, usize::MAX);
                }
            }
        }
        Action::Continue
    }
}

impl Stream {
    fn decide_request_body(&mut self, policy: &Policy, exchange: &Exchange, size: usize) -> Action {
        self.holding_request = false;
        let body = match host::buffer(host::REQUEST_BODY, 0, size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => {
                self.metrics.host_refused();
                return Action::Continue;
            }
        };
        let authorization = header_text(host::REQUEST_HEADERS, "authorization");
        let action = exchange.on_request_body(
            policy,
            &body,
            authorization.as_deref(),
            clock(policy, exchange),
        );
        self.apply_request_body(exchange, action, body.len())
    }

    fn apply_request_body(
        &mut self,
        exchange: &Exchange,
        action: BodyAction,
        size: usize,
    ) -> Action {
        match action {
            BodyAction::Continue => Action::Continue,
            BodyAction::Replace { .. } if self.observing() => Action::Continue,
            BodyAction::Replace { body, event } => {
                let result = host::set_buffer(host::REQUEST_BODY, 0, size, &body).and_then(|()| {
                    host::set_header(
                        host::REQUEST_HEADERS,
                        "content-length",
                        &body.len().to_string(),
                    )
                });
                if result.is_err() {
                    self.metrics.host_refused();
                } else {
                    self.metrics.lifecycle(exchange.provider, event);
                }
                Action::Continue
            }
            BodyAction::Respond(local) => self.answer_locally(&local),
        }
    }

    fn observing(&self) -> bool {
        self.policy.as_deref().is_some_and(|p| p.observe)
    }

    /// Sends the filter's own answer. The request stays paused for good (never resumed after
    /// a local reply), and the response callbacks leave that answer alone.
    fn answer_locally(&mut self, local: &LocalReply) -> Action {
        let Some(exchange) = self.exchange.as_ref() else {
            return Action::Continue;
        };
        let reply = &local.reply;
        if self.observing() {
            self.metrics.observed();
            host::info_with(|| {
                format!(
                    "mcp-oauth-guard: observe: would answer the {} request: reason={} -> status={}",
                    exchange.kind,
                    local.event.as_str(),
                    reply.status,
                )
            });
            return Action::Continue;
        }
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        if host::send_local_response(reply.status, &headers, &reply.body).is_err() {
            self.metrics.host_refused();
            return Action::Continue;
        }
        self.answered_locally = true;
        self.metrics.lifecycle(exchange.provider, local.event);
        let provider = self
            .policy
            .as_deref()
            .and_then(|p| p.providers.get(exchange.provider));
        host::info_with(|| {
            format!(
                "mcp-oauth-guard: {} request answered by the filter: provider={} reason={} \
                 -> status={}",
                exchange.kind,
                provider.map(|p| p.name.as_str()).unwrap_or("?"),
                local.event.as_str(),
                reply.status,
            )
        });
        // Never resumed after a local reply.
        Action::Pause
    }

    fn decide(&mut self, policy: &Policy, head: &HeadCopy, body_size: usize) {
        let Some(exchange) = self.exchange.as_ref() else {
            return;
        };
        let body = match host::buffer(host::RESPONSE_BODY, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => {
                self.metrics.host_refused();
                return;
            }
        };
        if exchange.kind == crate::endpoint::EndpointKind::Registration {
            self.metrics.registration_checked(exchange.provider);
        }
        let now = clock(policy, exchange);
        if let Some(rewrite) = exchange.on_response_body(policy, &head.view(), &body, now) {
            self.apply(&rewrite, Some(body.len()));
        }
    }

    /// Replaces status, headers and body (`body`: the size of the body to replace, or `None`
    /// when the answer has no body at all). The body goes first: if Envoy refuses it, the
    /// headers are left as they were and the answer passes through unchanged.
    fn apply(&self, rewrite: &Rewrite, body: Option<usize>) {
        let (Some(policy), Some(exchange)) = (self.policy.as_deref(), self.exchange.as_ref())
        else {
            return;
        };
        let reply = &rewrite.reply;
        if policy.observe {
            self.metrics.observed();
            host::info_with(|| {
                format!(
                    "mcp-oauth-guard: observe: would rewrite the {} answer: status={} error={} \
                     -> status={} {}",
                    exchange.kind,
                    rewrite.original_status,
                    rewrite.original_code.as_deref().unwrap_or("-"),
                    reply.status,
                    rewrite.outcome.as_str(),
                )
            });
            return;
        }
        let mut replaced = body.is_some();
        if body.is_some_and(|size| {
            host::set_buffer(host::RESPONSE_BODY, 0, size, &reply.body).is_err()
        }) {
            if rewrite.outcome != Outcome::StaleClientPage {
                self.metrics.host_refused();
                host::log(
                    host::LOG_WARN,
                    "mcp-oauth-guard: Envoy refused the body rewrite; the answer passes unchanged",
                );
                return;
            }
            // A redirect to the client must never pass (RFC 6749 section 4.1.2.1): without
            // a body to write (an empty body with trailers), status and headers still change.
            replaced = false;
        }
        let map = host::RESPONSE_HEADERS;
        let mut result = host::set_header(map, ":status", &reply.status.to_string());
        // Remove only what is there: one read instead of a removal per possible header.
        let present: Vec<String> = match host::headers(map) {
            Ok(pairs) => pairs.into_iter().map(|(name, _)| name).collect(),
            Err(_) => REPLACED_HEADERS.iter().map(|n| (*n).to_owned()).collect(),
        };
        for name in REPLACED_HEADERS {
            if present.iter().any(|p| p == name) {
                result = result.and_then(|()| host::remove_header(map, name));
            }
        }
        for (name, value) in &reply.headers {
            result = result.and_then(|()| host::set_header(map, name, value));
        }
        let length = if replaced { reply.body.len() } else { 0 };
        result = result.and_then(|()| host::set_header(map, "content-length", &length.to_string()));
        if result.is_err() {
            self.metrics.host_refused();
            host::log(
                host::LOG_WARN,
                "mcp-oauth-guard: Envoy refused a header rewrite; the answer may be partly changed",
            );
            return;
        }

        self.metrics.rewrite(exchange.provider, rewrite.outcome);
        let provider = policy.providers.get(exchange.provider);
        host::info_with(|| {
            format!(
                "mcp-oauth-guard: {} answer rewritten: provider={} preset={} status={} error={} \
                 -> status={} {}",
                exchange.kind,
                provider.map(|p| p.name.as_str()).unwrap_or("?"),
                provider.map(|p| p.preset).unwrap_or("?"),
                rewrite.original_status,
                rewrite.original_code.as_deref().unwrap_or("-"),
                reply.status,
                rewrite.outcome.as_str(),
            )
        });
    }
}
