//! Why a policy was refused. Every variant names the field (as a path such as
//! `providers[0].endpoints.token[1]`) so the Envoy log tells the operator what to fix.

use std::fmt;

/// A policy that cannot be loaded. The filter refuses to start with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The configuration is larger than the loader accepts.
    TooLarge { bytes: usize, limit: usize },
    /// The configuration is empty.
    Empty,
    /// YAML or JSON syntax, an unknown field or a wrong type.
    Syntax {
        field: String,
        line: Option<u64>,
        message: String,
    },
    /// A field parsed but its value is not allowed.
    Invalid {
        field: String,
        line: Option<u64>,
        reason: String,
    },
}

impl PolicyError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            line: None,
            reason: reason.into(),
        }
    }

    /// Adds the line of the field, when the policy was YAML with lines to look up.
    pub(crate) fn at_line(self, line_of: impl Fn(&str) -> Option<usize>) -> Self {
        match self {
            Self::Invalid {
                field,
                line: None,
                reason,
            } => Self::Invalid {
                line: line_of(&field).map(|l| l as u64),
                field,
                reason,
            },
            other => other,
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { bytes, limit } => {
                write!(f, "policy is {bytes} bytes; the limit is {limit} bytes")
            }
            Self::Empty => f.write_str("policy is empty; the plugin configuration must hold it"),
            Self::Syntax {
                field,
                line,
                message,
            } => {
                let root = field.is_empty() || field == ".";
                match (root, line) {
                    (true, Some(line)) => write!(f, "line {line}: {message}"),
                    (true, None) => f.write_str(message),
                    (false, Some(line)) => write!(f, "field `{field}` (line {line}): {message}"),
                    (false, None) => write!(f, "field `{field}`: {message}"),
                }
            }
            Self::Invalid {
                field,
                line: Some(line),
                reason,
            } => write!(f, "field `{field}` (line {line}): {reason}"),
            Self::Invalid {
                field,
                line: None,
                reason,
            } => write!(f, "field `{field}`: {reason}"),
        }
    }
}

impl std::error::Error for PolicyError {}
