//! The proxy-wasm adapter: moves the request head, response head and body between Envoy and
//! the core ([`crate::exchange`]), and applies the core's decision. It decides nothing itself.

mod host;
mod identity;
mod metrics;

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::exchange::{Exchange, HeadAction, ResponseHead, Rewrite};
use crate::policy::Policy;
use crate::reply::REPLACED_HEADERS;

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
                host::log(
                    host::LOG_INFO,
                    &format!(
                        "mcp-oauth-guard: policy loaded: {} provider(s), {routes} endpoint path(s), \
                         body cap {} bytes",
                        policy.providers.len(),
                        policy.max_body_bytes
                    ),
                );
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
    /// Issue 6: metadata documents, challenges and resource indicators.
    identity: identity::IdentityStream,
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
        let (Some(method), Some(path)) = (
            header_text(host::REQUEST_HEADERS, ":method"),
            header_text(host::REQUEST_HEADERS, ":path"),
        ) else {
            return Action::Continue;
        };
        let authorization = header_text(host::REQUEST_HEADERS, "authorization");
        self.exchange = policy.on_request(&method, &path, authorization.as_deref());
        // Issue 6 hook: may answer a metadata location, change :path, or hold a form body.
        if let Some(action) =
            self.identity
                .on_request_headers(policy, &method, &path, end_of_stream)
        {
            return action;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // Issue 6 hook: RFC 8707 resource parameters in form bodies.
        let Some(policy) = self.policy.as_deref() else {
            return Action::Continue;
        };
        self.identity
            .on_request_body(policy, body_size, end_of_stream)
            .unwrap_or(Action::Continue)
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        // Issue 6 hook.
        let Some(policy) = self.policy.as_deref() else {
            return Action::Continue;
        };
        self.identity
            .on_request_trailers(policy)
            .unwrap_or(Action::Continue)
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        // Issue 6 hook: metadata documents and MCP endpoint challenges.
        if let Some(policy) = self.policy.clone() {
            if let Some(action) = self.identity.on_response_headers(&policy, end_of_stream) {
                return action;
            }
        }
        // Local replies and Envoy's own errors reach here too, possibly with no request seen.
        let (Some(policy), Some(exchange)) = (self.policy.as_deref(), self.exchange.as_ref())
        else {
            return Action::Continue;
        };
        let map = host::RESPONSE_HEADERS;
        let Some(status) = header_text(map, ":status").and_then(|s| s.parse::<u16>().ok()) else {
            return Action::Continue;
        };
        self.status = status;
        let head = HeadCopy {
            status,
            content_type: header_text(map, "content-type"),
            content_encoding: header_text(map, "content-encoding"),
            content_length: header_text(map, "content-length"),
            location: header_text(map, "location"),
        };
        match exchange.on_response_headers(policy, &head.view()) {
            HeadAction::PassThrough(_) => Action::Continue,
            HeadAction::Replace(rewrite) if end_of_stream => {
                self.apply(&rewrite, 0);
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
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => Action::Continue,
            State::Replacing(rewrite) => {
                if end_of_stream {
                    self.apply(&rewrite, body_size);
                    Action::Continue
                } else {
                    // Drop what arrived so far: the answer is replaced, and nothing piles up.
                    if host::set_buffer(host::RESPONSE_BODY, 0, body_size, &[]).is_err() {
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

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        // Issue 6 hook.
        if let Some(policy) = self.policy.clone() {
            if let Some(action) = self.identity.on_response_trailers(&policy) {
                return action;
            }
        }
        // With trailers the body callback never sees end_of_stream: decide here.
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => {}
            State::Replacing(rewrite) => self.apply(&rewrite, usize::MAX),
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
        if let Some(rewrite) = exchange.on_response_body(policy, &head.view(), &body) {
            self.apply(&rewrite, body.len());
        }
    }

    /// Replaces status, headers and body. The body goes first: if Envoy refuses it, the
    /// headers are left as they were and the answer passes through unchanged.
    fn apply(&self, rewrite: &Rewrite, body_size: usize) {
        let (Some(policy), Some(exchange)) = (self.policy.as_deref(), self.exchange.as_ref())
        else {
            return;
        };
        let reply = &rewrite.reply;
        if body_size > 0
            && host::set_buffer(host::RESPONSE_BODY, 0, body_size, &reply.body).is_err()
        {
            self.metrics.host_refused();
            host::log(
                host::LOG_WARN,
                "mcp-oauth-guard: Envoy refused the body rewrite; the answer passes unchanged",
            );
            return;
        }
        let map = host::RESPONSE_HEADERS;
        let mut result = host::set_header(map, ":status", &reply.status.to_string());
        for name in REPLACED_HEADERS {
            result = result.and_then(|()| host::remove_header(map, name));
        }
        for (name, value) in &reply.headers {
            result = result.and_then(|()| host::set_header(map, name, value));
        }
        let length = if body_size > 0 { reply.body.len() } else { 0 };
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
        host::log(
            host::LOG_INFO,
            &format!(
                "mcp-oauth-guard: {} answer rewritten: provider={} preset={} status={} error={} \
                 -> status={} {}",
                exchange.kind,
                provider.map(|p| p.name.as_str()).unwrap_or("?"),
                provider.map(|p| p.preset).unwrap_or("?"),
                rewrite.original_status,
                rewrite.original_code.as_deref().unwrap_or("-"),
                reply.status,
                rewrite.outcome.as_str(),
            ),
        );
    }
}
