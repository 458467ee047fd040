//! Fuzz harnesses for the core of mcp-oauth-guard: one function per target, each turning raw
//! bytes into the inputs of one parser or decision and checking what must hold for every
//! input (no panic, and the invariants of docs and ENVOY-NOTES §7 that can be checked from
//! the outside). The fuzz targets in `fuzz_targets/` call these functions, and
//! `filter/tests/fuzz_corpus.rs` includes this file to replay every corpus file through the
//! same functions without a fuzz engine.
//!
//! Text inputs are `\n`-separated fields followed by a free tail, so corpus files stay
//! readable; see each function for its layout. A header field that is empty or not UTF-8 is
//! an absent header, as in the adapter.

use std::sync::OnceLock;

use mcp_oauth_guard::endpoint::{EndpointKind, PathPattern};
use mcp_oauth_guard::exchange::{Exchange, HeadAction, Outcome, ResponseHead, Rewrite};
use mcp_oauth_guard::policy::Policy;
use mcp_oauth_guard::provider_error::{self, ContentCoding, MediaKind};
use mcp_oauth_guard::reply;

/// Body cap of the fuzz policy: small, so over-cap bodies are cheap to reach.
pub const FUZZ_CAP: usize = 2048;

/// The policy the request and response targets run against: root paths (auto preset), a
/// wildcard preset (Keycloak), a preset with its own codes and a custom rule (GitHub).
pub const FUZZ_POLICY: &str = "\
version: 1
providers:
  - name: root
    preset: auto
    endpoints:
      token: [/token]
      revocation: [/revoke]
      registration: [/register]
      authorization: [/authorize]
  - name: keycloak
    preset: keycloak
  - name: github
    preset: github
    client_gone:
      - status: [404]
        error: [app_missing]
        description_contains: [no such app]
limits:
  max_body_bytes: 2048
";

fn policies() -> &'static [Policy; 3] {
    static POLICIES: OnceLock<[Policy; 3]> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let page_off = format!("{FUZZ_POLICY}authorization:\n  stale_client_page: false\n");
        // Strict signing on the first provider: registration checks and refusals too.
        let strict = FUZZ_POLICY.replacen(
            "    preset: auto\n",
            "    preset: auto\n    lifecycle:\n      client_max_age: 1h\n      \
             sign_client_ids: true\n      retire_unsigned_clients: true\n      \
             signing_keys: [{id: k, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]\n",
            1,
        );
        assert!(
            strict.contains("lifecycle"),
            "the fuzz policy changed shape"
        );
        [
            Policy::from_bytes(FUZZ_POLICY.as_bytes()).unwrap(),
            Policy::from_bytes(page_off.as_bytes()).unwrap(),
            Policy::from_bytes(strict.as_bytes()).unwrap(),
        ]
    })
}

/// The first `n` `\n`-terminated fields and the rest; `None` when there are fewer fields.
fn fields(data: &[u8], n: usize) -> Option<(Vec<&[u8]>, &[u8])> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        let end = rest.iter().position(|&b| b == b'\n')?;
        out.push(&rest[..end]);
        rest = &rest[end + 1..];
    }
    Some((out, rest))
}

/// A header value as the adapter reads it: absent when empty or not UTF-8.
fn header(field: &[u8]) -> Option<&str> {
    std::str::from_utf8(field).ok().filter(|s| !s.is_empty())
}

/// `policy_load`: the whole input is a policy document (YAML or JSON).
pub fn policy_load(data: &[u8]) {
    let policy = match Policy::from_bytes(data) {
        Ok(policy) => policy,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!((1..=1024 * 1024).contains(&policy.max_body_bytes));
    assert!(!policy.providers.is_empty());
    assert!(reply::is_error_description(
        &policy.rewrite.error_description
    ));
    for route in policy.router.routes() {
        assert!(route.provider < policy.providers.len());
        let text = route.pattern.as_str();
        assert_eq!(PathPattern::parse(text).as_ref(), Ok(&route.pattern));
        // A literal path is found again, and by its own route: paths are unique per policy
        // and a literal match beats a wildcard one.
        if !text.split('/').any(|s| s == "*") {
            let found = policy.router.find(text).map(|r| &r.pattern);
            assert_eq!(found, Some(&route.pattern), "{text}");
        }
    }
}

/// `path_routing`: `METHOD\nPATH\nAUTHORIZATION`, the tail being the `Authorization` value.
pub fn path_routing(data: &[u8]) {
    let Some((f, authorization)) = fields(data, 2) else {
        return;
    };
    let (Some(method), Some(path)) = (header(f[0]), header(f[1])) else {
        return;
    };
    let authorization = header(authorization);

    // A policy path that parses matches itself (wildcards aside).
    if let Ok(pattern) = PathPattern::parse(path) {
        if !path.split('/').any(|s| s == "*") {
            assert!(pattern.matches(path), "{path}");
        }
    }

    for policy in policies() {
        let first = policy.on_request(method, path, authorization);
        assert_eq!(first, policy.on_request(method, path, authorization));
        let Some(exchange) = first else {
            continue;
        };
        assert!(exchange.kind.accepts_method(method));
        assert!(method != "OPTIONS" && method != "HEAD");
        let path_only = path.split('?').next().unwrap_or_default();
        assert!(
            is_canonical(path_only),
            "non-canonical path targeted: {path_only:?}"
        );
        if let reply::ClientAuthScheme::Other(scheme) = &exchange.client_auth {
            // The scheme token only, never the credentials after it.
            assert!(!scheme.contains(' ') && scheme.len() <= 32);
        }
        if exchange.kind != EndpointKind::Authorization {
            assert_eq!(exchange.redirect_uri, None);
        }
    }
}

/// ENVOY-NOTES §4: percent-encoding, `//`, dot segments and `;` parameters are never targets.
fn is_canonical(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    !path.contains('%')
        && !path.contains(';')
        && segments
            .iter()
            .enumerate()
            .all(|(i, s)| *s != "." && *s != ".." && (!s.is_empty() || i == last))
}

/// The clock of every decision that reads one (registration checks).
const NOW: i64 = 1_800_000_000;

/// `body_classify`: a request and a response head, then the body:
/// `METHOD PATH\nAUTHORIZATION\nSTATUS\nCONTENT-TYPE\nCONTENT-ENCODING\nCONTENT-LENGTH\nBODY`.
pub fn body_classify(data: &[u8]) {
    let Some((f, body)) = fields(data, 6) else {
        return;
    };
    let Some((method, path)) = header(f[0]).and_then(|r| r.split_once(' ')) else {
        return;
    };
    let Some(status) = header(f[2]).and_then(|s| s.parse::<u16>().ok()) else {
        return;
    };
    let head = ResponseHead {
        status,
        content_type: header(f[3]),
        content_encoding: header(f[4]),
        content_length: header(f[5]),
        location: None,
    };

    // The parsers on their own, as the decision uses them.
    let parsed = provider_error::content_coding(head.content_encoding)
        .and_then(|coding| provider_error::decode(coding, body, FUZZ_CAP))
        .and_then(|decoded| {
            assert!(decoded.len() <= FUZZ_CAP.max(body.len()));
            provider_error::parse(provider_error::media_kind(head.content_type), &decoded)
        });

    for policy in policies() {
        let Some(exchange) = policy.on_request(method, path, header(f[1])) else {
            continue;
        };
        let action = exchange.on_response_headers(policy, &head);
        assert_eq!(action, exchange.on_response_headers(policy, &head));
        let never = !(200..300).contains(&status) && !(400..500).contains(&status);
        if never {
            assert!(!matches!(action, HeadAction::Buffer), "{status} buffered");
        }
        if !(300..400).contains(&status) {
            // Only a registration that strict signing cannot read is replaced at header time.
            if let HeadAction::Replace(r) = &action {
                assert_eq!(exchange.kind, EndpointKind::Registration);
                assert_eq!(r.outcome, Outcome::RegistrationRefused);
            }
        }

        let rewrite = exchange.on_response_body(policy, &head, body, NOW);
        // A pure function of its inputs: the same answer twice.
        assert_eq!(rewrite, exchange.on_response_body(policy, &head, body, NOW));
        let Some(rewrite) = rewrite else {
            continue;
        };
        assert!(!never, "{status} rewritten");
        assert!(body.len() <= policy.max_body_bytes);
        let registration = matches!(
            rewrite.outcome,
            Outcome::RegistrationRewritten | Outcome::RegistrationRefused
        );
        assert_eq!(exchange.kind == EndpointKind::Registration, registration);
        if let Some(e) = parsed.as_ref() {
            // A standard invalid_grant is already what clients understand.
            let standard_grant = (400..500).contains(&status)
                && e.code.as_deref() == Some("invalid_grant")
                && e.standard_shape;
            assert!(!standard_grant || registration);
        }
        check_reply(policy, &exchange, &rewrite);
    }
}

/// What every replacement answer must look like (ENVOY-NOTES §7 I9, I11).
fn check_reply(policy: &Policy, exchange: &Exchange, rewrite: &Rewrite) {
    let reply = &rewrite.reply;
    let has = |name: &str, value: &str| {
        reply
            .headers
            .iter()
            .any(|(n, v)| *n == name && v.as_str() == value)
    };
    assert!(has("cache-control", "no-store"));
    assert!(!reply.headers.iter().any(|(n, _)| *n == "location"));
    match rewrite.outcome {
        Outcome::InvalidClient => {
            assert_eq!(reply.status, 401);
            // Constant for the client's scheme: nothing of the provider's answer is echoed.
            let expected = reply::invalid_client(
                &policy.rewrite.error_description,
                &policy.rewrite.realm,
                &exchange.client_auth,
            );
            assert_eq!(reply, &expected);
        }
        Outcome::StaleClientPage => {
            assert_eq!(exchange.kind, EndpointKind::Authorization);
            assert_eq!(reply, &reply::stale_client_page());
        }
        Outcome::InvalidGrant => assert_eq!(reply, &reply::invalid_grant()),
        Outcome::ErrorInSuccess => assert_eq!(reply.status, 400),
        Outcome::RegistrationRewritten => assert!((200..300).contains(&reply.status)),
        Outcome::RegistrationRefused => assert_eq!(reply, &reply::stale_registration()),
    }
    if has("content-type", "application/json") {
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let code = body["error"].as_str().unwrap_or_default();
        assert!(reply::is_error_code(code), "{body}");
    }
}

/// `body_decode`: the whole input is a response body, read as gzip, deflate and identity
/// with every media kind.
pub fn body_decode(data: &[u8]) {
    for coding in [
        ContentCoding::Identity,
        ContentCoding::Gzip,
        ContentCoding::Deflate,
    ] {
        let Some(decoded) = provider_error::decode(coding, data, FUZZ_CAP) else {
            continue;
        };
        if coding != ContentCoding::Identity {
            assert!(decoded.len() <= FUZZ_CAP, "decoded past the limit");
        }
        for kind in [
            MediaKind::Json,
            MediaKind::Form,
            MediaKind::Unknown,
            MediaKind::Other,
        ] {
            let parsed = provider_error::parse(kind, &decoded);
            assert_eq!(parsed, provider_error::parse(kind, &decoded));
            if kind == MediaKind::Other {
                assert_eq!(parsed, None);
            }
            if let Some(code) = parsed.and_then(|e| e.code) {
                assert!(!code.is_empty());
                assert_eq!(code, code.to_ascii_lowercase());
            }
        }
    }
}

/// `authorize_redirect`: `QUERY\nLOCATION\nSTATUS`: an authorization request
/// `GET /authorize?QUERY` answered with `STATUS` and `Location: LOCATION`.
pub fn authorize_redirect(data: &[u8]) {
    let Some((f, status)) = fields(data, 2) else {
        return;
    };
    let Some(query) = std::str::from_utf8(f[0]).ok() else {
        return;
    };
    let Some(status) = header(status).and_then(|s| s.trim().parse::<u16>().ok()) else {
        return;
    };
    let path = format!("/authorize?{query}");
    let location = header(f[1]);
    let head = ResponseHead {
        status,
        content_type: Some("text/html"),
        location,
        ..Default::default()
    };

    for policy in policies() {
        let Some(exchange) = policy.on_request("GET", &path, None) else {
            continue;
        };
        assert_eq!(exchange.kind, EndpointKind::Authorization);
        let action = exchange.on_response_headers(policy, &head);
        assert_eq!(action, exchange.on_response_headers(policy, &head));
        let HeadAction::Replace(rewrite) = action else {
            continue;
        };
        // Only a redirect that leaves the server (to the request's redirect_uri, or off this
        // origin) and carries an error is replaced, always by the inert page, which echoes
        // nothing and redirects nowhere. The server's own pages (relative) are left alone.
        assert!((300..400).contains(&status));
        assert_eq!(rewrite.outcome, Outcome::StaleClientPage);
        let location = location.unwrap_or_default();
        let redirect_uri = exchange.redirect_uri.as_deref().unwrap_or_default();
        let to_redirect_uri = !redirect_uri.is_empty() && location.starts_with(redirect_uri);
        let relative = location.starts_with('/') && !location.starts_with("//");
        assert!(
            to_redirect_uri || !relative,
            "{location:?} is the server's own page"
        );
        assert!(location.contains("error="), "{location:?} carries no error");
        check_reply(policy, &exchange, &rewrite);
    }
}

// ---------------------------------------------------------------------------------------
// Issue 6: URL identity (canonicalizer, RFC 8707 rewriting, challenge, metadata documents).

use mcp_oauth_guard::identity::RequestHead as IdentityHead;
use mcp_oauth_guard::url_identity::Url;
use mcp_oauth_guard::{resource_indicator, resource_metadata, server_metadata};

/// The policy of the `url_identity` target: two resources on two origins (so `:authority`
/// matters), aliases, both metadata modes, an authorization server behind the proxy.
pub const FUZZ_IDENTITY_POLICY: &str = "\
version: 1
providers:
  - name: op
    endpoints: {token: [/token], authorization: [/authorize]}
resources:
  - resource: https://api.example.com/mcp
    aliases: [https://api.example.com/mcp/, https://api.example.com]
    authorization_servers: [https://auth.example.com/t]
    metadata: {mode: serve, scopes_supported: [mcp]}
    cors: {allow_origins: ['https://app.example']}
    authorization_server_metadata: {upstream_path: /.well-known/openid-configuration, fix_issuer: true}
  - resource: https://other.example.com/mcp/
    authorization_servers: [https://auth.example.com/t]
    metadata: {mode: correct, upstream_path: /.well-known/oauth-protected-resource}
";

fn identity_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| Policy::from_bytes(FUZZ_IDENTITY_POLICY.as_bytes()).unwrap())
}

const FUZZ_DOCUMENT: &str = "https://api.example.com/.well-known/oauth-protected-resource/mcp";

/// `url_identity`: the raw bytes go through every URL-identity parser, and the first two
/// lines are also read as `METHOD\nPATH\n` (and the rest as `AUTHORITY`) for the planner.
pub fn url_identity(data: &[u8]) {
    let policy = identity_policy();

    // RFC 8707: only `resource` values that name a known spelling change, to the canonical
    // URL; every other pair keeps its bytes.
    let canonical = |v: &str| policy.resources.canonical_for(v);
    if let Some(rw) = resource_indicator::rewrite_form(data, canonical) {
        let before: Vec<&[u8]> = data.split(|b| *b == b'&').collect();
        let after: Vec<&[u8]> = rw.data.split(|b| *b == b'&').collect();
        assert_eq!(before.len(), after.len());
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(changed, rw.changed);
        for (a, b) in before.iter().zip(&after).filter(|(a, b)| a != b) {
            let eq = a.iter().position(|c| *c == b'=').unwrap();
            assert_eq!(&a[..=eq], &b[..=eq], "the name keeps its bytes");
            let value = resource_indicator::form_decode(&b[eq + 1..]).unwrap();
            let value = String::from_utf8(value).unwrap();
            assert!(policy.resources.list.iter().any(|r| r.canonical == value));
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // The normal form is a fixed point and keeps the identity.
    if let Ok(url) = Url::parse(text) {
        let again = Url::parse(&url.to_string()).unwrap();
        assert_eq!(again, url);
        assert_eq!(again.key(), url.key());
        assert!(!url.to_string().contains('#'));
    }

    // A made challenge is a Bearer challenge that names the document, first.
    let values = vec![text.to_owned()];
    if let Some(out) = resource_metadata::fix_challenge(Some(&values), FUZZ_DOCUMENT) {
        assert!(
            out.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer ")),
            "{out:?}"
        );
        assert!(out.contains(&format!("resource_metadata=\"{FUZZ_DOCUMENT}\"")));
    }

    // Documents: a correction names what it was asked to; an issuer fix states the issuer.
    let servers = vec!["https://auth.example.com/t".to_owned()];
    if let Some(Some(fixed)) =
        resource_metadata::correct(data, "https://api.example.com/mcp", &servers)
    {
        let doc: serde_json::Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(doc["resource"], "https://api.example.com/mcp");
        assert_eq!(
            doc["authorization_servers"][0],
            "https://auth.example.com/t"
        );
    }
    if let Some(found) = server_metadata::inspect(data, "https://auth.example.com/t", true) {
        if let Some(fixed) = found.fixed {
            assert!(!found.matches);
            let doc: serde_json::Value = serde_json::from_slice(&fixed).unwrap();
            assert_eq!(doc["issuer"], "https://auth.example.com/t");
        }
    }

    // The planner: pure, and every path it sets is an absolute path.
    let mut lines = text.splitn(3, '\n');
    let (Some(method), Some(path)) = (lines.next(), lines.next()) else {
        return;
    };
    let authority = lines.next();
    let head = IdentityHead {
        method,
        path,
        authority,
        content_type: Some("application/x-www-form-urlencoded"),
        origin: Some("https://app.example"),
    };
    let plan = policy.identity_request(&head);
    assert_eq!(plan, policy.identity_request(&head));
    if let Some(new_path) = &plan.new_path {
        assert!(
            new_path.starts_with('/') && !new_path.starts_with("//"),
            "{new_path:?}"
        );
    }
    if let Some(answer) = &plan.answer {
        assert_eq!(answer.reply.status, 200);
        let doc: serde_json::Value = serde_json::from_slice(&answer.reply.body).unwrap();
        let named = doc["resource"].as_str().unwrap_or_default();
        assert!(policy
            .resources
            .list
            .iter()
            .any(|r| r.identifiers.iter().any(|i| i.url == named)));
        assert!(method == "GET" || method == "HEAD");
    }
}
