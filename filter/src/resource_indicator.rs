//! RFC 8707 resource indicators: the `resource` parameters of authorization requests (query
//! string) and token requests (`application/x-www-form-urlencoded` body), rewritten so that
//! every alias of a protected resource reaches the authorization server as its one canonical
//! URL. An authorization server that compares strings then sees the same value at
//! `/authorize`, at the code exchange and at every refresh (BRIEF field case 9).
//!
//! Only the value bytes of `resource` parameters that name a known alias change. Every other
//! byte (parameter order, repeated parameters, `+` or `%20`, empty pairs, unknown
//! parameters, secrets) is copied as it came. A value with a bad escape or non-UTF-8 bytes
//! is left alone, and so is any input in which nothing is an alias.

/// The rewritten form data and how many `resource` values changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub data: Vec<u8>,
    pub changed: usize,
}

/// The parameter name (RFC 8707 section 2).
pub const PARAMETER: &str = "resource";

/// Rewrites each `resource` value for which `canonical` returns a different URL. Returns
/// `None` when nothing changed, so the caller can leave the request untouched.
pub fn rewrite_form<'p>(
    data: &[u8],
    canonical: impl Fn(&str) -> Option<&'p str>,
) -> Option<Rewritten> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut changed = 0;
    for (i, pair) in data.split(|b| *b == b'&').enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        match rewrite_pair(pair, &canonical) {
            Some((name_and_eq, new_value)) => {
                // The name keeps its own spelling; only the value bytes change.
                out.extend_from_slice(name_and_eq);
                out.extend(
                    form_urlencoded::byte_serialize(new_value.as_bytes()).flat_map(str::bytes),
                );
                changed += 1;
            }
            None => out.extend_from_slice(pair),
        }
    }
    (changed > 0).then_some(Rewritten { data: out, changed })
}

/// The bytes up to and including `=`, and the new value, of a `resource=...` pair; `None`
/// keeps the pair's bytes.
fn rewrite_pair<'d, 'p>(
    pair: &'d [u8],
    canonical: &impl Fn(&str) -> Option<&'p str>,
) -> Option<(&'d [u8], &'p str)> {
    let eq = pair.iter().position(|b| *b == b'=')?;
    let (name, value) = (pair.get(..eq)?, pair.get(eq + 1..)?);
    if form_decode(name)? != PARAMETER.as_bytes() {
        return None;
    }
    let decoded = form_decode(value)?;
    let decoded = std::str::from_utf8(&decoded).ok()?;
    let new_value = canonical(decoded).filter(|c| *c != decoded)?;
    Some((pair.get(..=eq)?, new_value))
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space), refusing bad escapes
/// instead of guessing.
pub fn form_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'%' => {
                let hi = input.get(i + 1).and_then(|h| char::from(*h).to_digit(16))?;
                let lo = input.get(i + 2).and_then(|l| char::from(*l).to_digit(16))?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Whether a `Content-Type` value is form-encoded (parameters such as `charset` ignored).
pub fn is_form(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANON: &str = "https://api.example.com/mcp";

    fn aliases(value: &str) -> Option<&'static str> {
        match value {
            "https://api.example.com/mcp"
            | "https://api.example.com/mcp/"
            | "https://api.example.com"
            | "https://API.example.com:443/mcp/" => Some(CANON),
            _ => None,
        }
    }

    fn rw(input: &str) -> Option<String> {
        rewrite_form(input.as_bytes(), aliases).map(|r| String::from_utf8(r.data).unwrap())
    }

    #[test]
    fn aliases_become_the_canonical_value() {
        assert_eq!(
            rw("grant_type=refresh_token&refresh_token=RT_1&resource=https%3A%2F%2Fapi.example.com%2Fmcp%2F&client_id=C").as_deref(),
            Some("grant_type=refresh_token&refresh_token=RT_1&resource=https%3A%2F%2Fapi.example.com%2Fmcp&client_id=C")
        );
        // Unencoded, upper-case escapes, and the origin form.
        assert_eq!(
            rw("resource=https://API.example.com:443/mcp/").as_deref(),
            Some("resource=https%3A%2F%2Fapi.example.com%2Fmcp")
        );
        assert_eq!(
            rw("resource=https%3a%2f%2fapi.example.com").as_deref(),
            Some("resource=https%3A%2F%2Fapi.example.com%2Fmcp")
        );
    }

    #[test]
    fn canonical_value_in_any_spelling_of_the_encoding_is_kept() {
        assert_eq!(rw("resource=https%3A%2F%2Fapi.example.com%2Fmcp"), None);
        assert_eq!(rw("resource=https://api.example.com/mcp&x=1"), None);
    }

    #[test]
    fn everything_else_is_copied_byte_for_byte() {
        let input = "a=1&&resource=https%3A%2F%2Fapi.example.com%2F&b=x+y%20z&resource=https%3A%2F%2Fother.example%2F&resource=https%3A%2F%2Fapi.example.com%2Fmcp%2F&=&c";
        let out = rewrite_form(input.as_bytes(), aliases).unwrap();
        // `https://api.example.com/` is not an alias here (only the empty path is).
        assert_eq!(out.changed, 1);
        assert_eq!(
            String::from_utf8(out.data).unwrap(),
            "a=1&&resource=https%3A%2F%2Fapi.example.com%2F&b=x+y%20z&resource=https%3A%2F%2Fother.example%2F&resource=https%3A%2F%2Fapi.example.com%2Fmcp&=&c"
        );
    }

    #[test]
    fn repeated_parameters_are_each_rewritten() {
        let out = rewrite_form(
            b"resource=https%3A%2F%2Fapi.example.com&resource=https%3A%2F%2Fapi.example.com%2Fmcp%2F",
            aliases,
        )
        .unwrap();
        assert_eq!(out.changed, 2);
    }

    #[test]
    fn malformed_values_and_names_are_left_alone() {
        for input in [
            "resource=https%3A%2F%2Fapi.example.com%2Fmcp%2",
            "resource=https%3A%2F%2Fapi.example.com%2Fmcp%2F%zz",
            "resource=%FF%FE",
            "resource",
            "resourc%65=https://api.example.com/mcp/%",
            "Resource=https://api.example.com/mcp/",
            "",
            "&&&",
        ] {
            assert_eq!(rw(input), None, "{input}");
        }
        assert!(rewrite_form(b"resource=\xff\xfe&x=\x00", aliases).is_none());
        // An escaped parameter name is still the parameter.
        assert_eq!(
            rw("resourc%65=https://api.example.com/mcp/").as_deref(),
            Some("resourc%65=https%3A%2F%2Fapi.example.com%2Fmcp")
        );
    }

    #[test]
    fn form_content_type() {
        assert!(is_form(Some("application/x-www-form-urlencoded")));
        assert!(is_form(Some(
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        )));
        assert!(!is_form(Some("application/json")));
        assert!(!is_form(None));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let alphabet = b"resource=%&+2FAz\xff";
        let mut seed: u32 = 7;
        for _ in 0..20_000 {
            let mut s = b"resource=".to_vec();
            for _ in 0..(seed % 16) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                s.push(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            let _ = rewrite_form(&s, |_| Some(CANON));
            seed = seed.wrapping_add(3);
        }
    }
}
