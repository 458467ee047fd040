//! Which configured OAuth endpoint a request is for, from Envoy's `:path` only (never from
//! forwarding headers). Matching is literal and segment-wise: a path that is not in canonical
//! form (percent-encoding, `//`, dot segments, `;` parameters) matches nothing and passes
//! through, because a missed rewrite keeps the status quo while a false match corrupts traffic.

use std::fmt;

/// The OAuth endpoint kinds the filter knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// RFC 6749 section 3.2.
    Token,
    /// RFC 7009.
    Revocation,
    /// RFC 7591 (and RFC 7592 client configuration).
    Registration,
    /// RFC 6749 section 3.1.
    Authorization,
    /// The MCP endpoint (an RFC 9728 protected resource), for bearer-token lifecycle checks.
    Resource,
}

impl EndpointKind {
    pub const ALL: [EndpointKind; 5] = [
        Self::Token,
        Self::Revocation,
        Self::Registration,
        Self::Authorization,
        Self::Resource,
    ];
    /// The provider's own endpoints (the ones a preset can supply).
    pub const OAUTH: [EndpointKind; 4] = [
        Self::Token,
        Self::Revocation,
        Self::Registration,
        Self::Authorization,
    ];

    /// The policy field name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Revocation => "revocation",
            Self::Registration => "registration",
            Self::Authorization => "authorization",
            Self::Resource => "mcp",
        }
    }

    /// Whether a request with this method can get an answer the filter acts on.
    pub fn accepts_method(self, method: &str) -> bool {
        match self {
            // RFC 6749 section 3.2 and RFC 7009 section 2.1: POST only.
            Self::Token | Self::Revocation => method == "POST",
            Self::Authorization => method == "GET" || method == "POST",
            // CORS preflights are never checked or answered (a 401 breaks browser clients).
            Self::Registration | Self::Resource => method != "OPTIONS" && method != "HEAD",
        }
    }
}

impl fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one non-empty segment.
    Any,
}

/// A path from the policy, such as `/realms/*/protocol/openid-connect/token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Parses a policy path. The error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| "must start with `/`".to_owned())?;
        if text.len() > 1024 {
            return Err("is longer than 1024 bytes".to_owned());
        }
        let raw: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(raw.len());
        for (i, seg) in raw.iter().enumerate() {
            let last = i + 1 == raw.len();
            if seg.is_empty() {
                // Only `/` itself or one trailing slash; `//` is a different path.
                if last {
                    segments.push(Segment::Literal(String::new()));
                    continue;
                }
                return Err("contains an empty segment (`//`)".to_owned());
            }
            if *seg == "*" {
                segments.push(Segment::Any);
                continue;
            }
            if *seg == "." || *seg == ".." {
                return Err("contains a dot segment".to_owned());
            }
            if let Some(c) = seg.chars().find(|c| !is_path_char(*c)) {
                return Err(format!(
                    "contains `{}`; only letters, digits and -._~!$&'()+,=:@ are allowed, \
                     and `*` as a whole segment",
                    c.escape_default()
                ));
            }
            segments.push(Segment::Literal((*seg).to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn wildcards(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Any))
            .count()
    }

    /// Whether some request path matches both patterns with neither more specific (the same
    /// number of `*`), so the router could not choose between them.
    pub fn overlaps(&self, other: &PathPattern) -> bool {
        self.segments.len() == other.segments.len()
            && self.wildcards() == other.wildcards()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    (Segment::Literal(x), Segment::Any) | (Segment::Any, Segment::Literal(x)) => {
                        !x.is_empty()
                    }
                    (Segment::Any, Segment::Any) => true,
                })
    }

    /// Whether `path` (no query) is this endpoint.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for segment in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            let ok = match segment {
                Segment::Literal(lit) => part == lit,
                // `.` and `..` are path characters but dot segments, never a name.
                Segment::Any => {
                    !part.is_empty()
                        && part != "."
                        && part != ".."
                        && part.chars().all(is_path_char)
                }
            };
            if !ok {
                return false;
            }
        }
        parts.next().is_none()
    }
}

/// RFC 3986 pchar without `%` (no percent-encoding in canonical paths) and without `;` and `*`.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()+,=:@".contains(c)
}

/// Splits Envoy's `:path` into path and query at the first `?`.
pub fn split_path(raw: &str) -> (&str, Option<&str>) {
    match raw.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (raw, None),
    }
}

/// One policy path bound to a provider and endpoint kind.
#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: PathPattern,
    pub kind: EndpointKind,
    pub provider: usize,
}

/// All routes of a policy.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `path` (query already removed). A literal match beats a wildcard one.
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.pattern.matches(path))
            .min_by_key(|r| r.pattern.wildcards())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    #[test]
    fn literal_paths_match_exactly() {
        let t = p("/oauth2/token");
        assert!(t.matches("/oauth2/token"));
        for other in [
            "/oauth2/token/",
            "/oauth2//token",
            "/OAUTH2/token",
            "/oauth2/%74oken",
            "/oauth2/token;x",
            "oauth2/token",
            "/oauth2/./token",
            "/oauth2",
            "",
        ] {
            assert!(!t.matches(other), "{other}");
        }
    }

    #[test]
    fn trailing_slash_pattern_is_its_own_path() {
        let t = p("/o/token/");
        assert!(t.matches("/o/token/"));
        assert!(!t.matches("/o/token"));
    }

    #[test]
    fn wildcard_is_one_plain_segment() {
        let t = p("/realms/*/protocol/openid-connect/token");
        assert!(t.matches("/realms/acme/protocol/openid-connect/token"));
        assert!(!t.matches("/realms//protocol/openid-connect/token"));
        assert!(!t.matches("/realms/a/b/protocol/openid-connect/token"));
        assert!(!t.matches("/realms/a%2Fb/protocol/openid-connect/token"));
    }

    /// Found by the `path_routing` fuzz harness's canonical-path check: a wildcard took a dot
    /// segment, so `/realms/../protocol/openid-connect/token` (which an upstream resolves to
    /// `/protocol/openid-connect/token`) was treated as a Keycloak token endpoint.
    #[test]
    fn wildcard_never_matches_a_dot_segment() {
        let t = p("/realms/*/protocol/openid-connect/token");
        assert!(!t.matches("/realms/../protocol/openid-connect/token"));
        assert!(!t.matches("/realms/./protocol/openid-connect/token"));
        assert!(t.matches("/realms/.../protocol/openid-connect/token"));
        assert!(t.matches("/realms/a.b/protocol/openid-connect/token"));
    }

    #[test]
    fn bad_patterns_say_why() {
        assert_eq!(
            PathPattern::parse("token").unwrap_err(),
            "must start with `/`"
        );
        assert!(PathPattern::parse("/a//b")
            .unwrap_err()
            .contains("empty segment"));
        assert!(PathPattern::parse("/a/../b")
            .unwrap_err()
            .contains("dot segment"));
        assert!(PathPattern::parse("/a%2Fb").unwrap_err().contains("`%`"));
        assert!(PathPattern::parse("/a?x=1").unwrap_err().contains("`?`"));
        assert!(PathPattern::parse("/a*").unwrap_err().contains("`*`"));
    }

    #[test]
    fn literal_route_wins_over_wildcard() {
        let router = Router::new(vec![
            Route {
                pattern: p("/oauth2/*/v1/token"),
                kind: EndpointKind::Token,
                provider: 0,
            },
            Route {
                pattern: p("/oauth2/default/v1/token"),
                kind: EndpointKind::Revocation,
                provider: 1,
            },
        ]);
        assert_eq!(router.find("/oauth2/default/v1/token").unwrap().provider, 1);
        assert_eq!(router.find("/oauth2/x/v1/token").unwrap().provider, 0);
        assert!(router.find("/mcp").is_none());
    }

    #[test]
    fn overlapping_patterns() {
        assert!(p("/*/x").overlaps(&p("/a/*")));
        assert!(p("/a/b").overlaps(&p("/a/b")));
        assert!(!p("/*/x").overlaps(&p("/a/x")));
        assert!(!p("/a/*").overlaps(&p("/b/*")));
        assert!(!p("/a").overlaps(&p("/a/")));
    }

    #[test]
    fn split_path_at_first_question_mark() {
        assert_eq!(split_path("/a?b=1?c"), ("/a", Some("b=1?c")));
        assert_eq!(split_path("/a"), ("/a", None));
    }
}
