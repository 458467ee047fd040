//! A strict YAML reader for the policy: YAML 1.2 core-schema scalars into a JSON value, with
//! the line of every key kept for error messages. It refuses what a policy never needs and a
//! hostile document would use: anchors and aliases (billion laughs), tags, complex keys,
//! duplicate keys, several documents, nesting deeper than [`MAX_DEPTH`], more than
//! [`MAX_NODES`] nodes. `yes`/`no`/`on`/`off` stay strings (no YAML 1.1 booleans).

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

use super::error::PolicyError;

pub const MAX_DEPTH: usize = 16;
pub const MAX_NODES: usize = 20_000;

/// A parsed document and the line (1-based) of each field path, such as
/// `providers[0].endpoints`.
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    lines: Vec<(String, usize)>,
}

impl Document {
    /// The line of `path`, or of its nearest recorded parent.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (p, line) in &self.lines {
            let is_prefix = path == p
                || (path.starts_with(p.as_str())
                    && matches!(path.as_bytes().get(p.len()), Some(b'.' | b'[')));
            if is_prefix && best.is_none_or(|(len, _)| p.len() > len) {
                best = Some((p.len(), *line));
            }
        }
        best.map(|(_, line)| line)
    }
}

enum Frame {
    Seq {
        items: Vec<Value>,
        path: String,
    },
    Map {
        map: Map<String, Value>,
        path: String,
        key: Option<String>,
    },
}

fn syntax(line: usize, message: impl Into<String>) -> PolicyError {
    PolicyError::Syntax {
        field: String::new(),
        line: Some(line as u64),
        message: message.into(),
    }
}

/// Parses one YAML document.
pub fn parse(text: &str) -> Result<Document, PolicyError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut lines: Vec<(String, usize)> = Vec::new();
    let mut root: Option<Value> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;

    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| syntax(e.marker().line(), e.info().to_owned()))?;
        let line = mark.line();
        let value = match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => continue,
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(syntax(line, "the policy must be a single YAML document"));
                }
                continue;
            }
            Event::Alias(_) => return Err(syntax(line, "anchors and aliases are not allowed")),
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 {
                    return Err(syntax(line, "anchors and aliases are not allowed"));
                }
                let as_string = match tag {
                    None => false,
                    Some(t) if t.handle == "!!" && t.suffix == "str" => true,
                    Some(t) if t.handle == "tag:yaml.org,2002:" && t.suffix == "str" => true,
                    Some(t) => {
                        return Err(syntax(
                            line,
                            format!("tag `{}{}` is not allowed", t.handle, t.suffix),
                        ))
                    }
                };
                // A mapping key: remember it and its line; the value comes next.
                if let Some(Frame::Map { path, key, map }) = stack.last_mut() {
                    if key.is_none() {
                        if map.contains_key(&text) {
                            return Err(syntax(line, format!("duplicate key `{text}`")));
                        }
                        lines.push((join(path, &text), line));
                        *key = Some(text);
                        continue;
                    }
                }
                if let Some(Frame::Seq { items, path }) = stack.last() {
                    lines.push((format!("{path}[{}]", items.len()), line));
                }
                if as_string || style != TScalarStyle::Plain {
                    Value::String(text)
                } else {
                    resolve_plain(text)
                }
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if anchor != 0 {
                    return Err(syntax(line, "anchors and aliases are not allowed"));
                }
                if let Some(t) = tag {
                    return Err(syntax(
                        line,
                        format!("tag `{}{}` is not allowed", t.handle, t.suffix),
                    ));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax(
                        line,
                        format!("nesting is deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let path = match stack.last() {
                    None => String::new(),
                    Some(Frame::Seq { items, path }) => {
                        let item = format!("{path}[{}]", items.len());
                        lines.push((item.clone(), line));
                        item
                    }
                    Some(Frame::Map {
                        key: Some(k), path, ..
                    }) => join(path, k),
                    Some(Frame::Map { key: None, .. }) => {
                        return Err(syntax(line, "a mapping key must be a plain string"))
                    }
                };
                nodes += 1;
                let is_map = matches!(event, Event::MappingStart(..));
                stack.push(if is_map {
                    Frame::Map {
                        map: Map::new(),
                        path,
                        key: None,
                    }
                } else {
                    Frame::Seq {
                        items: Vec::new(),
                        path,
                    }
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { items, .. }) => Value::Array(items),
                _ => return Err(syntax(line, "unbalanced sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { map, key: None, .. }) => Value::Object(map),
                _ => return Err(syntax(line, "unbalanced mapping")),
            },
        };

        nodes += 1;
        if nodes > MAX_NODES {
            return Err(syntax(line, format!("more than {MAX_NODES} nodes")));
        }
        match stack.last_mut() {
            None => root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, .. }) => match key.take() {
                Some(k) => {
                    map.insert(k, value);
                }
                None => return Err(syntax(line, "a mapping key must be a plain string")),
            },
        }
    }

    Ok(Document {
        value: root.unwrap_or(Value::Null),
        lines,
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// YAML 1.2 core schema for plain scalars: null, booleans, integers, finite floats; the
/// rest (including `yes`, `on`, `0x1F`, `.inf`) is a string.
fn resolve_plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.trim_start_matches('+').parse::<u64>() {
            return Value::Number(n.into());
        }
        if let Ok(n) = text.parse::<i64>() {
            return Value::Number(n.into());
        }
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema_scalars() {
        let doc =
            parse("a: 1\nb: -2\nc: 1.5\nd: true\ne: yes\nf: ~\ng: '3'\nh: 0x1F\ni: on\n").unwrap();
        let v = doc.value;
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], -2);
        assert_eq!(v["c"], 1.5);
        assert_eq!(v["d"], true);
        assert_eq!(v["e"], "yes");
        assert_eq!(v["f"], Value::Null);
        assert_eq!(v["g"], "3");
        assert_eq!(v["h"], "0x1F");
        assert_eq!(v["i"], "on");
    }

    #[test]
    fn lines_of_paths() {
        let doc = parse("version: 1\nproviders:\n  - name: a\n    endpoints:\n      token: [/t]\n")
            .unwrap();
        assert_eq!(doc.line_of("providers[0].endpoints.token"), Some(5));
        assert_eq!(doc.line_of("providers[0].endpoints.token[0]"), Some(5));
        let items = parse("a:\n  - x\n  - y\n  - {b: 1}\n").unwrap();
        assert_eq!(items.line_of("a[1]"), Some(3));
        assert_eq!(items.line_of("a[2].b"), Some(4));
        assert_eq!(doc.line_of("providers[0].name"), Some(3));
        assert_eq!(doc.line_of("providers[0].nope"), Some(3));
        assert_eq!(doc.line_of("other"), None);
    }

    #[test]
    fn hostile_and_ambiguous_documents_are_refused() {
        for (text, expected) in [
            ("a: &x 1\nb: *x\n", "anchors and aliases"),
            ("a: 1\na: 2\n", "duplicate key `a`"),
            ("--- 1\n--- 2\n", "single YAML document"),
            ("a: !!binary aGk=\n", "binary` is not allowed"),
            ("? [a]\n: 1\n", "mapping key"),
            ("a: [\n", ""),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text:?} => {e}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(&deep).unwrap_err().to_string().contains("deeper"));
        let wide = format!("[{}]", "1,".repeat(MAX_NODES + 1));
        assert!(parse(&wide).unwrap_err().to_string().contains("nodes"));
    }
}
