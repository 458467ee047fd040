//! Metadata documents (RFC 9728, RFC 8414) as ordered JSON objects whose member values are
//! kept as raw text. Changing one member re-serializes only that member: the order of the
//! others and the bytes of their values stay as the upstream wrote them.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Largest document read (the filter's body cap is lower; this guards direct callers).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// A top-level JSON object, members in document order.
#[derive(Debug)]
pub struct JsonDoc {
    members: Vec<(String, Box<RawValue>)>,
}

impl JsonDoc {
    /// Parses a JSON object. `None` for anything else, for duplicate member names (an
    /// ambiguous document is left alone) and for a body that is not UTF-8.
    pub fn parse(body: &[u8]) -> Option<Self> {
        if body.len() > MAX_BODY_BYTES {
            return None;
        }
        let text = std::str::from_utf8(body).ok()?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let doc: JsonDoc = serde_json::from_str(text).ok()?;
        let mut names: Vec<&str> = doc.members.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        Some(doc)
    }

    /// The raw JSON text of a member.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.get())
    }

    /// A member that is a JSON string.
    pub fn string(&self, name: &str) -> Option<String> {
        serde_json::from_str::<String>(self.raw(name)?).ok()
    }

    /// Sets a member to `value`, in place when present, else at the end. Returns whether the
    /// document changed (compared as JSON values, not bytes).
    pub fn set(&mut self, name: &str, value: &serde_json::Value) -> bool {
        let Ok(text) = serde_json::to_string(value) else {
            return false;
        };
        let Ok(raw) = RawValue::from_string(text) else {
            return false;
        };
        match self.members.iter_mut().find(|(k, _)| k == name) {
            Some((_, old)) => {
                let same = serde_json::from_str::<serde_json::Value>(old.get())
                    .is_ok_and(|old| old == *value);
                if !same {
                    *old = raw;
                }
                !same
            }
            None => {
                self.members.push((name.to_owned(), raw));
                true
            }
        }
    }

    /// The document as compact JSON (member values as they were, or as set).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::from("{");
        for (i, (name, value)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // A `String` always serializes.
            out.push_str(&serde_json::to_string(name).unwrap_or_else(|_| "\"\"".to_owned()));
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        out.into_bytes()
    }
}

impl<'de> Deserialize<'de> for JsonDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonDoc;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonDoc, A::Error> {
                let mut members = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    if members.len() >= 1024 {
                        return Err(serde::de::Error::custom("too many members"));
                    }
                    members.push((name, value));
                }
                Ok(JsonDoc { members })
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_keep_order_and_bytes() {
        let mut doc =
            JsonDoc::parse(br#"{"z": 1, "resource":"https://a/", "n":{"k" : [1, 2]}}"#).unwrap();
        assert_eq!(doc.string("resource").as_deref(), Some("https://a/"));
        assert!(doc.set("resource", &json!("https://a/mcp")));
        assert!(!doc.set("z", &json!(1)));
        assert!(doc.set("added", &json!(["x"])));
        assert_eq!(
            String::from_utf8(doc.to_bytes()).unwrap(),
            r#"{"z":1,"resource":"https://a/mcp","n":{"k" : [1, 2]},"added":["x"]}"#
        );
    }

    #[test]
    fn non_objects_duplicates_and_garbage_are_refused() {
        for body in [
            &b"[1]"[..],
            b"\"s\"",
            b"null",
            b"{",
            b"{\"a\":1}x",
            b"{\"a\":1,\"a\":2}",
            b"\xff{}",
            b"",
        ] {
            assert!(JsonDoc::parse(body).is_none(), "{body:?}");
        }
        // Raw member values are skipped without recursion: deep nesting is read, not a crash.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(60_000), "]".repeat(60_000));
        assert!(JsonDoc::parse(deep.as_bytes()).is_some());
        let unbalanced = format!("{{\"a\":{}}}", "[".repeat(60_000));
        assert!(JsonDoc::parse(unbalanced.as_bytes()).is_none());
        assert!(JsonDoc::parse("\u{feff}{}".as_bytes()).is_some());
    }
}
