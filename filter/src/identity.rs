//! One server, one identity (issue 6): what the filter does with a request that concerns a
//! protected resource of the policy's `resources:` section, as decisions the adapter applies.
//!
//! - At a resource metadata location (RFC 9728), `GET`/`HEAD`: answer from the policy
//!   (`serve`), or send the request to the upstream's one document and correct the answer
//!   (`correct`).
//! - At the MCP endpoint, anything but `OPTIONS`: a 401 without a usable `Bearer` challenge
//!   gets `resource_metadata` (and CORS exposure of the header when configured).
//! - At an authorization server discovery location (RFC 8414, OpenID): send the request to
//!   the path the server serves, check the `issuer`, fix it when allowed.
//! - At the providers' authorization and token endpoints: rewrite RFC 8707 `resource`
//!   parameters in the query and in form bodies to the canonical identifier.
//!
//! Decisions read Envoy's `:path` (and `:authority` when resources span several origins),
//! never forwarding headers. Anything unexpected passes through unchanged.

use crate::endpoint::{split_path, EndpointKind};
use crate::exchange::ResponseHead;
use crate::policy::resources::{Metadata, Resource, Target};
use crate::policy::Policy;
use crate::provider_error::{self, ContentCoding, MediaKind};
use crate::reply::Reply;
use crate::{resource_indicator, resource_metadata, server_metadata};

/// The request head fields the decision reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// Envoy's `:path`, query included.
    pub path: &'a str,
    pub authority: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The CORS `Origin` request header.
    pub origin: Option<&'a str>,
}

/// What to do with a request, decided at request-header time.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Answer now; the request goes no further.
    pub answer: Option<Answer>,
    /// Replace `:path` with this.
    pub new_path: Option<String>,
    /// How many `resource` values the new `:path` changed (for the log and metrics).
    pub query_indicators: usize,
    /// Hold the (form-encoded) request body and rewrite its `resource` parameters.
    pub rewrite_body: bool,
    /// Watch the response.
    pub watch: Option<Watch>,
}

/// A locally made answer and what it is, for the log line.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub reply: Reply,
    pub resource: usize,
    pub identifier: usize,
}

/// The responses the filter looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// The MCP endpoint: a 401 may need a challenge.
    Endpoint {
        resource: usize,
        identifier: usize,
        allow_origin: Option<String>,
    },
    /// The upstream's resource metadata, to correct for this identifier.
    ResourceMetadata {
        resource: usize,
        identifier: usize,
        allow_origin: Option<String>,
    },
    /// An authorization server's metadata, to check the issuer of.
    ServerMetadata {
        resource: usize,
        allow_origin: Option<String>,
    },
}

/// The decision at response-header time for a document watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocHead {
    PassThrough,
    /// Hold headers and body until the end of the body (at most the cap).
    Buffer,
}

/// What a document watch found, for the log line and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocEvent {
    /// Resource metadata corrected (`resource` or `authorization_servers` changed).
    Corrected,
    /// Resource metadata or issuer already right; only caching headers set.
    Unchanged,
    /// The authorization server's `issuer` is not the one the resource metadata names.
    IssuerMismatch { stated: Option<String>, fixed: bool },
}

/// The edit of a held document answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocEdit {
    /// The new body; `None` keeps the upstream's bytes.
    pub body: Option<Vec<u8>>,
    pub set: Vec<(&'static str, String)>,
    pub remove: Vec<&'static str>,
    pub event: DocEvent,
}

fn is_read(method: &str) -> bool {
    method == "GET" || method == "HEAD"
}

impl Policy {
    /// Decides what the filter does with a request for the URL-identity features.
    pub fn identity_request(&self, head: &RequestHead<'_>) -> Plan {
        let mut plan = Plan::default();
        if self.resources.is_empty() {
            return plan;
        }
        let (path, query) = split_path(head.path);

        // RFC 8707 at the providers' endpoints. (An MCP endpoint listed for the lifecycle's
        // bearer checks is also a resource location: looked up below.)
        if let Some(route) = self
            .router
            .find(path)
            .filter(|r| r.kind != EndpointKind::Resource)
        {
            let form_post = head.method == "POST" && resource_indicator::is_form(head.content_type);
            match route.kind {
                EndpointKind::Authorization => {
                    if let Some(q) = query {
                        if let Some(rw) = resource_indicator::rewrite_form(q.as_bytes(), |v| {
                            self.resources.canonical_for(v)
                        }) {
                            // Only ASCII was replaced by ASCII in a `&str`: still UTF-8.
                            if let Ok(q) = String::from_utf8(rw.data) {
                                plan.new_path = Some(format!("{path}?{q}"));
                                plan.query_indicators = rw.changed;
                            }
                        }
                    }
                    plan.rewrite_body = form_post;
                }
                EndpointKind::Token => plan.rewrite_body = form_post,
                EndpointKind::Revocation | EndpointKind::Registration | EndpointKind::Resource => {}
            }
            return plan;
        }

        let Some(target) = self.resources.find(head.authority, path) else {
            return plan;
        };
        let allow = |resource: &Resource| {
            resource
                .cors
                .as_ref()
                .and_then(|c| c.allow_origin(head.origin))
        };
        match target {
            Target::Endpoint {
                resource,
                identifier,
            } => {
                // A CORS preflight is never touched (ENVOY-NOTES section 4).
                if head.method == "OPTIONS" {
                    return plan;
                }
                let Some(r) = self.resources.list.get(resource) else {
                    return plan;
                };
                plan.watch = Some(Watch::Endpoint {
                    resource,
                    identifier,
                    allow_origin: allow(r),
                });
            }
            Target::ResourceMetadata {
                resource,
                identifier,
            } => {
                let Some(r) = self.resources.list.get(resource) else {
                    return plan;
                };
                if !is_read(head.method) {
                    return plan;
                }
                match &r.metadata {
                    Metadata::Serve { .. } => {
                        plan.answer =
                            resource_metadata::served(r, identifier, allow(r)).map(|reply| {
                                Answer {
                                    reply,
                                    resource,
                                    identifier,
                                }
                            });
                    }
                    Metadata::Correct { upstream_path } => {
                        if upstream_path != path {
                            plan.new_path = Some(with_query(upstream_path, query));
                        }
                        plan.watch = Some(Watch::ResourceMetadata {
                            resource,
                            identifier,
                            allow_origin: allow(r),
                        });
                    }
                }
            }
            Target::ServerMetadata { resource } => {
                let Some(r) = self.resources.list.get(resource) else {
                    return plan;
                };
                if !is_read(head.method) {
                    return plan;
                }
                if let Some(upstream) = r
                    .server_metadata
                    .as_ref()
                    .and_then(|s| s.upstream_path.as_deref())
                    .filter(|u| *u != path)
                {
                    plan.new_path = Some(with_query(upstream, query));
                }
                plan.watch = Some(Watch::ServerMetadata {
                    resource,
                    allow_origin: allow(r),
                });
            }
        }
        plan
    }

    /// The form body with its `resource` parameters canonical, or `None` to keep it.
    pub fn identity_request_body(&self, body: &[u8]) -> Option<resource_indicator::Rewritten> {
        if body.len() > self.max_body_bytes {
            return None;
        }
        resource_indicator::rewrite_form(body, |v| self.resources.canonical_for(v))
    }
}

fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    }
}

impl Watch {
    fn resource<'p>(&self, policy: &'p Policy) -> Option<&'p Resource> {
        let index = match self {
            Self::Endpoint { resource, .. }
            | Self::ResourceMetadata { resource, .. }
            | Self::ServerMetadata { resource, .. } => *resource,
        };
        policy.resources.list.get(index)
    }

    /// Endpoint watch: the headers to set on the response, from its status, its
    /// `WWW-Authenticate` values (`None` when one is not text), its
    /// `Access-Control-Expose-Headers` and whether it already allows an origin.
    pub fn challenge_edits(
        &self,
        policy: &Policy,
        status: u16,
        challenges: Option<&[String]>,
        expose: Option<&str>,
        has_allow_origin: bool,
    ) -> Vec<(&'static str, String)> {
        let Self::Endpoint {
            identifier,
            allow_origin,
            ..
        } = self
        else {
            return Vec::new();
        };
        let Some(r) = self.resource(policy) else {
            return Vec::new();
        };
        if status != 401 {
            return Vec::new();
        }
        let mut set = Vec::new();
        if let Some(id) = r.identifiers.get(*identifier) {
            if let Some(value) = resource_metadata::fix_challenge(challenges, &id.document_url) {
                set.push(("www-authenticate", value));
            }
        }
        if r.cors.is_some() {
            if let Some(value) = resource_metadata::expose_challenge(expose) {
                set.push(("access-control-expose-headers", value));
            }
            if !has_allow_origin {
                set.extend(resource_metadata::cors_headers(r, allow_origin.clone()));
            }
        }
        set
    }

    /// Document watches: whether to hold the answer for [`Watch::document_body`].
    pub fn document_head(&self, policy: &Policy, head: &ResponseHead<'_>) -> DocHead {
        if matches!(self, Self::Endpoint { .. }) || head.status != 200 {
            return DocHead::PassThrough;
        }
        if provider_error::content_coding(head.content_encoding).is_none() {
            return DocHead::PassThrough;
        }
        if !matches!(
            provider_error::media_kind(head.content_type),
            MediaKind::Json | MediaKind::Unknown
        ) {
            return DocHead::PassThrough;
        }
        if let Some(length) = head.content_length {
            match length.trim().parse::<u64>() {
                Ok(n) if n > 0 && n <= policy.max_body_bytes as u64 => {}
                _ => return DocHead::PassThrough,
            }
        }
        DocHead::Buffer
    }

    /// Document watches: the edit of a complete held answer, or `None` to release it
    /// unchanged (not a JSON object, over the cap, undecodable).
    pub fn document_body(
        &self,
        policy: &Policy,
        head: &ResponseHead<'_>,
        body: &[u8],
    ) -> Option<DocEdit> {
        let r = self.resource(policy)?;
        if body.len() > policy.max_body_bytes {
            return None;
        }
        let coding = provider_error::content_coding(head.content_encoding)?;
        let decoded = provider_error::decode(coding, body, policy.max_body_bytes)?;
        let (new_body, event) = match self {
            Self::Endpoint { .. } => return None,
            Self::ResourceMetadata { identifier, .. } => {
                let id = r.identifiers.get(*identifier)?;
                match resource_metadata::correct(&decoded, &id.url, &r.authorization_servers)? {
                    Some(fixed) => (Some(fixed), DocEvent::Corrected),
                    None => (None, DocEvent::Unchanged),
                }
            }
            Self::ServerMetadata { .. } => {
                let server = r.server_metadata.as_ref()?;
                let found = server_metadata::inspect(&decoded, &server.issuer, server.fix_issuer)?;
                if found.matches {
                    (None, DocEvent::Unchanged)
                } else {
                    let fixed = found.fixed.is_some();
                    (
                        found.fixed,
                        DocEvent::IssuerMismatch {
                            stated: found.stated,
                            fixed,
                        },
                    )
                }
            }
        };
        let allow_origin = match self {
            Self::ResourceMetadata { allow_origin, .. }
            | Self::ServerMetadata { allow_origin, .. } => allow_origin.clone(),
            Self::Endpoint { .. } => None,
        };
        let mut set = vec![("cache-control", r.cache_control.clone())];
        set.extend(resource_metadata::cors_headers(r, allow_origin));
        let mut remove = vec!["expires", "pragma"];
        if new_body.is_some() {
            // The new body is identity-encoded JSON; validators of the old one no longer hold.
            remove.extend(["etag", "last-modified", "content-md5"]);
            if coding != ContentCoding::Identity {
                remove.push("content-encoding");
            }
            if head.content_type.is_none() {
                set.push(("content-type", "application/json".to_owned()));
            }
        }
        Some(DocEdit {
            body: new_body,
            set,
            remove,
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "version: 1
providers:
  - name: op
    endpoints: {token: [/token], authorization: [/authorize], registration: [/register]}
resources:
  - resource: https://api.example.com/mcp
    aliases: [https://api.example.com/mcp/, https://api.example.com]
    authorization_servers: [https://auth.example.com]
    metadata: {mode: serve}
    cors: {allow_origins: ['https://app.example']}
    authorization_server_metadata: {upstream_path: /.well-known/openid-configuration, fix_issuer: true}
  - resource: https://other.example.com/mcp
    authorization_servers: [https://auth.example.com]
    metadata: {mode: correct, upstream_path: /.well-known/oauth-protected-resource}
    max_age: 60
";

    fn policy() -> Policy {
        Policy::from_bytes(POLICY.as_bytes()).unwrap()
    }

    fn req<'a>(method: &'a str, authority: &'a str, path: &'a str) -> RequestHead<'a> {
        RequestHead {
            method,
            path,
            authority: Some(authority),
            content_type: None,
            origin: None,
        }
    }

    #[test]
    fn serve_mode_answers_every_location_with_its_identifier() {
        let p = policy();
        for (path, resource) in [
            (
                "/.well-known/oauth-protected-resource/mcp",
                "https://api.example.com/mcp",
            ),
            (
                "/.well-known/oauth-protected-resource/mcp?x=1",
                "https://api.example.com/mcp",
            ),
            (
                "/.well-known/oauth-protected-resource/mcp/",
                "https://api.example.com/mcp/",
            ),
            (
                "/.well-known/oauth-protected-resource",
                "https://api.example.com",
            ),
        ] {
            let plan = p.identity_request(&req("GET", "api.example.com", path));
            let answer = plan.answer.unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&answer.reply.body).unwrap();
            assert_eq!(doc["resource"], resource, "{path}");
            assert_eq!(doc["authorization_servers"][0], "https://auth.example.com");
        }
        assert!(p
            .identity_request(&req(
                "HEAD",
                "api.example.com",
                "/.well-known/oauth-protected-resource"
            ))
            .answer
            .is_some());
        for (method, path) in [
            ("POST", "/.well-known/oauth-protected-resource"),
            ("OPTIONS", "/.well-known/oauth-protected-resource"),
            ("GET", "/.well-known/oauth-protected-resource/mcp/x"),
            ("GET", "/.well-known/oauth-protected-resource/%6Dcp"),
            ("GET", "//.well-known/oauth-protected-resource"),
        ] {
            assert_eq!(
                p.identity_request(&req(method, "api.example.com", path)),
                Plan::default(),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn cors_on_served_documents_follows_the_policy() {
        let p = policy();
        let mut head = req(
            "GET",
            "api.example.com",
            "/.well-known/oauth-protected-resource/mcp",
        );
        head.origin = Some("https://app.example");
        let reply = p.identity_request(&head).answer.unwrap().reply;
        assert!(reply.headers.contains(&(
            "access-control-allow-origin",
            "https://app.example".to_owned()
        )));
        head.origin = Some("https://evil.example");
        let reply = p.identity_request(&head).answer.unwrap().reply;
        assert!(!reply
            .headers
            .iter()
            .any(|(n, _)| *n == "access-control-allow-origin"));
    }

    #[test]
    fn correct_mode_sends_every_location_to_the_upstream_document() {
        let p = policy();
        let plan = p.identity_request(&req(
            "GET",
            "other.example.com",
            "/.well-known/oauth-protected-resource/mcp",
        ));
        assert_eq!(
            plan.new_path.as_deref(),
            Some("/.well-known/oauth-protected-resource")
        );
        let watch = plan.watch.unwrap();
        let head = ResponseHead {
            status: 200,
            content_type: Some("application/json"),
            ..Default::default()
        };
        assert_eq!(watch.document_head(&p, &head), DocHead::Buffer);
        let edit = watch
            .document_body(&p, &head, br#"{"resource":"https://other.example.com/","authorization_servers":["https://x"]}"#)
            .unwrap();
        assert_eq!(edit.event, DocEvent::Corrected);
        assert_eq!(
            String::from_utf8(edit.body.unwrap()).unwrap(),
            r#"{"resource":"https://other.example.com/mcp","authorization_servers":["https://auth.example.com"]}"#
        );
        assert!(edit
            .set
            .contains(&("cache-control", "public, max-age=60".to_owned())));
        // The upstream location itself is corrected without a path change.
        let plan = p.identity_request(&req(
            "GET",
            "other.example.com",
            "/.well-known/oauth-protected-resource",
        ));
        assert_eq!(plan.new_path, None);
        assert!(
            plan.watch.is_none(),
            "root of other.example.com is not an identifier"
        );
    }

    #[test]
    fn documents_that_cannot_be_read_pass_unchanged() {
        let p = policy();
        let watch = p
            .identity_request(&req(
                "GET",
                "other.example.com",
                "/.well-known/oauth-protected-resource/mcp",
            ))
            .watch
            .unwrap();
        let mut head = ResponseHead {
            status: 200,
            content_type: Some("application/json"),
            ..Default::default()
        };
        for (status, ct, len, enc) in [
            (404, "application/json", None, None),
            (200, "text/html", None, None),
            (200, "application/json", Some("999999999"), None),
            (200, "application/json", Some("0"), None),
            (200, "application/json", None, Some("br")),
        ] {
            head.status = status;
            head.content_type = Some(ct);
            head.content_length = len;
            head.content_encoding = enc;
            assert_eq!(watch.document_head(&p, &head), DocHead::PassThrough);
        }
        head = ResponseHead {
            status: 200,
            content_type: Some("application/json"),
            ..Default::default()
        };
        for body in [&b"<html>"[..], b"{\"a\":", b"\xff", b"[]"] {
            assert_eq!(watch.document_body(&p, &head, body), None);
        }
    }

    #[test]
    fn compressed_documents_are_decoded_and_sent_plain() {
        let p = policy();
        let watch = p
            .identity_request(&req(
                "GET",
                "other.example.com",
                "/.well-known/oauth-protected-resource/mcp",
            ))
            .watch
            .unwrap();
        let doc = br#"{"resource":"https://other.example.com","authorization_servers":[]}"#;
        let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        gz.extend(miniz_oxide::deflate::compress_to_vec(doc, 6));
        gz.extend(crc32fast::hash(doc).to_le_bytes());
        gz.extend((doc.len() as u32).to_le_bytes());
        let head = ResponseHead {
            status: 200,
            content_type: Some("application/json"),
            content_encoding: Some("gzip"),
            ..Default::default()
        };
        assert_eq!(watch.document_head(&p, &head), DocHead::Buffer);
        let edit = watch.document_body(&p, &head, &gz).unwrap();
        assert_eq!(edit.event, DocEvent::Corrected);
        assert!(edit.remove.contains(&"content-encoding"));
        let body: serde_json::Value = serde_json::from_slice(&edit.body.unwrap()).unwrap();
        assert_eq!(body["resource"], "https://other.example.com/mcp");
    }

    #[test]
    fn server_metadata_is_sent_to_its_one_location_and_issuer_fixed() {
        let p = policy();
        let path = "/.well-known/oauth-authorization-server";
        let plan = p.identity_request(&req("GET", "auth.example.com", path));
        assert_eq!(
            plan.new_path.as_deref(),
            Some("/.well-known/openid-configuration")
        );
        // The same path on the MCP server's origin is not the issuer's: untouched.
        assert_eq!(
            p.identity_request(&req("GET", "api.example.com", path)),
            Plan::default()
        );
        let plan = p.identity_request(&req(
            "GET",
            "auth.example.com",
            "/.well-known/openid-configuration",
        ));
        assert_eq!(plan.new_path, None);
        let watch = plan.watch.unwrap();
        let head = ResponseHead {
            status: 200,
            content_type: Some("application/json"),
            ..Default::default()
        };
        let edit = watch
            .document_body(&p, &head, br#"{"issuer":"https://clerk.example.com"}"#)
            .unwrap();
        assert_eq!(
            edit.event,
            DocEvent::IssuerMismatch {
                stated: Some("https://clerk.example.com".into()),
                fixed: true
            }
        );
        assert_eq!(
            edit.body.unwrap(),
            br#"{"issuer":"https://auth.example.com"}"#
        );
        let edit = watch
            .document_body(&p, &head, br#"{"issuer":"https://auth.example.com"}"#)
            .unwrap();
        assert_eq!(edit.event, DocEvent::Unchanged);
        assert_eq!(edit.body, None);
    }

    #[test]
    fn endpoint_401_gets_a_challenge_and_options_is_never_watched() {
        let p = policy();
        assert!(p
            .identity_request(&req("OPTIONS", "api.example.com", "/mcp"))
            .watch
            .is_none());
        let mut head = req("POST", "api.example.com", "/mcp/");
        head.origin = Some("https://app.example");
        let watch = p.identity_request(&head).watch.unwrap();
        let edits = watch.challenge_edits(&p, 401, Some(&[]), None, false);
        assert_eq!(
            edits,
            vec![
                ("www-authenticate", "Bearer resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource/mcp/\"".to_owned()),
                ("access-control-expose-headers", "WWW-Authenticate".to_owned()),
                ("access-control-allow-origin", "https://app.example".to_owned()),
                ("vary", "Origin".to_owned()),
            ]
        );
        assert!(watch
            .challenge_edits(&p, 200, Some(&[]), None, false)
            .is_empty());
        assert!(watch
            .challenge_edits(&p, 403, Some(&[]), None, false)
            .is_empty());
        // A non-text challenge stays; CORS still applies.
        let edits = watch.challenge_edits(&p, 401, None, Some("WWW-Authenticate"), true);
        assert!(edits.is_empty(), "{edits:?}");
        let root = p
            .identity_request(&req("GET", "api.example.com", "/"))
            .watch
            .unwrap();
        let edits = root.challenge_edits(
            &p,
            401,
            Some(&["Bearer error=\"invalid_token\"".to_owned()]),
            None,
            true,
        );
        assert_eq!(
            edits[0].1,
            "Bearer error=\"invalid_token\", resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource\""
        );
    }

    #[test]
    fn resource_parameters_become_canonical_at_provider_endpoints() {
        let p = policy();
        let plan = p.identity_request(&req(
            "GET",
            "auth.example.com",
            "/authorize?client_id=c&resource=https%3A%2F%2Fapi.example.com%2Fmcp%2F&state=s",
        ));
        assert_eq!(
            plan.new_path.as_deref(),
            Some("/authorize?client_id=c&resource=https%3A%2F%2Fapi.example.com%2Fmcp&state=s")
        );
        assert_eq!(plan.query_indicators, 1);
        assert!(!plan.rewrite_body);
        let plan = p.identity_request(&req(
            "GET",
            "auth.example.com",
            "/authorize?resource=https%3A%2F%2Fapi.example.com%2Fmcp",
        ));
        assert_eq!(plan, Plan::default());

        let mut token = req("POST", "auth.example.com", "/token");
        token.content_type = Some("application/x-www-form-urlencoded;charset=UTF-8");
        assert!(p.identity_request(&token).rewrite_body);
        token.content_type = Some("application/json");
        assert!(!p.identity_request(&token).rewrite_body);
        let mut register = req("POST", "auth.example.com", "/register");
        register.content_type = Some("application/x-www-form-urlencoded");
        assert!(!p.identity_request(&register).rewrite_body);

        let body = b"grant_type=refresh_token&refresh_token=RT_1&resource=https%3A%2F%2FAPI.example.com%3A443%2Fmcp%2F";
        let rw = p.identity_request_body(body).unwrap();
        assert_eq!(
            rw.data,
            b"grant_type=refresh_token&refresh_token=RT_1&resource=https%3A%2F%2Fapi.example.com%2Fmcp".to_vec()
        );
        assert!(p
            .identity_request_body(
                b"grant_type=refresh_token&resource=https%3A%2F%2Fevil.example%2F"
            )
            .is_none());
    }

    #[test]
    fn never_panics_on_arbitrary_requests() {
        let p = policy();
        let alphabet = b"/.well-known/oauth-protected-resource/mcp?&=%2Fresource:authorize";
        let methods = ["GET", "HEAD", "POST", "OPTIONS", "PUT", ""];
        let mut seed: u32 = 5;
        for i in 0..20_000 {
            let mut path = String::from("/");
            for _ in 0..(seed % 50) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                path.push(char::from(alphabet[(seed >> 16) as usize % alphabet.len()]));
            }
            let mut head = req(methods[i % methods.len()], "api.example.com", &path);
            head.content_type = Some("application/x-www-form-urlencoded");
            let plan = p.identity_request(&head);
            if let Some(new_path) = plan.new_path {
                assert!(new_path.starts_with('/'), "{path} -> {new_path}");
            }
            let _ = p.identity_request_body(path.as_bytes());
            seed = seed.wrapping_add(13);
        }
    }

    #[test]
    fn no_resources_no_plan() {
        let p = Policy::from_bytes(
            b"version: 1\nproviders: [{name: a, endpoints: {token: [/token]}}]\n",
        )
        .unwrap();
        let mut token = req("POST", "x", "/token");
        token.content_type = Some("application/x-www-form-urlencoded");
        assert_eq!(p.identity_request(&token), Plan::default());
    }
}
