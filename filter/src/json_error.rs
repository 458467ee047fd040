//! Reading an error out of a JSON body in one pass, without building the document: only the
//! handful of fields that can name an error are kept; every other value is skipped. This is
//! the work done on every held token answer, so it must cost little.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Top-level keys that hold the error code, strongest first.
const CODE_KEYS: [&str; 4] = ["error", "errorCode", "error_code", "error_type"];
/// Top-level keys that hold a description, preferred first.
const DESCRIPTION_KEYS: [&str; 8] = [
    "error_description",
    "errorSummary",
    "msg",
    "message",
    "detail",
    "error_message",
    "errorDescription",
    "errorMessage",
];
/// Keys of a nested `error` object or `errors[0]`.
const NESTED_CODE_KEYS: [&str; 4] = ["error", "code", "error_code", "status"];
const NESTED_DESCRIPTION_KEYS: [&str; 3] = ["message", "error_description", "detail"];

/// The fields found, before priorities are applied.
#[derive(Debug, Default)]
pub struct Fields {
    pub codes: [Option<String>; 4],
    pub descriptions: [Option<String>; 8],
    pub nested_codes: [Option<String>; 4],
    pub nested_descriptions: [Option<String>; 3],
    /// A string `code` (also used by success envelopes).
    pub weak_code: Option<String>,
    pub has_access_token: bool,
}

fn slot<const N: usize>(keys: &[&str; N], key: &str) -> Option<usize> {
    keys.iter().position(|k| *k == key)
}

/// Parses a JSON object body into [`Fields`]; `None` when it is not a JSON object.
pub fn fields(body: &str) -> Option<Fields> {
    let mut de = serde_json::Deserializer::from_str(body);
    let fields = TopLevel.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(fields)
}

/// A string, or nothing for any other JSON type (which is skipped).
struct MaybeString;

impl<'de> DeserializeSeed<'de> for MaybeString {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MaybeString {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        Ok((!v.is_empty()).then(|| v.to_owned()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// What a value one level down holds: for the `error` key, a string code or an object; for
/// other keys, whether an object holds `access_token` (`{"data": {"access_token": ...}}`).
#[derive(Default)]
struct Inner {
    string: Option<String>,
    codes: [Option<String>; 4],
    descriptions: [Option<String>; 3],
    is_object: bool,
    has_access_token: bool,
}

struct InnerValue;

impl<'de> DeserializeSeed<'de> for InnerValue {
    type Value = Inner;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for InnerValue {
    type Value = Inner;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Inner {
            string: MaybeString.visit_str(v)?,
            ..Inner::default()
        })
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Inner::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Inner::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Inner::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Inner::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Inner::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // `errors: [{...}, ...]`: the first element counts.
        let first = seq.next_element_seed(InnerValue)?.unwrap_or_default();
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Inner {
            string: None,
            has_access_token: false,
            ..first
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut inner = Inner {
            is_object: true,
            ..Inner::default()
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "access_token" {
                inner.has_access_token = true;
                map.next_value::<IgnoredAny>()?;
            } else if let Some(i) = slot(&NESTED_CODE_KEYS, &key) {
                inner.codes[i] = map.next_value_seed(MaybeString)?;
            } else if let Some(i) = slot(&NESTED_DESCRIPTION_KEYS, &key) {
                inner.descriptions[i] = map.next_value_seed(MaybeString)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(inner)
    }
}

struct TopLevel;

impl<'de> DeserializeSeed<'de> for TopLevel {
    type Value = Fields;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Fields;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "error" || key == "errors" {
                let inner = map.next_value_seed(InnerValue)?;
                if key == "error" {
                    fields.codes[0] = inner.string;
                }
                if inner.is_object || key == "errors" {
                    fields.nested_codes = inner.codes;
                    fields.nested_descriptions = inner.descriptions;
                }
            } else if key == "access_token" {
                fields.has_access_token = true;
                map.next_value::<IgnoredAny>()?;
            } else if key == "code" {
                fields.weak_code = map.next_value_seed(MaybeString)?;
            } else if let Some(i) = slot(&CODE_KEYS, &key) {
                fields.codes[i] = map.next_value_seed(MaybeString)?;
            } else if let Some(i) = slot(&DESCRIPTION_KEYS, &key) {
                fields.descriptions[i] = map.next_value_seed(MaybeString)?;
            } else {
                // Any other value: only an object holding `access_token` matters.
                let inner = map.next_value_seed(InnerValue)?;
                fields.has_access_token |= inner.has_access_token;
            }
        }
        Ok(fields)
    }
}
