//! Validation and compilation of a parsed policy. Every refusal names the field.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

use crate::classify::{ClientGoneRule, ProviderMatcher};
use crate::endpoint::{EndpointKind, PathPattern, Route, Router};
use crate::lifecycle::envelope::{Signer, SigningKey};
use crate::lifecycle::{time, Lifecycle};
use crate::presets;
use crate::reply::{is_error_code, is_error_description};

use super::document::{EndpointsSpec, LifecycleSpec, PolicyDocument, ProviderSpec};
use super::error::PolicyError;
use super::load;
use super::resources::{self, Resources};

/// Largest `limits.max_body_bytes`: Envoy's default per-connection buffer limit is 1 MiB, and
/// the filter must never be the one to reach it.
pub const MAX_BODY_BYTES_LIMIT: u64 = 1024 * 1024;
const MAX_PROVIDERS: usize = 64;
const MAX_PATHS_PER_KIND: usize = 32;
const MAX_RULES: usize = 32;

/// A provider, compiled.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub preset: &'static str,
    pub matcher: ProviderMatcher,
    pub lifecycle: Lifecycle,
}

/// Where the policy reads what is not in its text: the clock and the environment.
pub struct LoadContext<'a> {
    /// Unix seconds.
    pub now: i64,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Latest `registration_epoch` accepted, relative to load time: an epoch a day ahead can
/// schedule a retirement; one further out is most likely a typo that would retire every
/// client registered until then.
pub const MAX_EPOCH_AHEAD_SECS: i64 = 86_400;
/// Earliest `registration_epoch` accepted (2000-01-01): anything before is a typo.
const MIN_EPOCH: i64 = 946_684_800;
const MIN_KEY_BYTES: usize = 32;

/// How rewritten answers look.
#[derive(Debug, Clone)]
pub struct RewriteSettings {
    pub error_description: String,
    pub realm: String,
}

/// The policy in the form the request path uses.
#[derive(Debug, Clone)]
pub struct Policy {
    pub router: Router,
    pub providers: Vec<Provider>,
    pub max_body_bytes: usize,
    pub rewrite: RewriteSettings,
    pub stale_client_page: bool,
    /// Issue 6: protected resources, their metadata locations and aliases.
    pub resources: Resources,
    /// `mode: observe`: decide, log and count, change nothing.
    pub observe: bool,
}

impl Policy {
    /// Parses (YAML or JSON) and compiles a policy, with the system clock and environment.
    pub fn from_bytes(text: &[u8]) -> Result<Self, PolicyError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let env = |name: &str| std::env::var(name).ok();
        Self::from_bytes_with(text, &LoadContext { now, env: &env })
    }

    /// Parses and compiles a policy with an explicit clock and environment.
    pub fn from_bytes_with(text: &[u8], ctx: &LoadContext<'_>) -> Result<Self, PolicyError> {
        let (document, yaml): (PolicyDocument, _) = load::parse(text)?;
        Self::compile(document, ctx).map_err(|e| match &yaml {
            Some(doc) => e.at_line(|field| doc.line_of(field)),
            None => e,
        })
    }

    /// Validates a parsed document and builds the runtime form.
    pub fn compile(doc: PolicyDocument, ctx: &LoadContext<'_>) -> Result<Self, PolicyError> {
        if doc.version != 1 {
            return Err(PolicyError::invalid(
                "version",
                format!("version {} is not supported; use 1", doc.version),
            ));
        }
        if doc.providers.is_empty() {
            return Err(PolicyError::invalid(
                "providers",
                "at least one provider is required",
            ));
        }
        if doc.providers.len() > MAX_PROVIDERS {
            return Err(PolicyError::invalid(
                "providers",
                format!("at most {MAX_PROVIDERS} providers are allowed"),
            ));
        }

        let mut routes: Vec<Route> = Vec::new();
        let mut providers = Vec::with_capacity(doc.providers.len());
        for (index, spec) in doc.providers.iter().enumerate() {
            let field = format!("providers[{index}]");
            if providers.iter().any(|p: &Provider| p.name == spec.name) {
                return Err(PolicyError::invalid(
                    format!("{field}.name"),
                    format!("`{}` is used by another provider", spec.name),
                ));
            }
            let mut provider = compile_provider(&field, spec)?;
            if let Some(lifecycle) = &spec.lifecycle {
                provider.lifecycle =
                    compile_lifecycle(&format!("{field}.lifecycle"), lifecycle, ctx)?;
            }
            providers.push(provider);
            add_routes(&field, index, spec, &mut routes)?;
        }

        let max = doc.limits.max_body_bytes;
        if !(1..=MAX_BODY_BYTES_LIMIT).contains(&max) {
            return Err(PolicyError::invalid(
                "limits.max_body_bytes",
                format!("{max} is outside 1..={MAX_BODY_BYTES_LIMIT}"),
            ));
        }
        let description = doc.rewrite.error_description;
        if description.is_empty() || description.len() > 512 || !is_error_description(&description)
        {
            return Err(PolicyError::invalid(
                "rewrite.error_description",
                "must be 1 to 512 printable ASCII characters without `\"` or `\\` \
                 (RFC 6749 section 5.2)",
            ));
        }
        let realm = doc.rewrite.realm;
        if realm.is_empty() || realm.len() > 128 || !is_error_description(&realm) {
            return Err(PolicyError::invalid(
                "rewrite.realm",
                "must be 1 to 128 printable ASCII characters without `\"` or `\\`",
            ));
        }

        let router = Router::new(routes);
        let resources = resources::compile(&doc.resources, &router)?;

        Ok(Self {
            router,
            providers,
            max_body_bytes: usize::try_from(max).unwrap_or(usize::MAX),
            rewrite: RewriteSettings {
                error_description: description,
                realm,
            },
            stale_client_page: doc.authorization.stale_client_page,
            resources,
            observe: doc.mode == super::document::Mode::Observe,
        })
    }
}

fn compile_provider(field: &str, spec: &ProviderSpec) -> Result<Provider, PolicyError> {
    let name = &spec.name;
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(PolicyError::invalid(
            format!("{field}.name"),
            "must be 1 to 64 letters, digits, `_` or `-` (it becomes part of metric names)",
        ));
    }
    let preset = presets::find(&spec.preset).ok_or_else(|| {
        PolicyError::invalid(
            format!("{field}.preset"),
            format!(
                "unknown preset `{}`; known presets: {}",
                truncated(&spec.preset),
                presets::names().join(", ")
            ),
        )
    })?;

    if spec.client_gone.len() > MAX_RULES {
        return Err(PolicyError::invalid(
            format!("{field}.client_gone"),
            format!("at most {MAX_RULES} rules are allowed"),
        ));
    }
    let mut rules = Vec::with_capacity(spec.client_gone.len());
    for (i, rule) in spec.client_gone.iter().enumerate() {
        let rule_field = format!("{field}.client_gone[{i}]");
        for (j, status) in rule.status.iter().enumerate() {
            if !(200..300).contains(status) && !(400..500).contains(status) {
                return Err(PolicyError::invalid(
                    format!("{rule_field}.status[{j}]"),
                    format!(
                        "{status} is not allowed; only 4xx (and 2xx for providers that \
                         answer errors with 200) can say a client is gone, never a 5xx outage"
                    ),
                ));
            }
        }
        if rule.error.is_empty() && rule.description_contains.is_empty() {
            return Err(PolicyError::invalid(
                rule_field,
                "needs `error` or `description_contains`: a status alone is no evidence \
                 that the client is gone",
            ));
        }
        if rule.description_contains.is_empty()
            && rule.error.iter().all(|c| is_ambiguous(preset, c))
        {
            return Err(PolicyError::invalid(
                format!("{rule_field}.error"),
                "these codes also mean other failures (a bad grant, a bad request); add \
                 `description_contains` with the provider's words for an unknown client",
            ));
        }
        for (j, code) in rule.error.iter().enumerate() {
            if !is_error_code(code) {
                return Err(PolicyError::invalid(
                    format!("{rule_field}.error[{j}]"),
                    "must be an error code: 1 to 64 printable ASCII characters, no spaces",
                ));
            }
        }
        for (j, text) in rule.description_contains.iter().enumerate() {
            if text.trim().len() < 3 || text.len() > 256 {
                return Err(PolicyError::invalid(
                    format!("{rule_field}.description_contains[{j}]"),
                    "must be 3 to 256 characters",
                ));
            }
        }
        rules.push(ClientGoneRule {
            statuses: rule.status.clone(),
            codes: rule.error.iter().map(|c| c.to_ascii_lowercase()).collect(),
            description_contains: rule
                .description_contains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        });
    }

    Ok(Provider {
        name: name.clone(),
        preset: preset.name,
        matcher: ProviderMatcher {
            codes: presets::code_table(preset),
            rules,
        },
        lifecycle: Lifecycle::default(),
    })
}

fn compile_lifecycle(
    field: &str,
    spec: &LifecycleSpec,
    ctx: &LoadContext<'_>,
) -> Result<Lifecycle, PolicyError> {
    let max_age = match &spec.client_max_age {
        Some(text) => Some(
            time::parse_duration(text)
                .map_err(|why| PolicyError::invalid(format!("{field}.client_max_age"), why))?,
        ),
        None => None,
    };
    let epoch = match &spec.registration_epoch {
        Some(text) => {
            let f = format!("{field}.registration_epoch");
            let epoch = time::parse_timestamp(text).map_err(|why| PolicyError::invalid(&f, why))?;
            if epoch > ctx.now.saturating_add(MAX_EPOCH_AHEAD_SECS) {
                return Err(PolicyError::invalid(
                    f,
                    format!(
                        "`{text}` is more than {} hours in the future; an epoch retires every \
                         client registered before it, so a far-future one is refused as a likely typo",
                        MAX_EPOCH_AHEAD_SECS / 3600
                    ),
                ));
            }
            if epoch < MIN_EPOCH {
                return Err(PolicyError::invalid(f, format!("`{text}` is before 2000")));
            }
            Some(epoch)
        }
        None => None,
    };
    if spec.inject_client_secret_expires_at && max_age.is_none() {
        return Err(PolicyError::invalid(
            format!("{field}.inject_client_secret_expires_at"),
            "needs `client_max_age`: the expiry is registration time plus the maximum age",
        ));
    }

    let signer = if spec.sign_client_ids {
        if spec.signing_keys.is_empty() {
            return Err(PolicyError::invalid(
                format!("{field}.signing_keys"),
                "`sign_client_ids` is on but no signing key is given",
            ));
        }
        let mut keys: Vec<SigningKey> = Vec::new();
        for (i, key) in spec.signing_keys.iter().enumerate() {
            let kf = format!("{field}.signing_keys[{i}]");
            if key.id.is_empty()
                || key.id.len() > 16
                || !key
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(PolicyError::invalid(
                    format!("{kf}.id"),
                    "must be 1 to 16 letters, digits, `-` or `_`",
                ));
            }
            if keys.iter().any(|k| k.id == key.id) {
                return Err(PolicyError::invalid(
                    format!("{kf}.id"),
                    format!("`{}` is used by another key", key.id),
                ));
            }
            let secret = match (&key.secret, &key.secret_env) {
                (Some(inline), None) => decode_key(inline)
                    .ok_or_else(|| PolicyError::invalid(format!("{kf}.secret"), "is not base64"))?,
                (None, Some(name)) => {
                    let value = (ctx.env)(name).ok_or_else(|| {
                        PolicyError::invalid(
                            format!("{kf}.secret_env"),
                            format!(
                                "environment variable `{name}` is not set in the VM (list it in \
                                 vm_config.environment_variables.host_env_keys)"
                            ),
                        )
                    })?;
                    decode_key(&value).ok_or_else(|| {
                        PolicyError::invalid(
                            format!("{kf}.secret_env"),
                            format!("environment variable `{name}` is not base64"),
                        )
                    })?
                }
                _ => {
                    return Err(PolicyError::invalid(
                        kf,
                        "needs exactly one of `secret` and `secret_env`",
                    ))
                }
            };
            if secret.len() < MIN_KEY_BYTES {
                return Err(PolicyError::invalid(
                    kf,
                    format!(
                        "the key is {} bytes; at least {MIN_KEY_BYTES} random bytes are required",
                        secret.len()
                    ),
                ));
            }
            keys.push(SigningKey::new(key.id.clone(), secret));
        }
        Some(Signer::new(keys))
    } else {
        if !spec.signing_keys.is_empty() {
            return Err(PolicyError::invalid(
                format!("{field}.signing_keys"),
                "keys are given but `sign_client_ids` is off",
            ));
        }
        None
    };
    if spec.retire_unsigned_clients && signer.is_none() {
        return Err(PolicyError::invalid(
            format!("{field}.retire_unsigned_clients"),
            "needs `sign_client_ids: true`",
        ));
    }
    if !spec.mcp_endpoints.is_empty() && max_age.is_none() && epoch.is_none() {
        return Err(PolicyError::invalid(
            format!("{field}.mcp_endpoints"),
            "needs `client_max_age` or `registration_epoch`: nothing to check tokens against",
        ));
    }
    if let Some(url) = &spec.resource_metadata {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 2048
            && is_error_description(url)
            && !url.contains(' ')
            && !url.contains('#');
        if !ok {
            return Err(PolicyError::invalid(
                format!("{field}.resource_metadata"),
                "must be an absolute http(s) URL without spaces, quotes, backslashes or fragment",
            ));
        }
    }
    if max_age.is_none() && epoch.is_none() && signer.is_none() {
        return Err(PolicyError::invalid(
            field,
            "sets no rule; give `client_max_age`, `registration_epoch` or `sign_client_ids`",
        ));
    }
    Ok(Lifecycle {
        max_age,
        epoch,
        inject_expiry: spec.inject_client_secret_expires_at,
        signer,
        retire_unsigned: spec.retire_unsigned_clients,
        resource_metadata: spec.resource_metadata.clone(),
    })
}

/// Standard or URL-safe base64, padded or not.
fn decode_key(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    STANDARD
        .decode(text)
        .ok()
        .or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok())
}

/// A user-supplied value as echoed in an error message: at most 64 characters.
fn truncated(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((at, _)) => format!("{}...", &value[..at]),
        None => value.to_owned(),
    }
}

/// Whether a code says more than "the client is gone" for this preset.
fn is_ambiguous(preset: &presets::Preset, code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    let known = presets::code_table(preset)
        .into_iter()
        .find(|(c, _)| *c == code)
        .map(|(_, m)| m);
    match known {
        Some(presets::CodeMeaning::ClientGone) => false,
        Some(_) => true,
        None => crate::classify::OTHER_STANDARD_CODES.contains(&code.as_str()),
    }
}

fn kind_paths(spec: &ProviderSpec, kind: EndpointKind) -> &[String] {
    let endpoints: &EndpointsSpec = &spec.endpoints;
    match kind {
        EndpointKind::Resource => spec
            .lifecycle
            .as_ref()
            .map(|l| l.mcp_endpoints.as_slice())
            .unwrap_or_default(),
        EndpointKind::Token => &endpoints.token,
        EndpointKind::Revocation => &endpoints.revocation,
        EndpointKind::Registration => &endpoints.registration,
        EndpointKind::Authorization => &endpoints.authorization,
    }
}

fn preset_paths(preset: &presets::Preset, kind: EndpointKind) -> &'static [&'static str] {
    match kind {
        EndpointKind::Token => preset.token,
        EndpointKind::Revocation => preset.revocation,
        EndpointKind::Registration => preset.registration,
        EndpointKind::Authorization => preset.authorization,
        EndpointKind::Resource => &[],
    }
}

fn add_routes(
    field: &str,
    provider: usize,
    spec: &ProviderSpec,
    routes: &mut Vec<Route>,
) -> Result<(), PolicyError> {
    let declared = EndpointKind::OAUTH
        .iter()
        .any(|k| !kind_paths(spec, *k).is_empty());

    for kind in EndpointKind::ALL {
        let paths: Vec<(String, String)> = if kind == EndpointKind::Resource {
            kind_paths(spec, kind)
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("{field}.lifecycle.mcp_endpoints[{i}]"), p.clone()))
                .collect()
        } else if declared {
            let list = kind_paths(spec, kind);
            if list.len() > MAX_PATHS_PER_KIND {
                return Err(PolicyError::invalid(
                    format!("{field}.endpoints.{kind}"),
                    format!("at most {MAX_PATHS_PER_KIND} paths are allowed"),
                ));
            }
            list.iter()
                .enumerate()
                .map(|(i, p)| (format!("{field}.endpoints.{kind}[{i}]"), p.clone()))
                .collect()
        } else {
            // No endpoints declared: the preset's usual paths.
            let preset = presets::find(&spec.preset);
            preset
                .map(|p| preset_paths(p, kind))
                .unwrap_or_default()
                .iter()
                .map(|p| (format!("{field}.preset ({kind} path {p})"), (*p).to_owned()))
                .collect()
        };
        for (path_field, text) in paths {
            let pattern =
                PathPattern::parse(&text).map_err(|why| PolicyError::invalid(&path_field, why))?;
            if let Some(other) = routes.iter().find(|r| r.pattern.overlaps(&pattern)) {
                if other.pattern != pattern {
                    return Err(PolicyError::invalid(
                        path_field,
                        format!(
                            "path `{}` and `{}` (the {} endpoint of providers[{}]) can match \
                             the same request with the same number of `*`; make one of them \
                             literal",
                            truncated(&text),
                            other.pattern.as_str(),
                            other.kind,
                            other.provider
                        ),
                    ));
                }
                return Err(PolicyError::invalid(
                    path_field,
                    format!(
                        "path `{text}` is already the {} endpoint of providers[{}]; \
                         a path can belong to one endpoint only",
                        other.kind, other.provider
                    ),
                ));
            }
            routes.push(Route {
                pattern,
                kind,
                provider,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Policy, String> {
        Policy::from_bytes(text.as_bytes()).map_err(|e| e.to_string())
    }

    /// The message without its ` (line N)` part, for tables of expected messages.
    fn without_line(message: &str) -> String {
        match message.find(" (line ") {
            Some(at) => match message[at..].find(')') {
                Some(end) => format!("{}{}", &message[..at], &message[at + end + 1..]),
                None => message.to_owned(),
            },
            None => message.to_owned(),
        }
    }

    #[test]
    fn errors_found_after_parsing_carry_the_line() {
        let e = load("version: 1\nproviders:\n  - name: a\n    preset: nope\n").unwrap_err();
        assert!(
            e.starts_with("field `providers[0].preset` (line 4): unknown preset"),
            "{e}"
        );
    }

    const MINIMAL: &str = "version: 1\nproviders:\n  - name: op\n    preset: hydra\n";

    #[test]
    fn minimal_policy_uses_preset_paths_and_defaults() {
        let p = load(MINIMAL).unwrap();
        assert_eq!(p.max_body_bytes, 16 * 1024);
        assert!(p.stale_client_page);
        let route = p.router.find("/oauth2/token").unwrap();
        assert_eq!(route.kind, EndpointKind::Token);
        assert_eq!(p.providers[route.provider].preset, "hydra");
        assert!(p.router.find("/token").is_none());
    }

    #[test]
    fn observe_mode() {
        assert!(!load(MINIMAL).unwrap().observe);
        assert!(load(&format!("{MINIMAL}mode: observe\n")).unwrap().observe);
        let e = load(&format!("{MINIMAL}mode: dry\n")).unwrap_err();
        assert!(
            e.contains("field `mode` (line 5): unknown variant `dry`"),
            "{e}"
        );
    }

    #[test]
    fn json_is_accepted() {
        let p = load(r#"{"version":1,"providers":[{"name":"op","endpoints":{"token":["/t"]}}]}"#)
            .unwrap();
        assert_eq!(p.providers[0].preset, "auto");
        assert!(p.router.find("/t").is_some());
        // Declared endpoints replace the preset's.
        assert!(p.router.find("/token").is_none());
    }

    #[test]
    fn yaml_flow_mappings_are_yaml() {
        let p =
            load("{version: 1, providers: [{name: a, preset: okta, endpoints: {token: [/t]}}]}")
                .unwrap();
        assert_eq!(p.providers[0].preset, "okta");
        let e = load("{\"version\": 1, \"providers\": [{\"name\": \"a\", \"x\": 1}]}").unwrap_err();
        assert!(
            e.contains("field `providers[0].x` (line 1): unknown field `x`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_field_is_named_with_its_path_and_line() {
        let e = load("version: 1\nproviders:\n  - name: op\n    endpoints:\n      tokn: [/t]\n")
            .unwrap_err();
        assert!(e.contains("providers[0].endpoints"), "{e}");
        assert!(e.contains("tokn"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = load("version: 1\nproviders:\n  - name: op\nlimits:\n  max_body_bytes: lots\n")
            .unwrap_err();
        assert!(e.contains("limits.max_body_bytes"), "{e}");
        let e = load(r#"{"version":1,"providers":{"name":"x"}}"#).unwrap_err();
        assert!(e.contains("`providers`"), "{e}");
    }

    #[test]
    fn impossible_combinations_are_refused() {
        let cases = [
            ("version: 2\nproviders: [{name: a}]", "field `version`"),
            ("version: 1\nproviders: []", "field `providers`"),
            (
                "version: 1\nproviders: [{name: a, preset: nope}]",
                "field `providers[0].preset`: unknown preset `nope`",
            ),
            (
                "version: 1\nproviders: [{name: 'a b'}]",
                "field `providers[0].name`",
            ),
            (
                "version: 1\nproviders: [{name: a}, {name: a, endpoints: {token: [/x]}}]",
                "field `providers[1].name`: `a` is used by another provider",
            ),
            (
                "version: 1\nproviders: [{name: a, endpoints: {token: [/t], revocation: [/t]}}]",
                "field `providers[0].endpoints.revocation[0]`: path `/t` is already the token",
            ),
            (
                "version: 1\nproviders: [{name: a, endpoints: {token: ['t']}}]",
                "field `providers[0].endpoints.token[0]`: must start with `/`",
            ),
            (
                "version: 1\nproviders: [{name: a, endpoints: {token: ['/t?x=1']}}]",
                "providers[0].endpoints.token[0]",
            ),
            (
                "version: 1\nproviders: [{name: a, client_gone: [{status: [400]}]}]",
                "field `providers[0].client_gone[0]`: needs `error`",
            ),
            (
                "version: 1\nproviders: [{name: a, client_gone: [{status: [503], error: [x]}]}]",
                "field `providers[0].client_gone[0].status[0]`: 503 is not allowed",
            ),
            (
                "version: 1\nproviders: [{name: a, client_gone: [{error: [invalid_request]}]}]",
                "field `providers[0].client_gone[0].error`: these codes also mean other failures",
            ),
            (
                "version: 1\nproviders: [{name: a}]\nlimits: {max_body_bytes: 0}",
                "field `limits.max_body_bytes`",
            ),
            (
                "version: 1\nproviders: [{name: a}]\nlimits: {max_body_bytes: 2000000}",
                "field `limits.max_body_bytes`",
            ),
            (
                "version: 1\nproviders: [{name: a}]\nrewrite: {error_description: 'say \"hi\"'}",
                "field `rewrite.error_description`",
            ),
            (
                "version: 1\nproviders: [{name: a}]\nauthorization: {stale_client_page: yes}",
                "authorization.stale_client_page",
            ),
        ];
        for (text, expected) in cases {
            let e = without_line(&load(text).unwrap_err());
            assert!(
                e.contains(expected),
                "{text}\n => {e}\n expected {expected}"
            );
        }
    }

    fn load_at(text: &str, now: i64) -> Result<Policy, String> {
        let env = |name: &str| (name == "GUARD_KEY").then(|| "a2V5".repeat(11));
        Policy::from_bytes_with(text.as_bytes(), &LoadContext { now, env: &env })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn lifecycle_mistakes_are_refused_with_the_field() {
        let now = 1_800_000_000; // 2027-01-15T08:00:00Z
        let base = "version: 1\nproviders:\n  - name: a\n    lifecycle:\n";
        let cases = [
            ("      client_max_age: 30x\n", "providers[0].lifecycle.client_max_age`: `30x`: unknown unit"),
            ("      client_max_age: 0d\n", "providers[0].lifecycle.client_max_age`: must be longer than zero"),
            (
                "      registration_epoch: '2027-02-01T00:00:00Z'\n",
                "providers[0].lifecycle.registration_epoch`: `2027-02-01T00:00:00Z` is more than 24 hours in the future",
            ),
            ("      registration_epoch: 'tuesday'\n", "is not an RFC 3339 timestamp"),
            ("      registration_epoch: '1999-12-31T00:00:00Z'\n", "is before 2000"),
            ("      sign_client_ids: true\n", "providers[0].lifecycle.signing_keys`: `sign_client_ids` is on but no signing key"),
            (
                "      sign_client_ids: true\n      signing_keys: [{id: k, secret: c2hvcnQ=}]\n",
                "providers[0].lifecycle.signing_keys[0]`: the key is 5 bytes",
            ),
            (
                "      sign_client_ids: true\n      signing_keys: [{id: k, secret_env: NOPE}]\n",
                "providers[0].lifecycle.signing_keys[0].secret_env`: environment variable `NOPE` is not set",
            ),
            (
                "      sign_client_ids: true\n      signing_keys: [{id: k}]\n",
                "needs exactly one of `secret` and `secret_env`",
            ),
            ("      inject_client_secret_expires_at: true\n", "needs `client_max_age`"),
            ("      mcp_endpoints: [/mcp]\n      sign_client_ids: false\n", "providers[0].lifecycle.mcp_endpoints`"),
            ("      retire_unsigned_clients: true\n      client_max_age: 1d\n", "needs `sign_client_ids: true`"),
            ("      {}\n", "sets no rule"),
        ];
        for (lifecycle, expected) in cases {
            let text = format!("{base}{lifecycle}");
            let e = without_line(&load_at(&text, now).unwrap_err());
            assert!(
                e.contains(expected),
                "{lifecycle}\n => {e}\n expected {expected}"
            );
        }
        let ok = format!(
            "{base}      client_max_age: 30d\n      registration_epoch: '2027-01-16T00:00:00Z'\n      \
             sign_client_ids: true\n      signing_keys: [{{id: k2, secret_env: GUARD_KEY}}]\n      \
             mcp_endpoints: [/mcp]\n"
        );
        let p = load_at(&ok, now).unwrap();
        assert_eq!(p.providers[0].lifecycle.max_age, Some(30 * 86_400));
        assert_eq!(p.router.find("/mcp").unwrap().kind, EndpointKind::Resource);
    }

    #[test]
    fn hostile_documents_are_refused_not_expanded() {
        let laughs = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n\
                      c: [*b, *b, *b, *b, *b, *b, *b, *b]\n";
        assert!(load(laughs).is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(load(&deep).is_err());
        let big = "#".repeat(load::MAX_POLICY_BYTES + 1);
        assert!(load(&big).unwrap_err().contains("limit"));
        assert_eq!(load("").unwrap_err(), PolicyError::Empty.to_string());
        assert!(load("version: 1\nversion: 1\nproviders: [{name: a}]").is_err());
        assert!(Policy::from_bytes(b"\xff\xfe").is_err());
    }

    /// The policies embedded in the shipped Envoy and Istio configs (`value: |` blocks).
    fn embedded_policies(text: &str) -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let mut found = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_end().ends_with("value: |") {
                let indent = |l: &str| l.len() - l.trim_start().len();
                let parent = indent(line);
                let block: Vec<&str> = lines[i + 1..]
                    .iter()
                    .take_while(|l| l.trim().is_empty() || indent(l) > parent)
                    .copied()
                    .collect();
                let cut = block.iter().map(|l| indent(l)).min().unwrap_or(0);
                found.push(
                    block
                        .iter()
                        .map(|l| l.get(cut..).unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
        }
        found
    }

    #[test]
    fn policies_embedded_in_shipped_configs_load() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut seen = 0;
        for file in ["envoy/envoy.yaml", "envoy/istio/mcp-oauth-guard.yaml"] {
            let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
            for policy in embedded_policies(&text) {
                if let Err(e) = Policy::from_bytes(policy.as_bytes()) {
                    panic!("{file}: {e}\n{policy}");
                }
                seen += 1;
            }
        }
        assert!(seen >= 2);
    }

    #[test]
    fn shipped_example_policies_load() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "json") {
                let text = std::fs::read(&path).unwrap();
                // Secrets named by `secret_env` come from the VM's environment at run time.
                let env = |_: &str| Some("a2V5".repeat(11));
                let ctx = LoadContext {
                    now: 1_800_000_000,
                    env: &env,
                };
                if let Err(e) = Policy::from_bytes_with(&text, &ctx) {
                    panic!("{}: {e}", path.display());
                }
                seen += 1;
            }
        }
        assert!(seen > 0, "no example policies in {dir}");
    }
}
