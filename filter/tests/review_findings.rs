//! Regression tests for the findings of an adversarial review (false positives, redirect
//! spellings, strict-mode bypasses, registrations that cannot be signed, odd timestamps).
#![allow(clippy::unwrap_used)]

use mcp_oauth_guard::classify::{KeepReason, Verdict};
use mcp_oauth_guard::endpoint::EndpointKind;
use mcp_oauth_guard::exchange::{HeadAction, Outcome, ResponseHead};
use mcp_oauth_guard::lifecycle::registration::{self, Stale};
use mcp_oauth_guard::policy::{LoadContext, Policy};
use mcp_oauth_guard::provider_error::ProviderError;
use mcp_oauth_guard::request::{BodyAction, RequestAction, RequestHead};

const NOW: i64 = 1_800_000_000;
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn policy(lifecycle: &str) -> Policy {
    let text = format!(
        "version: 1\nproviders:\n  - name: op\n    preset: auto\n    endpoints:\n      token: [/token]\n      \
         revocation: [/revoke]\n      registration: [/register]\n      authorization: [/authorize]\n{lifecycle}"
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

fn strict() -> Policy {
    policy(&format!(
        "    lifecycle:\n      client_max_age: 1h\n      sign_client_ids: true\n      \
         signing_keys: [{{id: k1, secret: '{KEY}'}}]\n      retire_unsigned_clients: true\n"
    ))
}

fn err(code: &str, d: &str) -> ProviderError {
    ProviderError {
        code: Some(code.into()),
        description: Some(d.into()),
        ..Default::default()
    }
}

#[test]
fn f1_ambiguous_codes_about_users_or_parameters_are_not_client_gone() {
    let p = policy("");
    let m = &p.providers[0].matcher;
    for d in [
        "User not found for this client",
        "Unknown client_assertion_type",
        "AADSTS50020: User account from identity provider does not exist in tenant and cannot access the application",
        "DPoP proof key unknown for client",
    ] {
        assert_ne!(
            m.classify(EndpointKind::Token, 400, &err("invalid_request", d)),
            Verdict::ClientGone,
            "false positive: {d}"
        );
    }
    assert_eq!(
        m.classify(
            EndpointKind::Token,
            200,
            &ProviderError {
                code: Some("success".into()),
                weak_code: true,
                ..Default::default()
            }
        ),
        Verdict::Keep(KeepReason::NotAnError),
        "200 {{\"code\":\"SUCCESS\",\"data\":{{access_token}}}} must not become a 400"
    );
}

#[test]
fn f2_redirect_with_gone_client_is_caught_whatever_the_spelling() {
    let p = policy("");
    for (query, location) in [
        // Provider takes the last redirect_uri, the filter the first.
        (
            "redirect_uri=http%3A%2F%2Fgood%2Fcb&redirect_uri=https%3A%2F%2Fevil%2Fcb",
            "https://evil/cb?error=invalid_client",
        ),
        // Provider normalises the host or the port.
        (
            "redirect_uri=http%3A%2F%2Fx%2Fcb",
            "http://X/cb?error=invalid_client",
        ),
        (
            "redirect_uri=http%3A%2F%2Fx%2Fcb",
            "http://x:80/cb?error=invalid_client",
        ),
    ] {
        let x = p
            .on_request("GET", &format!("/authorize?client_id=c&{query}"), None)
            .unwrap();
        let head = ResponseHead {
            status: 302,
            location: Some(location),
            ..Default::default()
        };
        assert!(
            matches!(x.on_response_headers(&p, &head), HeadAction::Replace(_)),
            "redirect passed: {location}"
        );
    }
}

#[test]
fn f3_retire_unsigned_cannot_be_bypassed_with_duplicate_or_undecodable_client_id() {
    let p = strict();
    let x = p.on_request("POST", "/token", None).unwrap();
    for body in [
        &b"grant_type=refresh_token&refresh_token=r&client_id=plain&client_id=plain"[..],
        b"grant_type=refresh_token&refresh_token=r&client_id=plain%ff",
    ] {
        assert!(
            matches!(
                x.on_request_body(&p, body, None, NOW),
                BodyAction::Respond(_)
            ),
            "plain client_id reached the provider: {}",
            String::from_utf8_lossy(body)
        );
    }
    let head = RequestHead {
        path: "/token",
        has_body: true,
        authorization: None,
        content_type: Some("text/plain"),
        content_length: Some("30"),
    };
    assert!(
        !matches!(
            x.on_request_head(&p, &head, NOW),
            RequestAction::Proceed {
                buffer_body: false,
                ..
            }
        ),
        "a token request whose client_id is never looked at is let through"
    );
}

#[test]
fn f4_registration_the_filter_cannot_sign_is_not_handed_out_when_unsigned_clients_are_retired() {
    let p = strict();
    let x = p.on_request("POST", "/register", None).unwrap();
    let long = format!(
        r#"{{"client_id":"https://client.example/{}"}}"#,
        "a".repeat(1100)
    );
    let head = ResponseHead {
        status: 201,
        content_type: Some("application/json"),
        ..Default::default()
    };
    let rewrite = x.on_response_body(&p, &head, long.as_bytes(), NOW).unwrap();
    assert_eq!(
        rewrite.outcome,
        Outcome::RegistrationRefused,
        "register/refuse loop"
    );
}

#[test]
fn f5_registration_issued_at_in_other_shapes_is_not_taken_as_now_or_future() {
    let p = policy("    lifecycle:\n      client_max_age: 1h\n");
    let lc = &p.providers[0].lifecycle;
    let old_float = format!(
        r#"{{"client_id":"c","client_id_issued_at":{}.5}}"#,
        NOW - 86_400
    );
    assert_eq!(
        registration::check(lc, old_float.as_bytes(), NOW),
        registration::Verdict::Refused(Stale::Retired(mcp_oauth_guard::lifecycle::Retirement::Age))
    );
    let millis = format!(
        r#"{{"client_id":"c","client_id_issued_at":{}}}"#,
        (NOW - 86_400) * 1000
    );
    assert_ne!(
        registration::check(lc, millis.as_bytes(), NOW),
        registration::Verdict::Unchanged,
        "ms timestamp: never ages out"
    );
}
