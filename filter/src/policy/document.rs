//! The policy as operators write it (YAML or JSON), before validation.
//!
//! Every struct refuses unknown fields so a typo is a load error, not a silently ignored
//! setting. Defaults live here; cross-field rules live in [`super::compile`].

use serde::Deserialize;

/// Default cap on a buffered body (16 KiB): far above any OAuth error or token body, and
/// below the 32 KiB per-connection buffer limit Envoy's edge guide recommends. The cap must
/// stay below the listener's and cluster's `per_connection_buffer_limit_bytes`, or Envoy
/// itself answers 413/500 before the filter can release the body.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024;

/// The constant `error_description` of rewritten `invalid_client` answers. One text for
/// "unknown client" and "bad credentials" so the answer cannot be used to enumerate clients.
pub const DEFAULT_INVALID_CLIENT_DESCRIPTION: &str =
    "Client authentication failed: the client is unknown to the authorization server \
     (deleted, expired or never registered). Register the client again.";

/// Root of the policy document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Format version; only `1` exists.
    pub version: u32,
    /// The OAuth authorization servers behind this Envoy.
    pub providers: Vec<ProviderSpec>,
    #[serde(default)]
    pub limits: LimitsSpec,
    #[serde(default)]
    pub rewrite: RewriteSpec,
    #[serde(default)]
    pub authorization: AuthorizationSpec,
    /// Issue 6: the protected resources (MCP servers) and their one identity; see
    /// [`super::resources`].
    #[serde(default)]
    pub resources: Vec<super::resources::ResourceSpec>,
    /// `enforce` (default) changes traffic; `observe` only logs and counts what it would do.
    #[serde(default)]
    pub mode: Mode,
}

/// Whether decisions are applied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    /// A dry run: every decision is logged (`observe: would ...`) and counted, no byte of
    /// traffic changes. For watching a new policy before turning it on.
    Observe,
}

/// One authorization server and the request paths of its endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Short name used in logs and metric names.
    pub name: String,
    /// Which provider's answers to expect; `auto` knows every preset.
    #[serde(default = "default_preset")]
    pub preset: String,
    /// Endpoint paths; when all are empty the preset's usual paths apply.
    #[serde(default)]
    pub endpoints: EndpointsSpec,
    /// Extra matchers for "client is gone" answers the preset does not know.
    #[serde(default)]
    pub client_gone: Vec<ClientGoneRuleSpec>,
    /// Client lifetime rules enforced by the filter.
    #[serde(default)]
    pub lifecycle: Option<LifecycleSpec>,
}

/// Client lifecycle rules of one provider.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSpec {
    /// A registration older than this (`30d`, `12h`) is treated as gone.
    #[serde(default)]
    pub client_max_age: Option<String>,
    /// RFC 3339 time; every client registered before it is treated as gone.
    #[serde(default)]
    pub registration_epoch: Option<String>,
    /// Set `client_secret_expires_at` in `/register` answers to registration + max age.
    #[serde(default)]
    pub inject_client_secret_expires_at: bool,
    /// Wrap `client_id`s in a signed envelope carrying the registration time.
    #[serde(default)]
    pub sign_client_ids: bool,
    /// HMAC keys; the first signs, all verify (rotation).
    #[serde(default)]
    pub signing_keys: Vec<SigningKeySpec>,
    /// With signing on, treat a plain (unsigned) `client_id` as gone.
    #[serde(default)]
    pub retire_unsigned_clients: bool,
    /// Paths of the MCP endpoint(s) whose bearer tokens are checked.
    #[serde(default)]
    pub mcp_endpoints: Vec<String>,
    /// RFC 9728 metadata URL named in `invalid_token` challenges.
    #[serde(default)]
    pub resource_metadata: Option<String>,
}

/// One HMAC key: its secret inline (base64) or from an environment variable that Envoy
/// passes to the VM (`vm_config.environment_variables.host_env_keys`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeySpec {
    pub id: String,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
}

fn default_preset() -> String {
    "auto".to_owned()
}

/// Exact request paths (query ignored) per endpoint kind. `*` stands for one path segment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsSpec {
    /// RFC 6749 section 3.2 token endpoint.
    #[serde(default)]
    pub token: Vec<String>,
    /// RFC 7009 revocation endpoint.
    #[serde(default)]
    pub revocation: Vec<String>,
    /// RFC 7591 registration endpoint and RFC 7592 client configuration paths.
    #[serde(default)]
    pub registration: Vec<String>,
    /// RFC 6749 section 3.1 authorization endpoint.
    #[serde(default)]
    pub authorization: Vec<String>,
}

/// A custom "client is gone" matcher: every condition given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGoneRuleSpec {
    /// Response statuses (4xx, or 200 for providers that answer errors with 200).
    #[serde(default)]
    pub status: Vec<u16>,
    /// Error codes, compared case-insensitively with `error`, `errorCode`, `error_code`, `code`.
    #[serde(default)]
    pub error: Vec<String>,
    /// Case-insensitive substrings of the provider's description.
    #[serde(default)]
    pub description_contains: Vec<String>,
}

/// Resource limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Largest response body the filter holds back; larger ones pass through untouched.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}

/// How rewritten answers look.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteSpec {
    /// `error_description` of every rewritten `invalid_client` answer.
    #[serde(default = "default_description")]
    pub error_description: String,
    /// `realm` of the `WWW-Authenticate` challenge.
    #[serde(default = "default_realm")]
    pub realm: String,
}

impl Default for RewriteSpec {
    fn default() -> Self {
        Self {
            error_description: default_description(),
            realm: default_realm(),
        }
    }
}

fn default_description() -> String {
    DEFAULT_INVALID_CLIENT_DESCRIPTION.to_owned()
}

fn default_realm() -> String {
    "oauth".to_owned()
}

/// Behaviour at the authorization endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationSpec {
    /// Replace a provider's "unknown client" answer with a short page telling the user the
    /// registration is stale. Redirects to the request's `redirect_uri` are refused either way.
    #[serde(default = "default_true")]
    pub stale_client_page: bool,
}

impl Default for AuthorizationSpec {
    fn default() -> Self {
        Self {
            stale_client_page: true,
        }
    }
}

fn default_true() -> bool {
    true
}
