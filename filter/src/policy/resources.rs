//! The `resources:` section: each MCP server behind this Envoy as one RFC 9728 protected
//! resource with one canonical URL, the other spellings clients use for it, the
//! authorization servers its metadata names, and how its metadata documents are made.
//!
//! ```yaml
//! resources:
//!   - resource: https://api.example.com/mcp          # canonical, in normal form
//!     aliases: [https://api.example.com/mcp/, https://api.example.com]
//!     authorization_servers: [https://auth.example.com]   # issuers as the AS states them
//!     metadata:
//!       mode: serve                 # serve: answered from this policy; correct: fix upstream's
//!       scopes_supported: [mcp]     # serve only, optional
//!     max_age: 3600                 # Cache-Control max-age of metadata documents
//!     cors: {allow_origins: ["*"]}  # optional
//!     authorization_server_metadata:       # optional: the AS is behind this Envoy too
//!       upstream_path: /.well-known/openid-configuration
//!       fix_issuer: false
//! ```
//!
//! Parsed strictly like the rest of the policy, then compiled into [`Resources`]: the
//! documents' locations (path-inserted and root, per identifier), the MCP endpoint paths
//! whose 401 answers get a `resource_metadata` challenge, the discovery locations of the
//! authorization server, and the alias table of RFC 8707 `resource` parameters.

use serde::Deserialize;
use serde_json::Value;

use crate::endpoint::{EndpointKind, PathPattern, Router};
use crate::url_identity::{IdentityKey, Scheme, Url};

use super::error::PolicyError;

/// RFC 9728 section 3: the well-known suffix of protected resource metadata.
pub const RESOURCE_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
/// RFC 8414 section 3: authorization server metadata.
pub const SERVER_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect Discovery 1.0 section 4.
pub const OPENID_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// Default `max_age`: one hour.
pub const DEFAULT_MAX_AGE: u32 = 3600;
const MAX_MAX_AGE: u32 = 7 * 24 * 3600;
const MAX_RESOURCES: usize = 64;
const MAX_ALIASES: usize = 16;
const MAX_SERVERS: usize = 8;
const MAX_LIST: usize = 64;

// ---------------------------------------------------------------------------------------
// The section as operators write it.

/// One protected resource (an MCP server).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// The canonical resource identifier, in normal form (lower-case host, no default port).
    pub resource: String,
    /// Other spellings of the same server: a trailing slash, host case, default port, the
    /// origin form of a path resource (or a path form of an origin resource).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// RFC 9728 `authorization_servers`: issuer identifiers exactly as each authorization
    /// server states them in its own metadata. Clients use the first.
    pub authorization_servers: Vec<String>,
    /// How the RFC 9728 documents are made.
    pub metadata: MetadataSpec,
    /// `Cache-Control: public, max-age=N` of metadata documents, in seconds.
    #[serde(default = "default_max_age")]
    pub max_age: u32,
    /// CORS for browser-based clients.
    #[serde(default)]
    pub cors: Option<CorsSpec>,
    /// Discovery of the first (or named) authorization server, when it sits behind this Envoy.
    #[serde(default)]
    pub authorization_server_metadata: Option<ServerMetadataSpec>,
}

fn default_max_age() -> u32 {
    DEFAULT_MAX_AGE
}

/// `serve` or `correct`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetadataMode {
    /// The filter answers every document location from the policy.
    Serve,
    /// The upstream serves one document at `upstream_path`; the filter sends every location
    /// there and corrects `resource` and `authorization_servers` in the answer.
    Correct,
}

/// RFC 9728 document settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataSpec {
    pub mode: MetadataMode,
    /// `correct` only: the one path where the upstream serves its document.
    #[serde(default)]
    pub upstream_path: Option<String>,
    /// `serve` only: RFC 9728 section 2 `scopes_supported`.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// `serve` only: `bearer_methods_supported` (`header`, `body`, `query`).
    #[serde(default)]
    pub bearer_methods_supported: Option<Vec<String>>,
    /// `serve` only: human-readable `resource_name`.
    #[serde(default)]
    pub resource_name: Option<String>,
    /// `serve` only: `resource_documentation` URL.
    #[serde(default)]
    pub resource_documentation: Option<String>,
}

/// CORS headers on metadata documents and on the MCP endpoint's 401 answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// `["*"]`, or origins such as `https://app.example.com`.
    pub allow_origins: Vec<String>,
}

/// RFC 8414 / OpenID discovery of an authorization server behind this Envoy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerMetadataSpec {
    /// Which of `authorization_servers`; the first when absent.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The one path where the authorization server serves its metadata. Every discovery
    /// location of the issuer is sent there. Absent: each location goes upstream as asked.
    #[serde(default)]
    pub upstream_path: Option<String>,
    /// Replace an `issuer` that differs from the one named here. Off by default: a
    /// mismatch is only logged and counted.
    #[serde(default)]
    pub fix_issuer: bool,
}

// ---------------------------------------------------------------------------------------
// The compiled form.

/// Every protected resource, compiled.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub list: Vec<Resource>,
    locations: Vec<Location>,
    /// Whether locations sit on more than one origin, so `:authority` picks among them.
    match_authority: bool,
}

/// One protected resource, compiled.
#[derive(Debug, Clone)]
pub struct Resource {
    pub canonical: String,
    /// `scheme://host[:port]` of every identifier.
    pub origin: String,
    /// The canonical identifier first, then the aliases.
    pub identifiers: Vec<Identifier>,
    pub authorization_servers: Vec<String>,
    pub metadata: Metadata,
    /// The `Cache-Control` value of metadata documents.
    pub cache_control: String,
    pub cors: Option<Cors>,
    pub server_metadata: Option<ServerMetadata>,
}

/// One spelling of a resource that gets its own document.
#[derive(Debug, Clone)]
pub struct Identifier {
    /// The URL the document names: as written in the policy, normalized.
    pub url: String,
    key: IdentityKey,
    /// The RFC 9728 section 3.1 URL of the document that names this identifier.
    pub document_url: String,
}

/// How the documents are made.
#[derive(Debug, Clone)]
pub enum Metadata {
    /// From the policy, with these optional members after `resource` and
    /// `authorization_servers`.
    Serve { members: Vec<(&'static str, Value)> },
    /// From the upstream's one document at this path.
    Correct { upstream_path: String },
}

/// Which origins may read the documents and the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    Any,
    Origins(Vec<String>),
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if allowed.
    pub fn allow_origin(&self, origin: Option<&str>) -> Option<String> {
        match self {
            Self::Any => Some("*".to_owned()),
            Self::Origins(list) => {
                let origin = origin?;
                list.iter()
                    .find(|o| o.eq_ignore_ascii_case(origin))
                    .cloned()
            }
        }
    }
}

/// An authorization server behind this Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMetadata {
    /// As the policy (and so the resource metadata) names it.
    pub issuer: String,
    pub upstream_path: Option<String>,
    pub fix_issuer: bool,
}

/// What a request location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An RFC 9728 document location naming `identifiers[identifier]`.
    ResourceMetadata { resource: usize, identifier: usize },
    /// The MCP endpoint at `identifiers[identifier]`.
    Endpoint { resource: usize, identifier: usize },
    /// A discovery location of the resource's authorization server.
    ServerMetadata { resource: usize },
}

#[derive(Debug, Clone)]
struct Location {
    scheme: Scheme,
    /// Normalized `host[:port]`.
    authority: String,
    path: String,
    target: Target,
    /// Derived by RFC 9728/8414 rules (`true`) or by a client's slash-stripping (`false`);
    /// an exact derivation wins a conflict.
    exact: bool,
    field: String,
}

impl Location {
    fn same_place(&self, other: &Location) -> bool {
        self.scheme == other.scheme && self.authority == other.authority && self.path == other.path
    }

    fn matches_authority(&self, authority: &str) -> bool {
        let authority = authority.trim().to_ascii_lowercase();
        let default = format!(":{}", self.scheme.default_port());
        let authority = authority
            .strip_suffix(&default)
            .or_else(|| authority.strip_suffix(':'))
            .unwrap_or(&authority);
        authority == self.authority
    }
}

impl Resources {
    /// Whether the policy has no resources (every request skips this part of the filter).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// What the request at `path` (no query; Envoy's `:path` only) is. `authority` is
    /// consulted only when the resources span several origins.
    pub fn find(&self, authority: Option<&str>, path: &str) -> Option<Target> {
        self.locations
            .iter()
            .find(|l| {
                l.path == path
                    && (!self.match_authority || authority.is_some_and(|a| l.matches_authority(a)))
            })
            .map(|l| l.target)
    }

    /// Whether a request for `path` (Envoy's `:path`, query ignored) can be at a location of
    /// a resource on any origin: the cheap first check on every request.
    pub fn targets(&self, path: &str) -> bool {
        let path = crate::endpoint::split_path(path).0;
        self.locations.iter().any(|l| l.path == path)
    }

    /// The canonical identifier of the resource `value` names in any known spelling, or
    /// `None` when `value` is not a URL of a resource here.
    pub fn canonical_for(&self, value: &str) -> Option<&str> {
        let key = Url::parse(value).ok()?.key();
        self.list
            .iter()
            .find(|r| r.identifiers.iter().any(|i| i.key == key))
            .map(|r| r.canonical.as_str())
    }

    /// The MCP endpoint paths, document paths and discovery paths, for the load log line.
    pub fn location_count(&self) -> usize {
        self.locations.len()
    }
}

// ---------------------------------------------------------------------------------------
// Compilation.

/// Validates the section and builds the runtime form. `router` holds the providers'
/// endpoint paths, which no resource location may take.
pub fn compile(specs: &[ResourceSpec], router: &Router) -> Result<Resources, PolicyError> {
    if specs.len() > MAX_RESOURCES {
        return Err(PolicyError::invalid(
            "resources",
            format!("at most {MAX_RESOURCES} resources are allowed"),
        ));
    }
    let mut list = Vec::with_capacity(specs.len());
    let mut locations: Vec<Location> = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let field = format!("resources[{index}]");
        let resource = compile_resource(&field, spec)?;
        for location in resource_locations(&field, index, &resource)? {
            add_location(&mut locations, location, &list, &resource)?;
        }
        for (path_field, path) in upstream_paths(&field, &resource) {
            check_not_provider(router, &path_field, path)?;
        }
        list.push(resource);
    }
    for location in &locations {
        // The lifecycle's MCP endpoints (`mcp_endpoints`) are the same endpoints as ours.
        let shared_mcp_endpoint = matches!(location.target, Target::Endpoint { .. })
            && router
                .find(&location.path)
                .is_some_and(|r| r.kind == EndpointKind::Resource);
        if !shared_mcp_endpoint {
            check_not_provider(router, &location.field, &location.path)?;
        }
    }
    check_issuer_spellings(&list)?;
    let mut origins: Vec<(Scheme, &str)> = locations
        .iter()
        .map(|l| (l.scheme, l.authority.as_str()))
        .collect();
    origins.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
    origins.dedup();
    let match_authority = origins.len() > 1;
    Ok(Resources {
        list,
        locations,
        match_authority,
    })
}

/// Parses a URL from the policy: absolute, `https` (or `http` on a loopback host), no
/// fragment and no query.
fn policy_url(field: &str, text: &str) -> Result<Url, PolicyError> {
    let url = Url::parse(text).map_err(|e| PolicyError::invalid(field, format!("`{text}` {e}")))?;
    if url.scheme == Scheme::Http && !url.is_loopback() {
        return Err(PolicyError::invalid(
            field,
            format!("`{text}` must use https (http is allowed for loopback hosts only)"),
        ));
    }
    if url.query.is_some() {
        return Err(PolicyError::invalid(
            field,
            format!("`{text}` has a query; identifiers here must not"),
        ));
    }
    Ok(url)
}

fn strip_one_slash(path: &str) -> &str {
    path.strip_suffix('/').unwrap_or(path)
}

fn compile_resource(field: &str, spec: &ResourceSpec) -> Result<Resource, PolicyError> {
    let resource_field = format!("{field}.resource");
    let canonical = policy_url(&resource_field, &spec.resource)?;
    let normal = canonical.to_string();
    if normal != spec.resource {
        return Err(PolicyError::invalid(
            resource_field,
            format!(
                "`{}` is not in normal form; write `{normal}` (lower-case scheme and host, no \
                 default port) and list other spellings under `aliases`",
                spec.resource
            ),
        ));
    }
    let origin = canonical.origin();

    if spec.aliases.len() > MAX_ALIASES {
        return Err(PolicyError::invalid(
            format!("{field}.aliases"),
            format!("at most {MAX_ALIASES} aliases are allowed"),
        ));
    }
    let mut identifiers = vec![identifier(&origin, &canonical, spec.resource.clone())];
    for (i, text) in spec.aliases.iter().enumerate() {
        let alias_field = format!("{field}.aliases[{i}]");
        let alias = policy_url(&alias_field, text)?;
        if alias.origin() != origin {
            return Err(PolicyError::invalid(
                alias_field,
                format!(
                    "`{text}` is on another origin than `{}`; an alias may differ only in host \
                     case, default port, a trailing slash, or be the origin form (a server on \
                     another host is another resource)",
                    spec.resource
                ),
            ));
        }
        let same_path = strip_one_slash(&alias.path) == strip_one_slash(&canonical.path);
        if !same_path && !alias.is_origin_form() && !canonical.is_origin_form() {
            return Err(PolicyError::invalid(
                alias_field,
                format!(
                    "`{text}` names another path than `{}`; an alias may add or drop one \
                     trailing slash, or be the origin form",
                    spec.resource
                ),
            ));
        }
        let key = alias.key();
        if let Some(j) = identifiers.iter().position(|x| x.key == key) {
            let what = if j == 0 {
                "`resource` itself".to_owned()
            } else {
                format!("`aliases[{}]`", j - 1)
            };
            return Err(PolicyError::invalid(
                alias_field,
                format!("`{text}` is the same URL as {what} once normalized; list it once"),
            ));
        }
        identifiers.push(identifier(&origin, &alias, alias.to_string()));
    }

    let servers_field = format!("{field}.authorization_servers");
    if spec.authorization_servers.is_empty() {
        return Err(PolicyError::invalid(
            servers_field,
            "at least one authorization server is required (clients use the first)",
        ));
    }
    if spec.authorization_servers.len() > MAX_SERVERS {
        return Err(PolicyError::invalid(
            servers_field,
            format!("at most {MAX_SERVERS} authorization servers are allowed"),
        ));
    }
    for (i, issuer) in spec.authorization_servers.iter().enumerate() {
        // Kept verbatim: RFC 8414 section 3.3 compares issuers as strings, so the spelling
        // must be the one the authorization server states.
        policy_url(&format!("{servers_field}[{i}]"), issuer)?;
        if spec.authorization_servers[..i].contains(issuer) {
            return Err(PolicyError::invalid(
                format!("{servers_field}[{i}]"),
                format!("`{issuer}` is listed twice"),
            ));
        }
    }

    let metadata = compile_metadata(&format!("{field}.metadata"), &spec.metadata)?;

    if spec.max_age > MAX_MAX_AGE {
        return Err(PolicyError::invalid(
            format!("{field}.max_age"),
            format!("{} is above {MAX_MAX_AGE} seconds (one week)", spec.max_age),
        ));
    }
    let cors = match &spec.cors {
        None => None,
        Some(c) => Some(compile_cors(&format!("{field}.cors"), c)?),
    };
    let server_metadata = match &spec.authorization_server_metadata {
        None => None,
        Some(s) => Some(compile_server_metadata(
            &format!("{field}.authorization_server_metadata"),
            s,
            &spec.authorization_servers,
        )?),
    };

    Ok(Resource {
        canonical: spec.resource.clone(),
        origin,
        identifiers,
        authorization_servers: spec.authorization_servers.clone(),
        metadata,
        cache_control: format!("public, max-age={}", spec.max_age),
        cors,
        server_metadata,
    })
}

fn identifier(origin: &str, url: &Url, spelling: String) -> Identifier {
    let suffix = if url.is_origin_form() { "" } else { &url.path };
    Identifier {
        url: spelling,
        key: url.key(),
        document_url: format!("{origin}{RESOURCE_WELL_KNOWN}{suffix}"),
    }
}

/// A path the filter sends requests to (`upstream_path`).
fn upstream_path(field: &str, text: &str) -> Result<String, PolicyError> {
    let pattern = PathPattern::parse(text).map_err(|why| PolicyError::invalid(field, why))?;
    if text.split('/').any(|s| s == "*") {
        return Err(PolicyError::invalid(
            field,
            "must be a literal path, without `*`",
        ));
    }
    Ok(pattern.as_str().to_owned())
}

fn compile_metadata(field: &str, spec: &MetadataSpec) -> Result<Metadata, PolicyError> {
    match spec.mode {
        MetadataMode::Correct => {
            for (name, set) in [
                ("scopes_supported", spec.scopes_supported.is_some()),
                (
                    "bearer_methods_supported",
                    spec.bearer_methods_supported.is_some(),
                ),
                ("resource_name", spec.resource_name.is_some()),
                (
                    "resource_documentation",
                    spec.resource_documentation.is_some(),
                ),
            ] {
                if set {
                    return Err(PolicyError::invalid(
                        format!("{field}.{name}"),
                        "is used with `mode: serve` only; `correct` fixes `resource` and \
                         `authorization_servers` and keeps the upstream's other members",
                    ));
                }
            }
            let text = spec.upstream_path.as_deref().ok_or_else(|| {
                PolicyError::invalid(
                    format!("{field}.upstream_path"),
                    "is required with `mode: correct`: the path where the upstream serves its \
                     protected resource metadata",
                )
            })?;
            Ok(Metadata::Correct {
                upstream_path: upstream_path(&format!("{field}.upstream_path"), text)?,
            })
        }
        MetadataMode::Serve => {
            if spec.upstream_path.is_some() {
                return Err(PolicyError::invalid(
                    format!("{field}.upstream_path"),
                    "is used with `mode: correct` only",
                ));
            }
            let mut members: Vec<(&'static str, Value)> = Vec::new();
            if let Some(scopes) = &spec.scopes_supported {
                check_list(&format!("{field}.scopes_supported"), scopes, |s| {
                    // RFC 6749 section 3.3 scope-token.
                    !s.is_empty()
                        && s.bytes().all(|b| {
                            b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
                        })
                })?;
                members.push(("scopes_supported", Value::from(scopes.clone())));
            }
            if let Some(methods) = &spec.bearer_methods_supported {
                check_list(&format!("{field}.bearer_methods_supported"), methods, |m| {
                    matches!(m, "header" | "body" | "query")
                })?;
                members.push(("bearer_methods_supported", Value::from(methods.clone())));
            }
            if let Some(name) = &spec.resource_name {
                if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control)
                {
                    return Err(PolicyError::invalid(
                        format!("{field}.resource_name"),
                        "must be 1 to 256 characters without control characters",
                    ));
                }
                members.push(("resource_name", Value::from(name.clone())));
            }
            if let Some(doc) = &spec.resource_documentation {
                policy_url(&format!("{field}.resource_documentation"), doc)?;
                members.push(("resource_documentation", Value::from(doc.clone())));
            }
            Ok(Metadata::Serve { members })
        }
    }
}

fn check_list(field: &str, list: &[String], ok: impl Fn(&str) -> bool) -> Result<(), PolicyError> {
    if list.len() > MAX_LIST {
        return Err(PolicyError::invalid(
            field,
            format!("at most {MAX_LIST} entries"),
        ));
    }
    for (i, item) in list.iter().enumerate() {
        if !ok(item) || list[..i].contains(item) {
            return Err(PolicyError::invalid(
                format!("{field}[{i}]"),
                format!(
                    "`{}` is not allowed here, or listed twice",
                    item.escape_default()
                ),
            ));
        }
    }
    Ok(())
}

fn compile_cors(field: &str, spec: &CorsSpec) -> Result<Cors, PolicyError> {
    let list_field = format!("{field}.allow_origins");
    if spec.allow_origins.is_empty() {
        return Err(PolicyError::invalid(
            list_field,
            "at least one origin, or `*`",
        ));
    }
    if spec.allow_origins.iter().any(|o| o == "*") {
        if spec.allow_origins.len() > 1 {
            return Err(PolicyError::invalid(list_field, "`*` stands alone"));
        }
        return Ok(Cors::Any);
    }
    let mut origins = Vec::with_capacity(spec.allow_origins.len());
    for (i, text) in spec.allow_origins.iter().enumerate() {
        let item_field = format!("{list_field}[{i}]");
        let url = Url::parse(text)
            .map_err(|e| PolicyError::invalid(&item_field, format!("`{text}` {e}")))?;
        if url.origin() != *text {
            return Err(PolicyError::invalid(
                item_field,
                format!(
                    "`{text}` is not an origin as browsers send it; write `{}`",
                    url.origin()
                ),
            ));
        }
        origins.push(text.clone());
    }
    Ok(Cors::Origins(origins))
}

fn compile_server_metadata(
    field: &str,
    spec: &ServerMetadataSpec,
    servers: &[String],
) -> Result<ServerMetadata, PolicyError> {
    let issuer = match &spec.issuer {
        Some(issuer) if !servers.contains(issuer) => {
            return Err(PolicyError::invalid(
                format!("{field}.issuer"),
                format!(
                    "`{issuer}` is not one of `authorization_servers` ({}); the resource \
                     metadata must name the issuer exactly as discovery finds it",
                    servers.join(", ")
                ),
            ));
        }
        Some(issuer) => issuer.clone(),
        None => servers.first().cloned().unwrap_or_default(),
    };
    let upstream = match &spec.upstream_path {
        Some(text) => Some(upstream_path(&format!("{field}.upstream_path"), text)?),
        None => None,
    };
    Ok(ServerMetadata {
        issuer,
        upstream_path: upstream,
        fix_issuer: spec.fix_issuer,
    })
}

/// The discovery locations of an issuer (RFC 8414 section 3.1, OpenID Connect Discovery 1.0
/// section 4.1, and the RFC 8414 section 5 compatibility form), as paths on its origin.
pub fn discovery_paths(issuer: &Url) -> Vec<String> {
    let path = strip_one_slash(&issuer.path);
    if path.is_empty() {
        vec![SERVER_WELL_KNOWN.to_owned(), OPENID_WELL_KNOWN.to_owned()]
    } else {
        vec![
            format!("{SERVER_WELL_KNOWN}{path}"),
            format!("{OPENID_WELL_KNOWN}{path}"),
            format!("{path}{OPENID_WELL_KNOWN}"),
        ]
    }
}

fn resource_locations(
    field: &str,
    index: usize,
    resource: &Resource,
) -> Result<Vec<Location>, PolicyError> {
    let mut out = Vec::new();
    let canonical =
        Url::parse(&resource.canonical).map_err(|e| PolicyError::invalid(field, e.to_string()))?;
    let here = |path: String, target: Target, exact: bool, f: String| Location {
        scheme: canonical.scheme,
        authority: canonical.authority(),
        path,
        target,
        exact,
        field: f,
    };
    for (j, id) in resource.identifiers.iter().enumerate() {
        let id_field = if j == 0 {
            format!("{field}.resource")
        } else {
            format!("{field}.aliases[{}]", j - 1)
        };
        let url =
            Url::parse(&id.url).map_err(|e| PolicyError::invalid(&id_field, e.to_string()))?;
        let doc = Target::ResourceMetadata {
            resource: index,
            identifier: j,
        };
        let exact_suffix = if url.is_origin_form() {
            ""
        } else {
            url.path.as_str()
        };
        out.push(here(
            format!("{RESOURCE_WELL_KNOWN}{exact_suffix}"),
            doc,
            true,
            id_field.clone(),
        ));
        // Clients that strip a trailing slash before inserting the well-known suffix (the
        // TypeScript SDK) ask `/mcp` for `https://h/mcp/`.
        let stripped = strip_one_slash(exact_suffix);
        if stripped != exact_suffix {
            out.push(here(
                format!("{RESOURCE_WELL_KNOWN}{stripped}"),
                doc,
                false,
                id_field.clone(),
            ));
        }
        out.push(here(
            url.path_or_root().to_owned(),
            Target::Endpoint {
                resource: index,
                identifier: j,
            },
            true,
            id_field,
        ));
    }

    if let Some(server) = &resource.server_metadata {
        let as_field = format!("{field}.authorization_server_metadata");
        let issuer = Url::parse(&server.issuer)
            .map_err(|e| PolicyError::invalid(&as_field, e.to_string()))?;
        let target = Target::ServerMetadata { resource: index };
        for path in discovery_paths(&issuer) {
            out.push(Location {
                scheme: issuer.scheme,
                authority: issuer.authority(),
                path,
                target,
                exact: true,
                field: as_field.clone(),
            });
        }
        // The MCP 2025-03-26 fallback: clients that find no resource metadata ask the MCP
        // server's origin for authorization server metadata. A :path rewrite can answer it
        // only when the authorization server shares that origin (an issuer with a path);
        // another host would need the request sent elsewhere, which the filter does not do.
        let legacy = here(SERVER_WELL_KNOWN.to_owned(), target, true, as_field);
        if issuer.origin() == canonical.origin() && !out.iter().any(|l| l.same_place(&legacy)) {
            out.push(legacy);
        }
    }
    Ok(out)
}

fn describe(target: Target, list: &[Resource], current: &Resource) -> String {
    let name = |r: usize| {
        list.get(r)
            .map(|x| x.canonical.as_str())
            .unwrap_or(current.canonical.as_str())
            .to_owned()
    };
    match target {
        Target::ResourceMetadata { resource, .. } => {
            format!("a resource metadata location of `{}`", name(resource))
        }
        Target::Endpoint { resource, .. } => format!("the MCP endpoint of `{}`", name(resource)),
        Target::ServerMetadata { resource } => {
            format!(
                "an authorization server metadata location of `{}`",
                name(resource)
            )
        }
    }
}

fn add_location(
    locations: &mut Vec<Location>,
    new: Location,
    list: &[Resource],
    current: &Resource,
) -> Result<(), PolicyError> {
    let Some(at) = locations.iter().position(|l| l.same_place(&new)) else {
        locations.push(new);
        return Ok(());
    };
    let old = &locations[at];
    if old.target == new.target {
        return Ok(());
    }
    if !new.exact {
        return Ok(());
    }
    if !old.exact {
        locations[at] = new;
        return Ok(());
    }
    // Two resources may share one authorization server if they describe it alike.
    if let (Target::ServerMetadata { resource: a }, Target::ServerMetadata { .. }) =
        (old.target, new.target)
    {
        let theirs = list.get(a).and_then(|r| r.server_metadata.as_ref());
        if theirs.is_some() && theirs == current.server_metadata.as_ref() {
            return Ok(());
        }
    }
    Err(PolicyError::invalid(
        &new.field,
        format!(
            "`{}` on {} is already {} (from `{}`); one location answers for one thing",
            new.path,
            new.authority,
            describe(old.target, list, current),
            old.field
        ),
    ))
}

fn upstream_paths<'r>(field: &str, resource: &'r Resource) -> Vec<(String, &'r str)> {
    let mut out = Vec::new();
    if let Metadata::Correct { upstream_path } = &resource.metadata {
        out.push((
            format!("{field}.metadata.upstream_path"),
            upstream_path.as_str(),
        ));
    }
    if let Some(ServerMetadata {
        upstream_path: Some(path),
        ..
    }) = &resource.server_metadata
    {
        out.push((
            format!("{field}.authorization_server_metadata.upstream_path"),
            path.as_str(),
        ));
    }
    out
}

/// One authorization server has one issuer string (RFC 8414 section 3.3 compares strings):
/// two spellings of the same URL in the policy mean one of them is not what the server
/// states, and clients that follow it stop at the issuer check.
fn check_issuer_spellings(list: &[Resource]) -> Result<(), PolicyError> {
    let mut seen: Vec<(IdentityKey, &str, String)> = Vec::new();
    for (i, resource) in list.iter().enumerate() {
        for (j, issuer) in resource.authorization_servers.iter().enumerate() {
            let Ok(url) = Url::parse(issuer) else {
                continue;
            };
            let key = url.key();
            let field = format!("resources[{i}].authorization_servers[{j}]");
            if let Some((_, other, other_field)) =
                seen.iter().find(|(k, s, _)| *k == key && *s != issuer)
            {
                return Err(PolicyError::invalid(
                    field,
                    format!(
                        "`{issuer}` and `{other}` ({other_field}) are two spellings of one \
                         authorization server; write its issuer exactly as its metadata \
                         states it, in both places"
                    ),
                ));
            }
            seen.push((key, issuer.as_str(), field));
        }
    }
    Ok(())
}

fn check_not_provider(router: &Router, field: &str, path: &str) -> Result<(), PolicyError> {
    match router.find(path) {
        Some(route) => Err(PolicyError::invalid(
            field,
            format!(
                "path `{path}` is also the {} endpoint of providers[{}]",
                route.kind, route.provider
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Policy;
    use super::*;

    const HEAD: &str = "version: 1\nproviders:\n  - name: op\n    endpoints: {token: [/token], authorization: [/authorize]}\nresources:\n";

    /// The error text without its ` (line N)`, so the expectations below name fields only.
    fn load(section: &str) -> Result<Policy, String> {
        Policy::from_bytes(format!("{HEAD}{section}").as_bytes()).map_err(|e| {
            let text = e.to_string();
            match (text.find(" (line "), text.find("): ")) {
                (Some(a), Some(b)) if a < b => format!("{}{}", &text[..a], &text[b + 1..]),
                _ => text,
            }
        })
    }

    const SERVE: &str = "  - resource: https://api.example.com/mcp\n    aliases: [https://api.example.com/mcp/, 'https://API.example.com:443']\n    authorization_servers: [https://auth.example.com]\n    metadata: {mode: serve, scopes_supported: [mcp]}\n";

    #[test]
    fn locations_cover_both_forms_of_every_identifier() {
        let p = load(SERVE).unwrap();
        let r = &p.resources;
        let doc = |path| r.find(None, path);
        let ids: Vec<&str> = r.list[0]
            .identifiers
            .iter()
            .map(|i| i.url.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "https://api.example.com/mcp",
                "https://api.example.com/mcp/",
                "https://api.example.com"
            ]
        );
        assert_eq!(
            doc("/.well-known/oauth-protected-resource/mcp"),
            Some(Target::ResourceMetadata {
                resource: 0,
                identifier: 0
            })
        );
        assert_eq!(
            doc("/.well-known/oauth-protected-resource/mcp/"),
            Some(Target::ResourceMetadata {
                resource: 0,
                identifier: 1
            })
        );
        assert_eq!(
            doc("/.well-known/oauth-protected-resource"),
            Some(Target::ResourceMetadata {
                resource: 0,
                identifier: 2
            })
        );
        assert_eq!(
            doc("/mcp"),
            Some(Target::Endpoint {
                resource: 0,
                identifier: 0
            })
        );
        assert_eq!(
            doc("/mcp/"),
            Some(Target::Endpoint {
                resource: 0,
                identifier: 1
            })
        );
        assert_eq!(
            doc("/"),
            Some(Target::Endpoint {
                resource: 0,
                identifier: 2
            })
        );
        assert_eq!(doc("/.well-known/oauth-protected-resource/MCP"), None);
        assert_eq!(doc("/.well-known/oauth-protected-resource//mcp"), None);
        assert_eq!(
            r.list[0].identifiers[1].document_url,
            "https://api.example.com/.well-known/oauth-protected-resource/mcp/"
        );
        assert_eq!(r.list[0].cache_control, "public, max-age=3600");
    }

    #[test]
    fn cheap_check_knows_every_location_path() {
        let p = load(SERVE).unwrap();
        for path in [
            "/mcp",
            "/mcp/?x",
            "/",
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp/",
        ] {
            assert!(p.resources.targets(path), "{path}");
        }
        assert!(!p.resources.targets("/other"));
        assert!(!p.resources.targets("/token"));
    }

    #[test]
    fn slash_stripping_clients_find_the_slash_form_when_it_is_the_only_one() {
        let p = load("  - resource: https://h.example/mcp/\n    authorization_servers: [https://a.example]\n    metadata: {mode: serve}\n").unwrap();
        let r = &p.resources;
        for path in [
            "/.well-known/oauth-protected-resource/mcp/",
            "/.well-known/oauth-protected-resource/mcp",
        ] {
            assert_eq!(
                r.find(None, path),
                Some(Target::ResourceMetadata {
                    resource: 0,
                    identifier: 0
                }),
                "{path}"
            );
        }
        assert_eq!(r.find(None, "/.well-known/oauth-protected-resource"), None);
    }

    #[test]
    fn aliases_map_to_the_canonical_value() {
        let p = load(SERVE).unwrap();
        let r = &p.resources;
        for value in [
            "https://api.example.com/mcp/",
            "https://API.example.com:443/mcp/",
            "https://api.example.com",
            "https://api.example.com/",
            "https://api.example.com/%6Dcp",
        ] {
            assert_eq!(
                r.canonical_for(value),
                Some("https://api.example.com/mcp"),
                "{value}"
            );
        }
        for value in [
            "https://api.example.com/mcp//",
            "https://api.example.com/other",
            "https://evil.example/mcp",
            "x",
        ] {
            assert_eq!(r.canonical_for(value), None, "{value}");
        }
    }

    #[test]
    fn several_origins_are_told_apart_by_authority() {
        let p = load(&format!("{SERVE}  - resource: https://other.example/mcp\n    authorization_servers: [https://auth.example.com]\n    metadata: {{mode: serve}}\n")).unwrap();
        let r = &p.resources;
        assert_eq!(
            r.find(Some("api.example.com"), "/mcp"),
            Some(Target::Endpoint {
                resource: 0,
                identifier: 0
            })
        );
        assert_eq!(
            r.find(Some("OTHER.example:443"), "/mcp"),
            Some(Target::Endpoint {
                resource: 1,
                identifier: 0
            })
        );
        assert_eq!(r.find(Some("unknown.example"), "/mcp"), None);
        assert_eq!(r.find(None, "/mcp"), None);
    }

    #[test]
    fn server_metadata_locations() {
        let p = load("  - resource: https://api.example.com/mcp\n    authorization_servers: [https://auth.example.com/tenant/]\n    metadata: {mode: serve}\n    authorization_server_metadata: {upstream_path: /.well-known/openid-configuration, fix_issuer: true}\n").unwrap();
        let r = &p.resources;
        let t = Some(Target::ServerMetadata { resource: 0 });
        for path in [
            "/.well-known/oauth-authorization-server/tenant",
            "/.well-known/openid-configuration/tenant",
            "/tenant/.well-known/openid-configuration",
        ] {
            assert_eq!(r.find(Some("auth.example.com"), path), t, "{path}");
        }
        // No legacy location on the MCP server's origin: the issuer is on another host.
        assert_eq!(
            r.find(
                Some("api.example.com"),
                "/.well-known/oauth-authorization-server"
            ),
            None
        );
        assert_eq!(
            r.find(
                Some("auth.example.com"),
                "/.well-known/oauth-authorization-server"
            ),
            None
        );
        let sm = r.list[0].server_metadata.as_ref().unwrap();
        assert_eq!(sm.issuer, "https://auth.example.com/tenant/");
        assert!(sm.fix_issuer);
    }

    #[test]
    fn legacy_location_when_the_issuer_shares_the_origin() {
        let p = load("  - resource: https://api.example.com/mcp\n    authorization_servers: [https://api.example.com/auth]\n    metadata: {mode: serve}\n    authorization_server_metadata: {upstream_path: /auth/.well-known/openid-configuration}\n").unwrap();
        let t = Some(Target::ServerMetadata { resource: 0 });
        for path in [
            "/.well-known/oauth-authorization-server/auth",
            "/.well-known/openid-configuration/auth",
            "/auth/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ] {
            assert_eq!(p.resources.find(None, path), t, "{path}");
        }
    }

    #[test]
    fn cors_origins() {
        assert_eq!(Cors::Any.allow_origin(None).as_deref(), Some("*"));
        let list = Cors::Origins(vec!["https://app.example".into()]);
        assert_eq!(
            list.allow_origin(Some("https://app.example")).as_deref(),
            Some("https://app.example")
        );
        assert_eq!(list.allow_origin(Some("https://evil.example")), None);
        assert_eq!(list.allow_origin(None), None);
    }

    #[test]
    fn refusals_name_the_field() {
        let r = "  - resource: https://api.example.com/mcp\n    authorization_servers: [https://a.example]\n    metadata: {mode: serve}\n";
        let cases: Vec<(String, &str)> = vec![
            (r.replace("https://api.example.com/mcp", "http://api.example.com/mcp"), "field `resources[0].resource`: `http://api.example.com/mcp` must use https"),
            (r.replace("https://api.example.com/mcp", "https://API.example.com/mcp"), "field `resources[0].resource`: `https://API.example.com/mcp` is not in normal form; write `https://api.example.com/mcp`"),
            (r.replace("https://api.example.com/mcp", "https://api.example.com/mcp#x"), "field `resources[0].resource`: `https://api.example.com/mcp#x` contains a fragment"),
            (r.replace("https://api.example.com/mcp", "/mcp"), "field `resources[0].resource`: `/mcp` is not an absolute"),
            (r.replace("https://api.example.com/mcp", "https://api.example.com/mcp?x=1"), "has a query"),
            (format!("{r}    aliases: [https://other.example.com/mcp]\n"), "field `resources[0].aliases[0]`: `https://other.example.com/mcp` is on another origin"),
            (format!("{r}    aliases: [https://api.example.com/v2/mcp]\n"), "field `resources[0].aliases[0]`: `https://api.example.com/v2/mcp` names another path"),
            (format!("{r}    aliases: ['https://API.example.com:443/mcp']\n"), "field `resources[0].aliases[0]`: `https://API.example.com:443/mcp` is the same URL as `resource` itself"),
            (format!("{r}    aliases: [https://api.example.com/, https://api.example.com]\n"), "field `resources[0].aliases[1]`: `https://api.example.com` is the same URL as `aliases[0]`"),
            (r.replace("[https://a.example]", "[]"), "field `resources[0].authorization_servers`: at least one"),
            (r.replace("[https://a.example]", "[https://a.example, https://a.example]"), "field `resources[0].authorization_servers[1]`: `https://a.example` is listed twice"),
            (r.replace("[https://a.example]", "[http://a.example]"), "field `resources[0].authorization_servers[0]`: `http://a.example` must use https"),
            (r.replace("{mode: serve}", "{mode: proxy}"), "resources[0].metadata.mode"),
            (r.replace("{mode: serve}", "{mode: correct}"), "field `resources[0].metadata.upstream_path`: is required with `mode: correct`"),
            (r.replace("{mode: serve}", "{mode: correct, upstream_path: /x, scopes_supported: [a]}"), "field `resources[0].metadata.scopes_supported`: is used with `mode: serve` only"),
            (r.replace("{mode: serve}", "{mode: serve, upstream_path: /x}"), "field `resources[0].metadata.upstream_path`: is used with `mode: correct` only"),
            (r.replace("{mode: serve}", "{mode: correct, upstream_path: 'x'}"), "field `resources[0].metadata.upstream_path`: must start with `/`"),
            (r.replace("{mode: serve}", "{mode: serve, scopes_supported: ['a b']}"), "field `resources[0].metadata.scopes_supported[0]`"),
            (r.replace("{mode: serve}", "{mode: serve, bearer_methods_supported: [cookie]}"), "field `resources[0].metadata.bearer_methods_supported[0]`"),
            (r.replace("{mode: serve}", "{mode: serve, colour: red}"), "resources[0].metadata"),
            (format!("{r}    max_age: 99999999\n"), "field `resources[0].max_age`"),
            (format!("{r}    cors: {{allow_origins: ['*', 'https://x.example']}}\n"), "field `resources[0].cors.allow_origins`: `*` stands alone"),
            (format!("{r}    cors: {{allow_origins: ['https://x.example/']}}\n"), "field `resources[0].cors.allow_origins[0]`: `https://x.example/` is not an origin as browsers send it"),
            (format!("{r}    authorization_server_metadata: {{issuer: https://b.example}}\n"), "field `resources[0].authorization_server_metadata.issuer`: `https://b.example` is not one of `authorization_servers`"),
            (format!("{r}  - resource: https://api.example.com/mcp/\n    aliases: [https://api.example.com/mcp]\n    authorization_servers: [https://a.example]\n    metadata: {{mode: serve}}\n"), "field `resources[1].aliases[0]`: `/.well-known/oauth-protected-resource/mcp` on api.example.com is already a resource metadata location of `https://api.example.com/mcp`"),
            (r.replace("https://api.example.com/mcp", "https://api.example.com/token"), "field `resources[0].resource`: path `/token` is also the token endpoint of providers[0]"),
            (r.replace("{mode: serve}", "{mode: correct, upstream_path: /authorize}"), "field `resources[0].metadata.upstream_path`: path `/authorize` is also the authorization endpoint"),
            (format!("{r}    aliasses: []\n"), "unknown field `aliasses`"),
            (r.replace("[https://a.example]", "[https://a.example, 'https://A.example/']"), "field `resources[0].authorization_servers[1]`: `https://A.example/` and `https://a.example` (resources[0].authorization_servers[0]) are two spellings of one authorization server"),
            (format!("{r}  - resource: https://b.example.com/mcp\n    authorization_servers: ['https://a.example/']\n    metadata: {{mode: serve}}\n"), "field `resources[1].authorization_servers[0]`: `https://a.example/` and `https://a.example` (resources[0].authorization_servers[0])"),
        ];
        for (section, want) in cases {
            let e = load(&section).unwrap_err();
            assert!(e.contains(want), "{section}\n => {e}\n expected {want}");
        }
    }

    #[test]
    fn loopback_http_is_allowed() {
        let p = load("  - resource: http://localhost:8000/mcp\n    aliases: ['http://localhost:8000/']\n    authorization_servers: ['http://localhost:8000/']\n    metadata: {mode: serve}\n").unwrap();
        assert_eq!(
            p.resources.list[0].identifiers[1].document_url,
            "http://localhost:8000/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn no_section_means_nothing_to_do() {
        let p = Policy::from_bytes(b"version: 1\nproviders: [{name: a}]\n").unwrap();
        assert!(p.resources.is_empty());
        assert_eq!(p.resources.find(None, "/mcp"), None);
    }
}
