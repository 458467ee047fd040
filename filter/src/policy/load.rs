//! Reading the policy text: JSON with serde_json, YAML with the strict reader in [`yaml`],
//! both behind a size cap so a hostile configuration cannot exhaust the VM.

use serde::de::DeserializeOwned;

use super::error::PolicyError;
use super::yaml;

/// Largest policy accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// Parses `text` as JSON when it is a JSON object, else as YAML, into `T` with strict fields.
/// For YAML the parsed document comes back too, to give later errors their line.
pub fn parse<T: DeserializeOwned>(text: &[u8]) -> Result<(T, Option<yaml::Document>), PolicyError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            bytes: text.len(),
            limit: MAX_POLICY_BYTES,
        });
    }
    let text = std::str::from_utf8(text).map_err(|e| PolicyError::Syntax {
        field: String::new(),
        line: None,
        message: format!("policy is not UTF-8 ({e})"),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(PolicyError::Empty);
    }
    // JSON is read as JSON (exact positions); anything else, including YAML flow mappings
    // such as `{version: 1, providers: [...]}`, as YAML.
    let is_json = text.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    if is_json {
        parse_json(text).map(|t| (t, None))
    } else {
        parse_yaml(text).map(|(t, doc)| (t, Some(doc)))
    }
}

fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, PolicyError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        PolicyError::Syntax {
            field: e.path().to_string(),
            line: Some(inner.line() as u64),
            message: strip_position(&inner.to_string()),
        }
    })?;
    de.end().map_err(|e| PolicyError::Syntax {
        field: String::new(),
        line: Some(e.line() as u64),
        message: strip_position(&e.to_string()),
    })?;
    Ok(value)
}

fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<(T, yaml::Document), PolicyError> {
    let doc = yaml::parse(text)?;
    let value = serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let field = e.path().to_string();
        PolicyError::Syntax {
            line: doc.line_of(&field).map(|l| l as u64),
            message: e.inner().to_string(),
            field,
        }
    })?;
    Ok((value, doc))
}

/// serde_json appends " at line L column C"; the line is reported separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}
