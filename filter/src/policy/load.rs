//! Reading the policy text: YAML (a JSON document is also valid YAML, but JSON is read with
//! serde_json for exact error positions), with caps on size, depth and node count so a
//! hostile configuration cannot exhaust the VM (billion laughs, deep nesting).

use std::cell::RefCell;

use serde::de::DeserializeOwned;

use super::error::PolicyError;

/// Largest policy accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
const MAX_DEPTH: usize = 16;
const MAX_NODES: usize = 20_000;

/// Parses `text` as JSON when it starts with `{`, else as YAML, into `T` with strict fields.
pub fn parse<T: DeserializeOwned>(text: &[u8]) -> Result<T, PolicyError> {
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
    if text.trim_start().starts_with('{') {
        parse_json(text)
    } else {
        parse_yaml(text)
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

fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T, PolicyError> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_events = MAX_NODES * 4;
    budget.max_aliases = 0;
    budget.max_anchors = 0;
    budget.max_total_scalar_bytes = MAX_POLICY_BYTES;
    budget.max_documents = 1;

    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.strict_booleans = true;

    // serde_path_to_error's error type differs from the loader's; keep the path aside.
    let path = RefCell::new(String::new());
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            *path.borrow_mut() = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| PolicyError::Syntax {
        field: path.into_inner(),
        line: e.location().map(|l| l.line()),
        message: strip_position(&first_line(&e.to_string())),
    })
}

/// Both parsers append " at line L column C"; the line is reported separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().trim().to_owned()
}
