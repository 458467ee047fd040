//! Property tests of the core decisions (ENVOY-NOTES §7): generated requests, heads and
//! bodies, checked against what must hold for every input.
//!
//! - P1 (I1, I13): an exchange the policy does not target (path or method) is never started.
//! - P2 (I2): a targeted body over the cap, non-UTF-8 garbage or undecodable gzip/deflate is
//!   never rewritten.
//! - P3: the rewrite decision is a pure function of its inputs. (The core always sees the
//!   whole body; chunking is the adapter's business and is not tested here.)
//! - P4 (I8): 5xx, 1xx, 3xx that do not redirect to the request's `redirect_uri`, and 4xx
//!   `invalid_grant` answers are never rewritten.
//! - P5 (I9): every `invalid_client` rewrite is 401, JSON `error=invalid_client`, `no-store`,
//!   and byte-identical for every input of the same class (no client id echoed).
//!
//! Case count: `PROPTEST_CASES` (proptest's default of 256 when unset, the CI setting).

// Test code: a failed check is meant to panic (clippy only exempts `#[test]` functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;

use mcp_oauth_guard::endpoint::EndpointKind;
use mcp_oauth_guard::exchange::{Exchange, HeadAction, Outcome, ResponseHead, Skip};
use mcp_oauth_guard::policy::Policy;
use mcp_oauth_guard::reply::{self, ClientAuthScheme};
use proptest::prelude::*;

const CAP: usize = 1024;

/// Root endpoints (generic preset) and one wildcard route (Keycloak preset).
fn policy_text() -> String {
    format!(
        "version: 1\nproviders:\n  - name: root\n    preset: generic\n  \
         - name: kc\n    preset: keycloak\nlimits:\n  max_body_bytes: {CAP}\n"
    )
}

fn policy() -> Policy {
    Policy::from_bytes(policy_text().as_bytes()).unwrap()
}

/// Reference model of the policy's targets, written without the router.
fn expected_kind(method: &str, path: &str) -> Option<EndpointKind> {
    let path = path.split('?').next().unwrap_or_default();
    let literal = match path {
        "/token" => Some(EndpointKind::Token),
        "/revoke" => Some(EndpointKind::Revocation),
        "/register" => Some(EndpointKind::Registration),
        "/authorize" => Some(EndpointKind::Authorization),
        _ => None,
    };
    let kind = literal.or_else(|| {
        let segments: Vec<&str> = path.split('/').collect();
        let realm_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~!$&'()+,=:@".contains(c))
        };
        match segments.as_slice() {
            ["", "realms", realm, "protocol", "openid-connect", last] if realm_ok(realm) => {
                match *last {
                    "token" => Some(EndpointKind::Token),
                    "revoke" => Some(EndpointKind::Revocation),
                    "auth" => Some(EndpointKind::Authorization),
                    _ => None,
                }
            }
            ["", "realms", realm, "clients-registrations", "openid-connect"] if realm_ok(realm) => {
                Some(EndpointKind::Registration)
            }
            _ => None,
        }
    })?;
    let method_ok = match kind {
        EndpointKind::Token | EndpointKind::Revocation => method == "POST",
        EndpointKind::Authorization => method == "GET" || method == "POST",
        EndpointKind::Registration | EndpointKind::Resource => {
            method != "OPTIONS" && method != "HEAD"
        }
    };
    method_ok.then_some(kind)
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECT", "post", "Get",
        ])
        .prop_map(str::to_owned),
        "[A-Z]{1,8}",
    ]
}

/// Target paths, near misses of them (case, encoding, slashes, dots, parameters) and noise.
fn path() -> impl Strategy<Value = String> {
    let base = prop::sample::select(vec![
        "/token",
        "/revoke",
        "/register",
        "/authorize",
        "/mcp",
        "/realms/acme/protocol/openid-connect/token",
        "/realms/acme/protocol/openid-connect/auth",
        "/realms/acme/clients-registrations/openid-connect",
        "/.well-known/oauth-protected-resource/mcp",
    ]);
    let mutation = prop::sample::select(vec![
        "", "", "/", "//", "/.", "/..", ";x", "%2F", "%74", "?a=1", "?", "#f", "X", "\u{0}", "é",
    ]);
    let near_miss = (base, mutation, any::<prop::sample::Index>(), any::<bool>()).prop_map(
        |(base, mutation, at, upper)| {
            let mut p = base.to_owned();
            let at = at.index(p.len() + 1);
            if p.is_char_boundary(at) {
                p.insert_str(at, mutation);
            }
            if upper {
                p = p.to_ascii_uppercase();
            }
            p
        },
    );
    let realm = prop_oneof![Just(".".to_owned()), Just("..".to_owned()), "[a-z.%/]{0,4}"]
        .prop_map(|r| format!("/realms/{r}/protocol/openid-connect/token"));
    prop_oneof![4 => near_miss, 1 => realm, 1 => "\\PC{0,40}"]
}

/// Bodies a provider sends when the client is gone, in the shapes of the fixtures, naming the
/// client `id` in every way providers do.
fn gone_body(id: &str, shape: usize) -> (Vec<u8>, Option<&'static str>) {
    let json = Some("application/json");
    let (text, content_type) = match shape % 6 {
        0 => (
            format!(r#"{{"error":"invalid_client","error_description":"Client {id} not found"}}"#),
            json,
        ),
        1 => (
            format!(r#"{{"errorCode":"invalid_client","errorSummary":"Invalid client_id {id}"}}"#),
            json,
        ),
        2 => (
            format!(
                r#"{{"error":"invalid_request","error_description":"The OAuth 2.0 Client {id} does not exist."}}"#
            ),
            json,
        ),
        3 => (
            format!("error=invalid_client&error_description=client+{id}+unknown"),
            Some("application/x-www-form-urlencoded"),
        ),
        4 => (
            format!(
                r#"{{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier '{id}' was not found"}}"#
            ),
            Some("application/json; charset=utf-8"),
        ),
        _ => (
            format!(r#" {{"error":"INVALID_CLIENT","client_id":"{id}"}}"#),
            None,
        ),
    };
    (text.into_bytes(), content_type)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // A minimal RFC 1952 member; the core does not check the CRC.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.write_all(&[0; 8]).unwrap();
    out
}

fn head(status: u16, content_type: Option<&'static str>) -> ResponseHead<'static> {
    ResponseHead {
        status,
        content_type,
        ..Default::default()
    }
}

/// The scheme classes of `Authorization`, with random credentials.
fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[A-Za-z0-9+/=]{0,40}".prop_map(|c| Some(format!("Basic {c}"))),
        "[A-Za-z0-9._-]{0,40}".prop_map(|c| Some(format!("DPoP {c}"))),
    ]
}

fn token_or_revoke() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/token",
        "/revoke",
        "/realms/r1/protocol/openid-connect/token",
    ])
}

proptest! {
    /// P1: the router agrees with the reference model; nothing else is started.
    #[test]
    fn p1_non_targets_are_never_started(
        method in method(),
        path in path(),
        auth in authorization(),
    ) {
        let p = policy();
        let started = p.on_request(&method, &path, auth.as_deref());
        let expected = expected_kind(&method, &path);
        prop_assert_eq!(started.as_ref().map(|x| x.kind), expected, "{} {:?}", method, path);
    }

    /// P2: over the cap (by length or by Content-Length), garbage, or undecodable coding.
    #[test]
    fn p2_over_cap_garbage_and_undecodable_are_never_rewritten(
        id in "[0-9a-f]{8}",
        shape in 0usize..6,
        pad in 1usize..4096,
        garbage in prop::collection::vec(any::<u8>(), 0..512),
        lead in 0x80u8..=0xff,
        cut in 9usize..64,
        status in prop::sample::select(vec![200u16, 400, 401, 403]),
        path in token_or_revoke(),
    ) {
        let p = policy();
        let x = p.on_request("POST", path, None).unwrap();
        let (body, ct) = gone_body(&id, shape);
        let h = head(status, ct);

        // Over the cap: a body the filter would rewrite, padded past the cap.
        let mut long = body.clone();
        long.resize(CAP + pad, b' ');
        prop_assert_eq!(x.on_response_body(&p, &h, &long, 0), None);
        let length = (CAP + pad).to_string();
        let announced = ResponseHead { content_length: Some(&length), ..h };
        prop_assert_eq!(
            x.on_response_headers(&p, &announced),
            HeadAction::PassThrough(Skip::OverCap)
        );

        // Garbage: not UTF-8 from the first byte on, under every content type.
        let mut junk = vec![lead];
        junk.extend(&garbage);
        prop_assume!(std::str::from_utf8(&junk).is_err());
        for ct in [Some("application/json"), Some("application/x-www-form-urlencoded"), None] {
            prop_assert_eq!(x.on_response_body(&p, &head(status, ct), &junk, 0), None);
        }

        // Undecodable: random bytes as gzip or deflate, a truncated gzip, a gzip bomb.
        for coding in ["gzip", "deflate", "x-gzip"] {
            let coded = ResponseHead { content_encoding: Some(coding), ..h };
            prop_assert_eq!(x.on_response_body(&p, &coded, &junk, 0), None);
        }
        let gz = ResponseHead { content_encoding: Some("gzip"), ..h };
        let mut random_deflate = gzip(b"")[..10].to_vec();
        random_deflate.extend(&garbage);
        random_deflate.extend([0u8; 8]);
        prop_assert_eq!(x.on_response_body(&p, &gz, &random_deflate, 0), None);
        let whole = gzip(&body);
        // Control: the same body, gzipped whole, gets the same decision as in clear.
        prop_assert_eq!(
            x.on_response_body(&p, &gz, &whole, 0),
            x.on_response_body(&p, &h, &body, 0)
        );
        let truncated = &whole[..whole.len().saturating_sub(cut)];
        prop_assert_eq!(x.on_response_body(&p, &gz, truncated, 0), None);
        let mut bomb = body.clone();
        bomb.resize(CAP * 2 + pad, b' ');
        prop_assert_eq!(x.on_response_body(&p, &gz, &gzip(&bomb), 0), None);
    }

    /// P3: the same inputs give the same decision, also through a freshly loaded policy.
    #[test]
    fn p3_decision_is_a_pure_function(
        body in prop_oneof![
            ("[0-9a-f]{8}", 0usize..6).prop_map(|(id, s)| gone_body(&id, s).0),
            prop::collection::vec(any::<u8>(), 0..256),
            "\\PC{0,200}".prop_map(String::into_bytes),
        ],
        status in 100u16..600,
        ct in prop::sample::select(vec![
            None, Some("application/json"), Some("text/plain"),
            Some("application/x-www-form-urlencoded"), Some("text/html"),
        ]),
        path in prop::sample::select(vec!["/token", "/revoke", "/authorize?redirect_uri=x"]),
        auth in authorization(),
    ) {
        let method = if path.starts_with("/authorize") { "GET" } else { "POST" };
        let p = policy();
        let again = policy();
        let x = p.on_request(method, path, auth.as_deref()).unwrap();
        let y = again.on_request(method, path, auth.as_deref()).unwrap();
        let h = head(status, ct);
        let first = x.on_response_body(&p, &h, &body, 0);
        prop_assert_eq!(&first, &x.on_response_body(&p, &h, &body, 0));
        prop_assert_eq!(&first, &y.on_response_body(&again, &h, &body, 0));
        prop_assert_eq!(x.on_response_headers(&p, &h), y.on_response_headers(&again, &h));
    }

    /// P4: 5xx, 1xx and a standard 4xx invalid_grant are left alone at every endpoint.
    #[test]
    fn p4_outages_and_invalid_grant_are_never_rewritten(
        id in "[0-9a-f]{8}",
        shape in 0usize..6,
        outage in prop_oneof![500u16..600, 100u16..200],
        client_error in 400u16..500,
        description in "\\PC{0,80}",
        path in prop::sample::select(vec!["/token", "/revoke", "/authorize"]),
    ) {
        let method = if path == "/authorize" { "GET" } else { "POST" };
        let p = policy();
        let x = p.on_request(method, path, Some("Basic eDp5")).unwrap();
        let (body, ct) = gone_body(&id, shape);
        let h = head(outage, ct);
        prop_assert_eq!(x.on_response_headers(&p, &h), HeadAction::PassThrough(Skip::Status));
        prop_assert_eq!(x.on_response_body(&p, &h, &body, 0), None);

        let grant = serde_json::json!({
            "error": "invalid_grant",
            "error_description": format!("{description} client {id} not found"),
        })
        .to_string();
        let h = head(client_error, Some("application/json"));
        prop_assert_eq!(x.on_response_body(&p, &h, grant.as_bytes(), 0), None);
    }

    /// P4: a 3xx is replaced only when it leaves the server (to the request's redirect_uri, or
    /// off this origin) carrying an error; the server's own pages are never rewritten.
    #[test]
    fn p4_redirects_to_the_server_itself_are_never_rewritten(
        status in 300u16..400,
        location in prop_oneof![
            "\\PC{0,60}",
            "[a-z/:.?#&=_]{0,20}".prop_map(|s| format!("http://x/cb{s}")),
            Just("http://x/cbevil?error=invalid_client".to_owned()),
            Just("http://x/c?error=invalid_client".to_owned()),
            Just("HTTP://X/CB?error=invalid_client".to_owned()),
            Just("/error?error=invalid_client".to_owned()),
        ],
        page in any::<bool>(),
    ) {
        let text = if page {
            policy_text()
        } else {
            policy_text() + "authorization:\n  stale_client_page: false\n"
        };
        let p = Policy::from_bytes(text.as_bytes()).unwrap();
        let a = p
            .on_request("GET", "/authorize?client_id=c&redirect_uri=http%3A%2F%2Fx%2Fcb", None)
            .unwrap();
        let h = ResponseHead { status, location: Some(&location), ..Default::default() };
        let to_client = location
            .strip_prefix("http://x/cb")
            .is_some_and(|rest| matches!(rest.bytes().next(), None | Some(b'?' | b'#' | b'&')));
        match a.on_response_headers(&p, &h) {
            HeadAction::Replace(rw) => {
                let relative = location.starts_with('/') && !location.starts_with("//");
                prop_assert!(to_client || !relative, "{location}");
                prop_assert!(location.contains("error="), "{location}");
                prop_assert_eq!(rw.outcome, Outcome::StaleClientPage);
                prop_assert_eq!(rw.reply, reply::stale_client_page());
            }
            other => prop_assert_eq!(other, HeadAction::PassThrough(Skip::Status)),
        }
        // A token endpoint's redirect is never touched.
        let t = p.on_request("POST", "/token", None).unwrap();
        prop_assert_eq!(t.on_response_headers(&p, &h), HeadAction::PassThrough(Skip::Status));
    }

    /// P5: one reply per scheme class, whatever the provider said and whoever the client was.
    #[test]
    fn p5_invalid_client_rewrites_are_constant(
        ids in prop::collection::vec("[0-9a-f]{12}", 2..6),
        shapes in prop::collection::vec(0usize..6, 2..6),
        status in prop::sample::select(vec![400u16, 401, 403]),
        class in 0usize..3,
        path in token_or_revoke(),
        gz in any::<bool>(),
    ) {
        let p = policy();
        let auth = ["Basic ", "DPoP ", ""][class];
        let mut replies = Vec::new();
        for (id, shape) in ids.iter().zip(shapes.iter().cycle()) {
            // Credentials vary with the client too; only their scheme may show.
            let credentials = (!auth.is_empty()).then(|| format!("{auth}{id}"));
            let x: Exchange = p.on_request("POST", path, credentials.as_deref()).unwrap();
            let (body, ct) = gone_body(id, *shape);
            let (body, coding) = if gz { (gzip(&body), Some("gzip")) } else { (body, None) };
            let h = ResponseHead { content_encoding: coding, ..head(status, ct) };
            prop_assert!(matches!(x.on_response_headers(&p, &h), HeadAction::Buffer));
            let rw = x.on_response_body(&p, &h, &body, 0).expect("rewritten");
            prop_assert_eq!(rw.outcome, Outcome::InvalidClient);
            let r = &rw.reply;
            prop_assert_eq!(r.status, 401);
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            prop_assert_eq!(&json["error"], "invalid_client");
            let header = |name: &str| {
                r.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
            };
            prop_assert_eq!(header("cache-control"), Some("no-store"));
            prop_assert_eq!(header("content-type"), Some("application/json"));
            let scheme = ["Basic", "DPoP", "Basic"][class];
            prop_assert!(header("www-authenticate").unwrap().starts_with(scheme));
            let text = format!("{:?} {}", r.headers, String::from_utf8_lossy(&r.body));
            prop_assert!(!text.contains(id.as_str()), "client id echoed: {}", text);
            replies.push(r.clone());
        }
        prop_assert!(replies.windows(2).all(|w| w[0] == w[1]), "replies differ: {:?}", replies);
        if class == 0 {
            prop_assert_eq!(
                &replies[0],
                &reply::invalid_client(
                    &p.rewrite.error_description,
                    &p.rewrite.realm,
                    &ClientAuthScheme::Basic,
                )
            );
        }
    }
}
