//! Deciding what a provider's error answer means: the client is gone, the grant is bad, or
//! something else the filter must leave alone. Evidence is required before anything becomes
//! `invalid_client`: a false positive makes every client drop a good registration at once.

use crate::endpoint::EndpointKind;
use crate::presets::CodeMeaning;
use crate::provider_error::ProviderError;

/// What the filter concludes about one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Leave the answer as the provider sent it.
    Keep(KeepReason),
    /// The client is unknown, deleted or expired: answer RFC 6749 `invalid_client`.
    ClientGone,
    /// A bad refresh token or code in a provider's own shape: answer `invalid_grant`.
    BadGrant,
    /// A 2xx token answer that is really an error (no `access_token`): answer it as a 400.
    ErrorInSuccess,
}

/// Why an answer is left alone (for debug logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// 1xx, 3xx or 5xx: never a statement about the client.
    Status,
    /// The body holds an access token.
    Success,
    /// No error field.
    NotAnError,
    /// Already a standard 4xx `invalid_grant`.
    AlreadyStandard,
    /// An error code the filter does not treat, or an ambiguous one without evidence.
    NoEvidence,
    /// RFC 7009: a revocation endpoint's 2xx is never rewritten.
    RevocationSuccess,
}

/// An operator's extra matcher (`client_gone` in the policy), compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientGoneRule {
    pub statuses: Vec<u16>,
    /// Lower-cased.
    pub codes: Vec<String>,
    /// Lower-cased.
    pub description_contains: Vec<String>,
}

impl ClientGoneRule {
    fn matches(&self, status: u16, error: &ProviderError) -> bool {
        let status_ok = if self.statuses.is_empty() {
            (400..500).contains(&status)
        } else {
            self.statuses.contains(&status)
        };
        let code_ok = self.codes.is_empty()
            || error
                .code
                .as_deref()
                .is_some_and(|c| self.codes.iter().any(|r| r == c));
        let description = error
            .description
            .as_deref()
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let description_ok = self
            .description_contains
            .iter()
            .all(|needle| description.contains(needle.as_str()));
        status_ok && code_ok && description_ok
    }
}

/// How one provider's answers are read.
#[derive(Debug, Clone)]
pub struct ProviderMatcher {
    pub codes: Vec<(&'static str, CodeMeaning)>,
    pub rules: Vec<ClientGoneRule>,
}

impl ProviderMatcher {
    /// Classifies an answer from endpoint `kind` with `status` and the error read from its body.
    pub fn classify(&self, kind: EndpointKind, status: u16, error: &ProviderError) -> Verdict {
        let success = (200..300).contains(&status);
        let client_error = (400..500).contains(&status);
        if !success && !client_error {
            return Verdict::Keep(KeepReason::Status);
        }
        if error.has_access_token {
            return Verdict::Keep(KeepReason::Success);
        }
        let Some(code) = error.code.as_deref() else {
            return Verdict::Keep(KeepReason::NotAnError);
        };
        if success && error.weak_code {
            return Verdict::Keep(KeepReason::NotAnError);
        }

        let verdict = if self.rules.iter().any(|r| r.matches(status, error)) {
            Verdict::ClientGone
        } else {
            match self.meaning(code) {
                Some(CodeMeaning::ClientGone) => Verdict::ClientGone,
                Some(CodeMeaning::ClientGoneWithEvidence)
                    if says_client_is_gone(error.description.as_deref()) =>
                {
                    Verdict::ClientGone
                }
                Some(CodeMeaning::BadGrant)
                    if client_error && code == "invalid_grant" && error.standard_shape =>
                {
                    Verdict::Keep(KeepReason::AlreadyStandard)
                }
                Some(CodeMeaning::BadGrant) => Verdict::BadGrant,
                // A vendor code the filter does not know, with a description that says the
                // client is unknown (and is not one of the RFC codes about something else).
                None if !OTHER_STANDARD_CODES.contains(&code)
                    && says_client_is_gone(error.description.as_deref()) =>
                {
                    Verdict::ClientGone
                }
                _ if success => Verdict::ErrorInSuccess,
                _ => Verdict::Keep(KeepReason::NoEvidence),
            }
        };

        match kind {
            EndpointKind::Token => verdict,
            // RFC 7009 section 2.2: the revocation endpoint answers 200 for an invalid token;
            // only a 4xx about the client itself is rewritten.
            EndpointKind::Revocation if success => Verdict::Keep(KeepReason::RevocationSuccess),
            EndpointKind::Revocation | EndpointKind::Authorization => match verdict {
                Verdict::ClientGone => Verdict::ClientGone,
                _ => Verdict::Keep(KeepReason::NoEvidence),
            },
            EndpointKind::Registration | EndpointKind::Resource => {
                Verdict::Keep(KeepReason::NoEvidence)
            }
        }
    }

    fn meaning(&self, code: &str) -> Option<CodeMeaning> {
        self.codes
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, meaning)| *meaning)
            .or_else(|| code_names_gone_client(code).then_some(CodeMeaning::ClientGone))
    }
}

/// Provider-specific codes that spell out a missing client (`oauth2_client_not_found`,
/// `client_deleted`, `unknown_client_id`) mean the same whoever sends them.
fn code_names_gone_client(code: &str) -> bool {
    let names_client = code.contains("client") || code.contains("application");
    let gone = [
        "not_found",
        "notfound",
        "unknown",
        "deleted",
        "does_not_exist",
        "not_exist",
    ]
    .iter()
    .any(|g| code.contains(g));
    names_client && gone
}

/// Registered error codes (RFC 6749, 6750, 7009, 8628, 8707, 9449, OpenID Connect) that are
/// about something other than the client's existence: never read as "client is gone".
pub(crate) const OTHER_STANDARD_CODES: &[&str] = &[
    "access_denied",
    "unsupported_response_type",
    "unsupported_grant_type",
    "unsupported_token_type",
    "invalid_scope",
    "invalid_target",
    "invalid_token",
    "insufficient_scope",
    "server_error",
    "temporarily_unavailable",
    "authorization_pending",
    "slow_down",
    "expired_token",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
    "invalid_redirect_uri",
    "invalid_client_metadata",
];

/// Words that name the client (or Entra's application) as a whole word.
const SUBJECTS: &[&str] = &["client", "client_id", "clientid", "application", "app"];
/// What, said right after the subject, means it is missing.
const GONE_AFTER: &[&[&str]] = &[
    &["not", "found"],
    &["does", "not", "exist"],
    &["doesn't", "exist"],
    &["not", "exist"],
    &["unknown"],
    &["not", "registered"],
    &["no", "longer", "exists"],
    &["no", "longer", "exist"],
    &["deleted"],
    &["was", "deleted"],
    &["has", "been", "deleted"],
];
/// How far (in words) the missing-word may follow the subject: "Application with identifier
/// 'X' was not found" spans six.
const GONE_WINDOW: usize = 10;
/// A description with any of these words is about something else: a grant, a user, another
/// credential or parameter (Dex answers a reused refresh token with `invalid_request` and the
/// word "client"; Entra's AADSTS50020 speaks of a user account and the application).
const ABOUT_SOMETHING_ELSE: &[&str] = &[
    "refresh",
    "refresh_token",
    "grant",
    "grant_type",
    "code",
    "code_verifier",
    "verifier",
    "redirect",
    "redirect_uri",
    "scope",
    "user",
    "account",
    "assertion",
    "client_assertion",
    "client_assertion_type",
    "dpop",
    "certificate",
    "token_endpoint_auth_method",
    "auth_method",
    "pkce",
];

fn words(lower: &str) -> Vec<&str> {
    lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether a provider's description says the client itself is unknown: "unknown client",
/// "invalid client_id", "no such client", or the client named and then said to be missing
/// within a few words; never when it speaks of a grant, a user or another credential.
pub fn says_client_is_gone(description: Option<&str>) -> bool {
    let Some(text) = description else {
        return false;
    };
    let lower = text.to_ascii_lowercase();
    let w = words(&lower);
    // Entra's own code for "application not found" is definite, whatever else the text says
    // (its description goes on about users consenting in the tenant).
    if w.contains(&"aadsts700016") {
        return true;
    }
    if w.iter().any(|x| ABOUT_SOMETHING_ELSE.contains(x)) {
        return false;
    }
    (0..w.len()).any(|i| {
        if !SUBJECTS.contains(&w[i]) {
            return false;
        }
        let before = |n: usize| i.checked_sub(n).map(|j| w[j]);
        if matches!(before(1), Some("unknown" | "invalid" | "deleted"))
            || (before(2) == Some("no") && before(1) == Some("such"))
        {
            return true;
        }
        let after = &w[i + 1..w.len().min(i + 1 + GONE_WINDOW)];
        (0..after.len()).any(|j| GONE_AFTER.iter().any(|seq| after[j..].starts_with(seq)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    fn matcher(preset: &str) -> ProviderMatcher {
        ProviderMatcher {
            codes: presets::code_table(presets::find(preset).unwrap()),
            rules: vec![],
        }
    }

    fn err(code: &str, description: &str) -> ProviderError {
        ProviderError {
            code: Some(code.to_owned()),
            description: (!description.is_empty()).then(|| description.to_owned()),
            has_access_token: false,
            standard_shape: true,
            weak_code: false,
        }
    }

    const T: EndpointKind = EndpointKind::Token;

    #[test]
    fn invalid_client_is_gone_at_any_4xx_and_in_2xx() {
        let m = matcher("generic");
        for status in [400, 401, 403, 200] {
            assert_eq!(
                m.classify(T, status, &err("invalid_client", "")),
                Verdict::ClientGone
            );
        }
    }

    #[test]
    fn server_errors_and_redirects_are_never_touched() {
        let m = matcher("auto");
        for status in [500, 502, 503, 504, 302, 101] {
            assert_eq!(
                m.classify(T, status, &err("invalid_client", "Client not found")),
                Verdict::Keep(KeepReason::Status)
            );
        }
    }

    #[test]
    fn ambiguous_codes_need_evidence() {
        let m = matcher("generic");
        let entra = err(
            "unauthorized_client",
            "AADSTS700016: Application with identifier 'X' was not found in the directory 'T'.",
        );
        assert_eq!(m.classify(T, 400, &entra), Verdict::ClientGone);
        let clerk = err(
            "invalid_request",
            "The requested OAuth 2.0 Client does not exist.",
        );
        assert_eq!(m.classify(T, 400, &clerk), Verdict::ClientGone);
        let plain = err(
            "unauthorized_client",
            "grant type not allowed for this client",
        );
        assert_eq!(
            m.classify(T, 400, &plain),
            Verdict::Keep(KeepReason::NoEvidence)
        );
        assert_eq!(
            m.classify(T, 400, &err("invalid_request", "")),
            Verdict::Keep(KeepReason::NoEvidence)
        );
    }

    #[test]
    fn dex_reused_refresh_token_is_not_a_gone_client() {
        let dex = err(
            "invalid_request",
            "Refresh token is invalid or has already been claimed by another client.",
        );
        assert_eq!(
            matcher("auto").classify(T, 400, &dex),
            Verdict::Keep(KeepReason::NoEvidence)
        );
    }

    #[test]
    fn grants_stay_grants() {
        let m = matcher("auto");
        assert_eq!(
            m.classify(T, 400, &err("invalid_grant", "revoked")),
            Verdict::Keep(KeepReason::AlreadyStandard)
        );
        assert_eq!(
            m.classify(T, 403, &err("invalid_grant", "")),
            Verdict::Keep(KeepReason::AlreadyStandard)
        );
        assert_eq!(
            m.classify(T, 200, &err("invalid_grant", "")),
            Verdict::BadGrant
        );
        assert_eq!(
            m.classify(T, 200, &err("bad_refresh_token", "")),
            Verdict::BadGrant
        );
        assert_eq!(
            m.classify(T, 400, &err("refresh_token_not_found", "")),
            Verdict::BadGrant
        );
    }

    #[test]
    fn provider_codes_need_their_preset() {
        let github = err("incorrect_client_credentials", "");
        assert_eq!(
            matcher("github").classify(T, 200, &github),
            Verdict::ClientGone
        );
        assert_eq!(
            matcher("generic").classify(T, 200, &github),
            Verdict::ErrorInSuccess
        );
        assert_eq!(
            matcher("generic").classify(T, 400, &github),
            Verdict::Keep(KeepReason::NoEvidence)
        );
    }

    #[test]
    fn self_describing_codes_need_no_preset() {
        let m = matcher("generic");
        for code in [
            "oauth2_client_not_found",
            "client_deleted",
            "unknown_client_id",
        ] {
            assert_eq!(
                m.classify(T, 404, &err(code, "")),
                Verdict::ClientGone,
                "{code}"
            );
        }
        for code in ["invalid_client_metadata", "client_busy", "user_not_found"] {
            assert_ne!(
                m.classify(T, 400, &err(code, "")),
                Verdict::ClientGone,
                "{code}"
            );
        }
    }

    #[test]
    fn evidence_reads_words_not_substrings() {
        for gone in [
            "The requested OAuth 2.0 Client does not exist.",
            "Client authentication failed (e.g., unknown client, no client authentication \
             included, or unsupported client authentication method).",
            "AADSTS700016: Application with identifier 'abc' was not found in the directory 'x'. \
             This can happen if the application has not been installed by the administrator of \
             the tenant or consented to by any user in the tenant.",
            "Invalid client_id",
            "Client ID 'abc' not found",
            "Client ID 'abc' is not registered with this server.",
            "Invalid client credentials",
            "Invalid client or Invalid client credentials",
            "No such client",
            "The OAuth client was not found.",
        ] {
            assert!(says_client_is_gone(Some(gone)), "{gone}");
        }
        for other in [
            "User not found for this client",
            "AADSTS50020: User account from identity provider does not exist in tenant and \
             cannot access the application.",
            "Unknown client_assertion_type",
            "DPoP proof key unknown for client",
            "unknown token_endpoint_auth_method for this client",
            "Refresh token is invalid or has already been claimed by another client.",
            "clientele unknown",
            "The client is fine but the code was not found",
            "client_secret is missing",
            "",
        ] {
            assert!(!says_client_is_gone(Some(other)), "{other}");
        }
    }

    #[test]
    fn vendor_codes_with_evidence_only() {
        let m = matcher("generic");
        assert_eq!(
            m.classify(T, 404, &err("not_found", "Client not found")),
            Verdict::ClientGone
        );
        assert_eq!(
            m.classify(T, 400, &err("not_found", "Resource not found")),
            Verdict::Keep(KeepReason::NoEvidence)
        );
        assert_eq!(
            m.classify(
                T,
                400,
                &err("invalid_target", "resource unknown for this client")
            ),
            Verdict::Keep(KeepReason::NoEvidence)
        );
        assert_eq!(
            m.classify(T, 429, &err("slow_down", "client unknown rate")),
            Verdict::Keep(KeepReason::NoEvidence)
        );
    }

    #[test]
    fn invalid_grant_in_an_envelope_is_made_standard() {
        let m = matcher("auto");
        let mut e = err("invalid_grant", "");
        e.standard_shape = false;
        assert_eq!(m.classify(T, 400, &e), Verdict::BadGrant);
    }

    #[test]
    fn access_token_wins() {
        let mut e = err("invalid_client", "");
        e.has_access_token = true;
        assert_eq!(
            matcher("auto").classify(T, 200, &e),
            Verdict::Keep(KeepReason::Success)
        );
        let ok = ProviderError::default();
        assert_eq!(
            matcher("auto").classify(T, 200, &ok),
            Verdict::Keep(KeepReason::NotAnError)
        );
    }

    #[test]
    fn revocation_rewrites_only_client_errors() {
        let m = matcher("auto");
        let r = EndpointKind::Revocation;
        assert_eq!(
            m.classify(r, 400, &err("invalid_client", "")),
            Verdict::ClientGone
        );
        assert_eq!(
            m.classify(r, 200, &err("invalid_client", "")),
            Verdict::Keep(KeepReason::RevocationSuccess)
        );
        assert_eq!(
            m.classify(r, 400, &err("unsupported_token_type", "")),
            Verdict::Keep(KeepReason::NoEvidence)
        );
    }

    #[test]
    fn registration_answers_are_not_classified_here() {
        let m = matcher("auto");
        assert_eq!(
            m.classify(EndpointKind::Registration, 401, &err("invalid_client", "")),
            Verdict::Keep(KeepReason::NoEvidence)
        );
    }

    #[test]
    fn custom_rules_match_all_their_conditions() {
        let mut m = matcher("generic");
        m.rules.push(ClientGoneRule {
            statuses: vec![404],
            codes: vec!["app_missing".into()],
            description_contains: vec!["is parked".into()],
        });
        assert_eq!(
            m.classify(T, 404, &err("app_missing", "This app is parked")),
            Verdict::ClientGone
        );
        assert_eq!(
            m.classify(T, 400, &err("app_missing", "This app is parked")),
            Verdict::Keep(KeepReason::NoEvidence)
        );
        assert_eq!(
            m.classify(T, 404, &err("app_missing", "other")),
            Verdict::Keep(KeepReason::NoEvidence)
        );
    }
}
