//! One request/response exchange through the filter, as a small state machine the adapter
//! drives: the request head decides whether the exchange is a target, the response head
//! whether to hold the body, and the complete body what (if anything) replaces the answer.

use crate::classify::Verdict;
use crate::endpoint::{split_path, EndpointKind};
use crate::lifecycle::registration;
use crate::policy::Policy;
use crate::provider_error::{self, ContentCoding, MediaKind, ProviderError};
use crate::reply::{self, ClientAuthScheme, Reply};

/// What the filter keeps of a targeted request: no credentials, no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub provider: usize,
    pub kind: EndpointKind,
    pub client_auth: ClientAuthScheme,
    /// The authorization request's `redirect_uri`, to recognise a redirect back to it.
    pub redirect_uri: Option<String>,
    /// A `POST` (a registration request, for the registration checks).
    pub is_post: bool,
    /// The request's `:authority`, to tell the server's own pages from the client's.
    pub authority: Option<String>,
}

/// The response head fields the decision reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseHead<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_length: Option<&'a str>,
    pub location: Option<&'a str>,
}

/// Why an answer passes untouched at header time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// 1xx, 3xx without a redirect to the client, 5xx.
    Status,
    /// 204, 304 or a HEAD request: no body.
    NoBody,
    /// `text/event-stream` or another type that never carries an OAuth error.
    MediaType,
    /// `Content-Length` above `limits.max_body_bytes`.
    OverCap,
    /// A content coding the filter cannot decode.
    Coding,
    /// Registration answers are left to the lifecycle checks.
    Endpoint,
}

/// The decision at response-header time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadAction {
    PassThrough(Skip),
    /// Hold headers and body until the end of the body (at most the cap).
    Buffer,
    /// Replace the answer now, without reading the body.
    Replace(Rewrite),
}

/// What the filter did, for the log line and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    InvalidClient,
    InvalidGrant,
    ErrorInSuccess,
    StaleClientPage,
    /// A registration answer with a signed `client_id` or injected expiry.
    RegistrationRewritten,
    /// A stale registration answer replaced by an RFC 7591 error.
    RegistrationRefused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::ErrorInSuccess => "error_in_success",
            Self::StaleClientPage => "stale_client_page",
            Self::RegistrationRewritten => "registration_rewritten",
            Self::RegistrationRefused => "registration_refused",
        }
    }
}

/// A replacement answer and why it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub outcome: Outcome,
    pub original_status: u16,
    /// The provider's error code when it is a plain code (never a secret); for the log.
    pub original_code: Option<String>,
    pub reply: Reply,
}

impl Policy {
    /// Whether a request for `path` (Envoy's `:path`) can be a target at all: the cheap
    /// first check on every request.
    pub fn targets(&self, path: &str) -> bool {
        self.router.find(split_path(path).0).is_some()
    }

    /// Starts an exchange for a request, or `None` when the request is not a target.
    /// `path` is Envoy's `:path`; only its path part is matched, never forwarding headers.
    pub fn on_request(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
    ) -> Option<Exchange> {
        let (path_only, query) = split_path(path);
        let route = self.router.find(path_only)?;
        if !route.kind.accepts_method(method) {
            return None;
        }
        let redirect_uri = match (route.kind, query) {
            (EndpointKind::Authorization, Some(q)) => form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "redirect_uri")
                .map(|(_, v)| v.into_owned()),
            _ => None,
        };
        Some(Exchange {
            provider: route.provider,
            kind: route.kind,
            client_auth: ClientAuthScheme::from_authorization(authorization),
            redirect_uri,
            is_post: method == "POST",
            authority: None,
        })
    }
}

impl Exchange {
    /// Decides at response-header time, before any body byte is held.
    pub fn on_response_headers(&self, policy: &Policy, head: &ResponseHead<'_>) -> HeadAction {
        let action = self.head_action(policy, head);
        // With plain client_ids refused, a registration the filter cannot read (and so cannot
        // sign) would send the client into a register-then-refused loop: refuse it now.
        let unreadable = matches!(
            action,
            HeadAction::PassThrough(Skip::Coding | Skip::MediaType | Skip::OverCap | Skip::NoBody)
        );
        if unreadable && self.registration_must_be_signed(policy, head.status) {
            return HeadAction::Replace(Rewrite {
                outcome: Outcome::RegistrationRefused,
                original_status: head.status,
                original_code: Some("unsigned".to_owned()),
                reply: reply::stale_registration(),
            });
        }
        action
    }

    fn registration_must_be_signed(&self, policy: &Policy, status: u16) -> bool {
        self.kind == EndpointKind::Registration
            && self.is_post
            && (200..300).contains(&status)
            && policy
                .providers
                .get(self.provider)
                .is_some_and(|p| p.lifecycle.signer.is_some() && p.lifecycle.retire_unsigned)
    }

    fn head_action(&self, policy: &Policy, head: &ResponseHead<'_>) -> HeadAction {
        let status = head.status;
        match self.kind {
            EndpointKind::Resource => return HeadAction::PassThrough(Skip::Endpoint),
            EndpointKind::Registration => {
                let checks = policy
                    .providers
                    .get(self.provider)
                    .is_some_and(|p| p.lifecycle.checks_registrations());
                if !checks || !self.is_post || !(200..300).contains(&status) {
                    return HeadAction::PassThrough(Skip::Endpoint);
                }
            }
            _ => {}
        }
        if (300..400).contains(&status) {
            return match self.redirect_to_client_with_gone_client(policy, head) {
                Some(rewrite) => HeadAction::Replace(rewrite),
                None => HeadAction::PassThrough(Skip::Status),
            };
        }
        if !(200..300).contains(&status) && !(400..500).contains(&status) {
            return HeadAction::PassThrough(Skip::Status);
        }
        if status == 204 || status == 205 {
            return HeadAction::PassThrough(Skip::NoBody);
        }
        if provider_error::content_coding(head.content_encoding).is_none() {
            return HeadAction::PassThrough(Skip::Coding);
        }
        match provider_error::media_kind(head.content_type) {
            MediaKind::Json | MediaKind::Form | MediaKind::Unknown => {}
            MediaKind::Other => return HeadAction::PassThrough(Skip::MediaType),
        }
        if self.kind == EndpointKind::Authorization && !policy.stale_client_page {
            return HeadAction::PassThrough(Skip::Endpoint);
        }
        if let Some(length) = head.content_length {
            match length.trim().parse::<u64>() {
                Ok(0) => return HeadAction::PassThrough(Skip::NoBody),
                Ok(n) if n <= policy.max_body_bytes as u64 => {}
                _ => return HeadAction::PassThrough(Skip::OverCap),
            }
        }
        HeadAction::Buffer
    }

    /// Decides on the complete body (at most the cap). `None` leaves the answer untouched.
    /// `now` (Unix seconds) is read only by the registration checks.
    pub fn on_response_body(
        &self,
        policy: &Policy,
        head: &ResponseHead<'_>,
        body: &[u8],
        now: i64,
    ) -> Option<Rewrite> {
        if body.len() > policy.max_body_bytes {
            return None;
        }
        let coding = provider_error::content_coding(head.content_encoding)?;
        let decoded = provider_error::decode(coding, body, policy.max_body_bytes)?;
        if coding != ContentCoding::Identity && decoded.is_empty() {
            return None;
        }
        if self.kind == EndpointKind::Registration {
            return self.check_registration(policy, head.status, &decoded, now);
        }
        // Most buffered answers are successful token answers: without the word "error" a 2xx
        // body cannot be an error (every error field has it), so it is not parsed at all.
        if (200..300).contains(&head.status)
            && !decoded.windows(5).any(|w| w.eq_ignore_ascii_case(b"error"))
        {
            return None;
        }
        let error = provider_error::parse(provider_error::media_kind(head.content_type), &decoded)?;
        self.decide(policy, head.status, &error)
    }

    fn check_registration(
        &self,
        policy: &Policy,
        status: u16,
        body: &[u8],
        now: i64,
    ) -> Option<Rewrite> {
        let lifecycle = &policy.providers.get(self.provider)?.lifecycle;
        let verdict = match registration::check(lifecycle, body, now) {
            // Plain client_ids are refused, so a registration left unsigned must not pass.
            registration::Verdict::Unchanged
            | registration::Verdict::Rewritten { signed: false, .. }
                if self.registration_must_be_signed(policy, status) =>
            {
                registration::Verdict::Refused(registration::Stale::Unsigned)
            }
            other => other,
        };
        let (outcome, reply, detail) = match verdict {
            registration::Verdict::Unchanged => return None,
            registration::Verdict::Rewritten { body, signed } => (
                Outcome::RegistrationRewritten,
                reply::registration(status, body),
                if signed { "signed" } else { "expiry" },
            ),
            registration::Verdict::Refused(stale) => (
                Outcome::RegistrationRefused,
                reply::stale_registration(),
                stale.as_str(),
            ),
        };
        Some(Rewrite {
            outcome,
            original_status: status,
            original_code: Some(detail.to_owned()),
            reply,
        })
    }

    fn decide(&self, policy: &Policy, status: u16, error: &ProviderError) -> Option<Rewrite> {
        let provider = policy.providers.get(self.provider)?;
        let verdict = provider.matcher.classify(self.kind, status, error);
        let (outcome, reply) = match (self.kind, verdict) {
            (EndpointKind::Authorization, Verdict::ClientGone) => {
                (Outcome::StaleClientPage, reply::stale_client_page())
            }
            (_, Verdict::ClientGone) => (
                Outcome::InvalidClient,
                reply::invalid_client(
                    &policy.rewrite.error_description,
                    &policy.rewrite.realm,
                    &self.client_auth,
                ),
            ),
            (_, Verdict::BadGrant) => (Outcome::InvalidGrant, reply::invalid_grant()),
            (_, Verdict::ErrorInSuccess) => (
                Outcome::ErrorInSuccess,
                reply::error_in_success(
                    error.code.as_deref().unwrap_or_default(),
                    error.description.as_deref(),
                ),
            ),
            (_, Verdict::Keep(_)) => return None,
        };
        Some(Rewrite {
            outcome,
            original_status: status,
            original_code: error.code.clone().filter(|c| reply::is_error_code(c)),
            reply,
        })
    }

    /// RFC 6749 section 4.1.2.1: a server must not redirect back to the client when the
    /// client is invalid. A redirect to the request's `redirect_uri` carrying a "client is
    /// gone" error is replaced by the stale-registration page, whatever the page setting.
    fn redirect_to_client_with_gone_client(
        &self,
        policy: &Policy,
        head: &ResponseHead<'_>,
    ) -> Option<Rewrite> {
        if self.kind != EndpointKind::Authorization {
            return None;
        }
        let location = head.location?;
        // The client's side: the request's redirect_uri, or (when the request named none, or
        // named it twice, or the server spelled it differently) anywhere off this server's own
        // origin. The server's own error pages (same origin) are left alone.
        let to_redirect_uri = self
            .redirect_uri
            .as_deref()
            .filter(|r| !r.is_empty())
            .and_then(|r| location.strip_prefix(r))
            .filter(|rest| matches!(rest.as_bytes().first(), None | Some(b'?' | b'#' | b'&')));
        let params = match to_redirect_uri {
            Some(rest) => rest.get(1..).unwrap_or(""),
            None if is_same_origin(location, self.authority.as_deref()) => return None,
            None => location
                .split_once(['?', '#'])
                .map(|(_, p)| p)
                .unwrap_or(""),
        };
        let mut error = ProviderError::default();
        for (key, value) in form_urlencoded::parse(params.replace('#', "&").as_bytes()) {
            match key.as_ref() {
                "error" => error.code = Some(value.trim().to_ascii_lowercase()),
                "error_description" => error.description = Some(value.into_owned()),
                _ => {}
            }
        }
        // A bare `unauthorized_client` sent back to the client says nothing but "this client
        // may not be here": for an authorization request that is the unknown client.
        if error.code.as_deref() == Some("unauthorized_client") && error.description.is_none() {
            error.code = Some("invalid_client".to_owned());
        }
        // Classified as if it were a 400 answer: the redirect carries the error, not a status.
        let mut rewrite = self.decide(policy, 400, &error)?;
        rewrite.original_status = head.status;
        Some(rewrite)
    }
}

/// Whether a `Location` stays on the origin the request came to (relative, or the same
/// authority). Unknown authority: only relative locations count as the same origin.
fn is_same_origin(location: &str, authority: Option<&str>) -> bool {
    if location.starts_with('/') && !location.starts_with("//") {
        return true;
    }
    let Some((_, rest)) = location.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> Policy {
        let text = format!(
            "version: 1\nproviders:\n  - name: op\n    preset: auto\n    endpoints:\n      \
             token: [/token]\n      revocation: [/revoke]\n      registration: [/register]\n      \
             authorization: [/authorize]\n{extra}"
        );
        Policy::from_bytes(text.as_bytes()).unwrap()
    }

    fn head(status: u16, ct: &'static str) -> ResponseHead<'static> {
        ResponseHead {
            status,
            content_type: Some(ct),
            ..Default::default()
        }
    }

    const JSON: &str = "application/json";

    fn token(p: &Policy) -> Exchange {
        p.on_request("POST", "/token", Some("Basic eDp5")).unwrap()
    }

    #[test]
    fn only_configured_paths_and_methods_are_targets() {
        let p = policy("");
        assert!(p.on_request("POST", "/token?x=1", None).is_some());
        assert!(p.on_request("GET", "/token", None).is_none());
        assert!(p.on_request("POST", "/mcp", None).is_none());
        assert!(p.on_request("POST", "/token/", None).is_none());
        assert!(p.on_request("POST", "//token", None).is_none());
        assert!(p.on_request("OPTIONS", "/register", None).is_none());
        let a = p
            .on_request(
                "GET",
                "/authorize?client_id=c&redirect_uri=http%3A%2F%2Fx%2Fcb",
                None,
            )
            .unwrap();
        assert_eq!(a.redirect_uri.as_deref(), Some("http://x/cb"));
    }

    #[test]
    fn header_time_skips() {
        let p = policy("limits:\n  max_body_bytes: 100\n");
        let x = token(&p);
        let cases = [
            (head(503, JSON), HeadAction::PassThrough(Skip::Status)),
            (
                head(200, "text/event-stream"),
                HeadAction::PassThrough(Skip::MediaType),
            ),
            (
                head(400, "text/html"),
                HeadAction::PassThrough(Skip::MediaType),
            ),
            (head(204, JSON), HeadAction::PassThrough(Skip::NoBody)),
            (head(400, JSON), HeadAction::Buffer),
        ];
        for (h, expected) in cases {
            assert_eq!(x.on_response_headers(&p, &h), expected, "{h:?}");
        }
        let mut over = head(400, JSON);
        over.content_length = Some("101");
        assert_eq!(
            x.on_response_headers(&p, &over),
            HeadAction::PassThrough(Skip::OverCap)
        );
        over.content_length = Some("100");
        assert_eq!(x.on_response_headers(&p, &over), HeadAction::Buffer);
        over.content_length = Some("garbage");
        assert_eq!(
            x.on_response_headers(&p, &over),
            HeadAction::PassThrough(Skip::OverCap)
        );
        let mut br = head(400, JSON);
        br.content_encoding = Some("br");
        assert_eq!(
            x.on_response_headers(&p, &br),
            HeadAction::PassThrough(Skip::Coding)
        );
        let reg = p.on_request("POST", "/register", None).unwrap();
        assert_eq!(
            reg.on_response_headers(&p, &head(400, JSON)),
            HeadAction::PassThrough(Skip::Endpoint)
        );
    }

    #[test]
    fn gone_client_becomes_invalid_client_with_clients_scheme() {
        let p = policy("");
        let rw = token(&p)
            .on_response_body(
                &p,
                &head(400, JSON),
                br#"{"errorCode":"invalid_client"}"#,
                0,
            )
            .unwrap();
        assert_eq!(rw.outcome, Outcome::InvalidClient);
        assert_eq!(rw.original_status, 400);
        assert_eq!(rw.original_code.as_deref(), Some("invalid_client"));
        assert_eq!(rw.reply.status, 401);
        assert!(rw
            .reply
            .headers
            .iter()
            .any(|(n, v)| *n == "www-authenticate" && v.starts_with("Basic ")));
    }

    #[test]
    fn malformed_or_over_cap_bodies_are_left_alone() {
        let p = policy("limits:\n  max_body_bytes: 64\n");
        let x = token(&p);
        for body in [&b"{\"error\":"[..], b"\xff\xfe\x00", b"", b"null"] {
            assert!(x.on_response_body(&p, &head(400, JSON), body, 0).is_none());
        }
        let long = format!(r#"{{"error":"invalid_client","pad":"{}"}}"#, "x".repeat(64));
        assert!(x
            .on_response_body(&p, &head(400, JSON), long.as_bytes(), 0)
            .is_none());
        let mut gz = head(400, JSON);
        gz.content_encoding = Some("gzip");
        assert!(x
            .on_response_body(&p, &gz, b"{\"error\":\"invalid_client\"}", 0)
            .is_none());
    }

    #[test]
    fn authorization_redirect_to_client_with_gone_client_is_refused() {
        let p = policy("");
        let a = p
            .on_request(
                "GET",
                "/authorize?client_id=c&redirect_uri=http%3A%2F%2Fx%2Fcb",
                None,
            )
            .unwrap();
        let mut h = head(302, "text/html");
        h.location = Some("http://x/cb?error=invalid_client&state=s");
        let HeadAction::Replace(rw) = a.on_response_headers(&p, &h) else {
            panic!("not replaced");
        };
        assert_eq!(rw.outcome, Outcome::StaleClientPage);
        assert_eq!(rw.original_status, 302);
        assert!(!rw.reply.headers.iter().any(|(n, _)| *n == "location"));

        for other in [
            "http://x/cb?code=abc&state=s",
            "http://x/cb?error=access_denied",
            "/error?error=invalid_client",
        ] {
            h.location = Some(other);
            assert_eq!(
                a.on_response_headers(&p, &h),
                HeadAction::PassThrough(Skip::Status),
                "{other}"
            );
        }
    }

    #[test]
    fn authorization_redirect_spelled_differently_is_still_refused() {
        let p = policy("");
        let mut a = p
            .on_request(
                "GET",
                "/authorize?redirect_uri=http%3A%2F%2Fx%2Fcb&redirect_uri=x",
                None,
            )
            .unwrap();
        a.authority = Some("auth.example".to_owned());
        let mut h = head(302, "text/html");
        for location in [
            "http://X/cb?error=invalid_client",
            "http://x:80/cb?error=invalid_client",
            "https://evil.example/cb?error=invalid_client",
            "http://x/cbevil?error=invalid_client",
        ] {
            h.location = Some(location);
            assert!(
                matches!(a.on_response_headers(&p, &h), HeadAction::Replace(_)),
                "{location}"
            );
        }
    }

    #[test]
    fn authorization_redirect_without_redirect_uri_in_request() {
        let p = policy("");
        let mut a = p.on_request("GET", "/authorize?client_id=c", None).unwrap();
        a.authority = Some("auth.example".to_owned());
        let mut h = head(302, "text/html");
        for (location, replaced) in [
            ("https://app.example/cb?error=invalid_client", true),
            ("https://app.example/cb#error=unauthorized_client", true),
            (
                "https://app.example/cb?error=unauthorized_client&error_description=no+pkce",
                false,
            ),
            ("https://AUTH.example/error?error=invalid_client", false),
            ("/oauth2/fallbacks/error?error=invalid_client", false),
            ("//evil.example/cb?error=invalid_client", true),
            ("https://app.example/cb?code=x", false),
        ] {
            h.location = Some(location);
            let replaced_now = matches!(a.on_response_headers(&p, &h), HeadAction::Replace(_));
            assert_eq!(replaced_now, replaced, "{location}");
        }
    }

    #[test]
    fn authorization_json_gone_client_gets_page_unless_disabled() {
        let p = policy("");
        let a = p.on_request("GET", "/authorize?client_id=c", None).unwrap();
        let body = br#"{"error":"invalid_request","error_description":"Client ID 'c' not found"}"#;
        let rw = a.on_response_body(&p, &head(400, JSON), body, 0).unwrap();
        assert_eq!(rw.outcome, Outcome::StaleClientPage);
        let off = policy("authorization:\n  stale_client_page: false\n");
        let a = off
            .on_request("GET", "/authorize?client_id=c", None)
            .unwrap();
        assert_eq!(
            a.on_response_headers(&off, &head(400, JSON)),
            HeadAction::PassThrough(Skip::Endpoint)
        );
    }

    #[test]
    fn strict_signing_refuses_registrations_it_cannot_sign() {
        let p = policy(
            "    lifecycle:\n      sign_client_ids: true\n      retire_unsigned_clients: true\n      \
             signing_keys: [{id: k, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]\n",
        );
        let reg = p.on_request("POST", "/register", None).unwrap();
        let mut br = head(201, JSON);
        br.content_encoding = Some("br");
        let HeadAction::Replace(rw) = reg.on_response_headers(&p, &br) else {
            panic!("unreadable registration passed")
        };
        assert_eq!(rw.outcome, Outcome::RegistrationRefused);
        let long = format!(r#"{{"client_id":"{}"}}"#, "x".repeat(2000));
        let rw = reg
            .on_response_body(&p, &head(201, JSON), long.as_bytes(), 0)
            .unwrap();
        assert_eq!(rw.outcome, Outcome::RegistrationRefused);
        let ok = reg
            .on_response_body(&p, &head(201, JSON), br#"{"client_id":"c"}"#, 0)
            .unwrap();
        assert_eq!(ok.outcome, Outcome::RegistrationRewritten);
        assert_eq!(
            reg.on_response_headers(&p, &head(400, JSON)),
            HeadAction::PassThrough(Skip::Endpoint)
        );
    }

    #[test]
    fn error_in_success_becomes_400() {
        let p = policy("");
        let rw = token(&p)
            .on_response_body(&p, &head(200, JSON), br#"{"error":"slow_down"}"#, 0)
            .unwrap();
        assert_eq!(rw.outcome, Outcome::ErrorInSuccess);
        assert_eq!(rw.reply.status, 400);
        assert!(token(&p)
            .on_response_body(&p, &head(200, JSON), br#"{"access_token":"t"}"#, 0)
            .is_none());
    }
}
