//! What each known provider answers, as data: its usual endpoint paths and the error codes it
//! uses for a client that is gone and for a bad grant. Sources: `shared/fixtures/providers`
//! and the providers' own code and documentation.

/// What an error code means, before any other evidence is weighed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMeaning {
    /// The client is unknown, deleted or failed authentication (RFC 6749 `invalid_client`).
    ClientGone,
    /// Used for an unknown client and for other failures: needs the description to say the
    /// client is unknown, and must not mention a grant.
    ClientGoneWithEvidence,
    /// The grant (refresh token, code) is bad: the client itself is fine.
    BadGrant,
}

use CodeMeaning::{BadGrant, ClientGone, ClientGoneWithEvidence};

/// A provider's known behaviour.
#[derive(Debug)]
pub struct Preset {
    pub name: &'static str,
    pub token: &'static [&'static str],
    pub revocation: &'static [&'static str],
    pub registration: &'static [&'static str],
    pub authorization: &'static [&'static str],
    /// Provider-specific codes, on top of [`STANDARD_CODES`].
    pub codes: &'static [(&'static str, CodeMeaning)],
}

/// Codes every provider is read with: RFC 6749 section 5.2 and the ambiguous ones that
/// standards-following servers also use for an unknown client.
pub const STANDARD_CODES: &[(&str, CodeMeaning)] = &[
    ("invalid_client", ClientGone),
    ("invalid_grant", BadGrant),
    ("unauthorized_client", ClientGoneWithEvidence),
    ("invalid_request", ClientGoneWithEvidence),
];

const ROOT_TOKEN: &[&str] = &["/token"];
const ROOT_REVOKE: &[&str] = &["/revoke"];
const ROOT_REGISTER: &[&str] = &["/register"];
const ROOT_AUTHORIZE: &[&str] = &["/authorize"];

/// Every preset. `auto` reads answers with the codes of all of them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "generic",
        token: ROOT_TOKEN,
        revocation: ROOT_REVOKE,
        registration: ROOT_REGISTER,
        authorization: ROOT_AUTHORIZE,
        codes: &[],
    },
    Preset {
        name: "auto",
        token: ROOT_TOKEN,
        revocation: ROOT_REVOKE,
        registration: ROOT_REGISTER,
        authorization: ROOT_AUTHORIZE,
        codes: &[],
    },
    Preset {
        name: "mcp-sdk",
        token: ROOT_TOKEN,
        revocation: ROOT_REVOKE,
        registration: ROOT_REGISTER,
        authorization: ROOT_AUTHORIZE,
        codes: &[],
    },
    Preset {
        name: "fastmcp",
        token: ROOT_TOKEN,
        revocation: ROOT_REVOKE,
        registration: ROOT_REGISTER,
        authorization: ROOT_AUTHORIZE,
        codes: &[],
    },
    Preset {
        name: "cloudflare",
        token: ROOT_TOKEN,
        revocation: &[],
        registration: ROOT_REGISTER,
        authorization: ROOT_AUTHORIZE,
        codes: &[],
    },
    Preset {
        name: "node-oidc-provider",
        token: ROOT_TOKEN,
        revocation: &["/token/revocation"],
        registration: &["/reg"],
        authorization: &["/auth"],
        codes: &[],
    },
    Preset {
        name: "hydra",
        token: &["/oauth2/token"],
        revocation: &["/oauth2/revoke"],
        registration: &["/oauth2/register"],
        authorization: &["/oauth2/auth"],
        codes: &[],
    },
    Preset {
        name: "clerk",
        token: &["/oauth/token"],
        revocation: &[],
        registration: &["/oauth/register"],
        authorization: &["/oauth/authorize"],
        codes: &[],
    },
    Preset {
        name: "keycloak",
        token: &["/realms/*/protocol/openid-connect/token"],
        revocation: &["/realms/*/protocol/openid-connect/revoke"],
        registration: &["/realms/*/clients-registrations/openid-connect"],
        authorization: &["/realms/*/protocol/openid-connect/auth"],
        codes: &[],
    },
    Preset {
        name: "okta",
        token: &["/oauth2/v1/token", "/oauth2/*/v1/token"],
        revocation: &["/oauth2/v1/revoke", "/oauth2/*/v1/revoke"],
        registration: &["/oauth2/v1/clients"],
        authorization: &["/oauth2/v1/authorize", "/oauth2/*/v1/authorize"],
        codes: &[],
    },
    Preset {
        name: "entra",
        token: &["/*/oauth2/v2.0/token", "/*/oauth2/token"],
        revocation: &[],
        registration: &[],
        authorization: &["/*/oauth2/v2.0/authorize", "/*/oauth2/authorize"],
        codes: &[],
    },
    Preset {
        name: "github",
        token: &["/login/oauth/access_token"],
        revocation: &[],
        registration: &[],
        authorization: &["/login/oauth/authorize"],
        codes: &[
            ("incorrect_client_credentials", ClientGone),
            ("bad_refresh_token", BadGrant),
            ("bad_verification_code", BadGrant),
        ],
    },
    Preset {
        name: "supabase",
        token: &["/auth/v1/oauth/token"],
        revocation: &[],
        registration: &["/auth/v1/oauth/clients/register"],
        authorization: &["/auth/v1/oauth/authorize"],
        codes: &[
            ("oauth_client_not_found", ClientGone),
            ("invalid_credentials", ClientGoneWithEvidence),
            ("refresh_token_not_found", BadGrant),
            ("refresh_token_already_used", BadGrant),
            ("session_not_found", BadGrant),
            ("session_expired", BadGrant),
            ("flow_state_not_found", BadGrant),
            ("flow_state_expired", BadGrant),
            ("bad_code_verifier", BadGrant),
        ],
    },
    Preset {
        name: "google",
        token: &["/token"],
        revocation: &["/revoke"],
        registration: &[],
        authorization: &["/o/oauth2/v2/auth"],
        codes: &[("deleted_client", ClientGone)],
    },
    Preset {
        name: "auth0",
        token: &["/oauth/token"],
        revocation: &["/oauth/revoke"],
        registration: &["/oidc/register"],
        authorization: &["/authorize"],
        codes: &[("access_denied", ClientGoneWithEvidence)],
    },
    Preset {
        name: "cognito",
        token: &["/oauth2/token"],
        revocation: &["/oauth2/revoke"],
        registration: &[],
        authorization: &["/oauth2/authorize"],
        codes: &[],
    },
    Preset {
        name: "authlib",
        token: &["/oauth/token"],
        revocation: &["/oauth/revoke"],
        registration: &["/oauth/register"],
        authorization: &["/oauth/authorize"],
        codes: &[],
    },
    Preset {
        name: "dex",
        token: &["/dex/token", "/token"],
        revocation: &[],
        registration: &[],
        authorization: &["/dex/auth", "/auth"],
        codes: &[],
    },
];

/// Codes no single preset owns but that only ever mean a client is gone.
const UNAMBIGUOUS_EXTRA: &[(&str, CodeMeaning)] = &[
    ("client_not_found", ClientGone),
    ("unknown_client", ClientGone),
    ("invalid_client_id", ClientGone),
];

/// Finds a preset by name.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The names, for error messages.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// The code table a provider's answers are read with: the standard codes, then the preset's,
/// and for `auto` every preset's. A code listed twice keeps its first meaning.
pub fn code_table(preset: &Preset) -> Vec<(&'static str, CodeMeaning)> {
    let mut table: Vec<(&'static str, CodeMeaning)> = Vec::new();
    let mut add = |entries: &[(&'static str, CodeMeaning)]| {
        for &(code, meaning) in entries {
            if !table.iter().any(|(c, _)| *c == code) {
                table.push((code, meaning));
            }
        }
    };
    add(STANDARD_CODES);
    add(UNAMBIGUOUS_EXTRA);
    if preset.name == "auto" {
        for p in PRESETS {
            add(p.codes);
        }
    } else {
        add(preset.codes);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let names = names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(n), "{n} twice");
        }
    }

    #[test]
    fn auto_knows_every_preset_code() {
        let auto = code_table(find("auto").unwrap());
        for p in PRESETS {
            for (code, _) in p.codes {
                assert!(auto.iter().any(|(c, _)| c == code), "{code}");
            }
        }
    }

    #[test]
    fn generic_does_not_know_provider_codes() {
        let generic = code_table(find("generic").unwrap());
        assert!(!generic
            .iter()
            .any(|(c, _)| *c == "incorrect_client_credentials"));
        assert!(generic
            .iter()
            .any(|(c, m)| *c == "invalid_client" && *m == ClientGone));
    }
}
