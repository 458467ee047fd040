//! Validation and compilation of a parsed policy. Every refusal names the field.

use crate::classify::{ClientGoneRule, ProviderMatcher};
use crate::endpoint::{EndpointKind, PathPattern, Route, Router};
use crate::presets;
use crate::reply::{is_error_code, is_error_description};

use super::document::{EndpointsSpec, PolicyDocument, ProviderSpec};
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
}

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
}

impl Policy {
    /// Parses (YAML or JSON) and compiles a policy.
    pub fn from_bytes(text: &[u8]) -> Result<Self, PolicyError> {
        let document: PolicyDocument = load::parse(text)?;
        Self::compile(document)
    }

    /// Validates a parsed document and builds the runtime form.
    pub fn compile(doc: PolicyDocument) -> Result<Self, PolicyError> {
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
            providers.push(compile_provider(&field, spec)?);
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
                spec.preset,
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
        if rule.error.is_empty() && rule.description_contains.is_empty() {
            return Err(PolicyError::invalid(
                rule_field,
                "needs `error` or `description_contains`: a status alone is no evidence \
                 that the client is gone",
            ));
        }
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
    })
}

fn kind_paths(endpoints: &EndpointsSpec, kind: EndpointKind) -> &[String] {
    match kind {
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
    }
}

fn add_routes(
    field: &str,
    provider: usize,
    spec: &ProviderSpec,
    routes: &mut Vec<Route>,
) -> Result<(), PolicyError> {
    let declared = EndpointKind::ALL
        .iter()
        .any(|k| !kind_paths(&spec.endpoints, *k).is_empty());

    for kind in EndpointKind::ALL {
        let paths: Vec<(String, String)> = if declared {
            let list = kind_paths(&spec.endpoints, kind);
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
            if let Some(other) = routes.iter().find(|r| r.pattern == pattern) {
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

    const MINIMAL: &str = "version: 1\nproviders:\n  - name: op\n    preset: hydra\n";

    #[test]
    fn minimal_policy_uses_preset_paths_and_defaults() {
        let p = load(MINIMAL).unwrap();
        assert_eq!(p.max_body_bytes, 64 * 1024);
        assert!(p.stale_client_page);
        let route = p.router.find("/oauth2/token").unwrap();
        assert_eq!(route.kind, EndpointKind::Token);
        assert_eq!(p.providers[route.provider].preset, "hydra");
        assert!(p.router.find("/token").is_none());
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
            let e = load(text).unwrap_err();
            assert!(
                e.contains(expected),
                "{text}\n => {e}\n expected {expected}"
            );
        }
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

    #[test]
    fn shipped_example_policies_load() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "json") {
                let text = std::fs::read(&path).unwrap();
                if let Err(e) = Policy::from_bytes(&text) {
                    panic!("{}: {e}", path.display());
                }
                seen += 1;
            }
        }
        assert!(seen > 0, "no example policies in {dir}");
    }
}
