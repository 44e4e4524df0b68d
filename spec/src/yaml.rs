//! A YAML document tree that remembers where every node came from, so that every error can name
//! its line and column. Built iteratively from the parser's events (no recursion, bounded depth),
//! without anchors or aliases (a spec has no need for them, and they are the usual way to make a
//! small file expand into an enormous one).

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::{Diagnostic, Pos};

/// Deeper nesting than this is refused: no spec needs it and it bounds the work of every pass.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// `quoted` is false for plain scalars, which is what the user typed without quotes.
    Str {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str { .. } => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The node at a path of mapping keys and list indexes, if it exists.
    pub fn at(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = match (seg, &node.value) {
                (Seg::Key(k), Value::Map(_)) => node.get(k)?,
                (Seg::Index(i), Value::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Plain data for serde: positions dropped, the shape kept.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str { text, .. } => J::String(text.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(k: &str) -> Self {
        Seg::Key(k.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// `spec.env[3].name`, as users read paths.
pub fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A document of a multi-document file; `None` root means the document held only comments.
#[derive(Debug)]
pub struct Document {
    pub pos: Pos,
    pub root: Option<Node>,
}

fn pos(mark: &Marker) -> Pos {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Pos {
        line: mark.line(),
        col: mark.col() + 1,
    }
}

enum Frame {
    Seq {
        pos: Pos,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
    },
}

/// Parses every document of a YAML stream. A syntax error ends parsing (the parser cannot resume),
/// but every structural problem found before it is kept.
pub fn load(text: &str) -> Result<Vec<Document>, Vec<Diagnostic>> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut doc_pos = Pos { line: 1, col: 1 };
    let mut root: Option<Node> = None;

    loop {
        let (event, mark) = match parser.next_token() {
            Ok(ev) => ev,
            Err(e) => {
                let at = pos(e.marker());
                errors.push(Diagnostic::error(at, format!("invalid YAML: {}", e.info())));
                return Err(errors);
            }
        };
        let at = pos(&mark);
        let node = match event {
            Event::StreamStart | Event::Nothing => continue,
            Event::StreamEnd => break,
            Event::DocumentStart => {
                doc_pos = at;
                root = None;
                continue;
            }
            Event::DocumentEnd => {
                // An empty document (only comments) parses as a null scalar.
                let root = root.take().filter(|n| n.value != Value::Null);
                docs.push(Document { pos: doc_pos, root });
                continue;
            }
            Event::Alias(_) => {
                errors.push(Diagnostic::error(
                    at,
                    "YAML aliases (*name) are not supported in specs; write the value out",
                ));
                Node {
                    pos: at,
                    value: Value::Null,
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 {
                    errors.push(Diagnostic::error(
                        at,
                        "YAML anchors (&name) are not supported in specs",
                    ));
                }
                if let Some(tag) = tag {
                    // The core schema's own tags are harmless; anything else changes meaning.
                    if !(tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!") {
                        errors.push(Diagnostic::error(
                            at,
                            format!("YAML tag {}{} is not supported", tag.handle, tag.suffix),
                        ));
                    }
                }
                Node {
                    pos: at,
                    value: scalar(text, style),
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _)
                if stack.len() >= MAX_DEPTH =>
            {
                let _ = anchor;
                errors.push(Diagnostic::error(
                    at,
                    format!("nesting deeper than {MAX_DEPTH} levels"),
                ));
                return Err(errors);
            }
            Event::SequenceStart(anchor, _) => {
                if anchor != 0 {
                    errors.push(Diagnostic::error(
                        at,
                        "YAML anchors (&name) are not supported in specs",
                    ));
                }
                stack.push(Frame::Seq {
                    pos: at,
                    items: Vec::new(),
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                if anchor != 0 {
                    errors.push(Diagnostic::error(
                        at,
                        "YAML anchors (&name) are not supported in specs",
                    ));
                }
                stack.push(Frame::Map {
                    pos: at,
                    entries: Vec::new(),
                    pending_key: None,
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { pos, items }) => Node {
                    pos,
                    value: Value::Seq(items),
                },
                _ => unreachable_structure(&mut errors, at),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { pos, entries, .. }) => Node {
                    pos,
                    value: Value::Map(entries),
                },
                _ => unreachable_structure(&mut errors, at),
            },
        };
        // Attach the finished node to its parent, or make it the document's root.
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                pos: map_pos,
                entries,
                pending_key,
            }) => match pending_key.take() {
                None => {
                    let name = match &node.value {
                        Value::Str { text, .. } => text.clone(),
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Null => "null".into(),
                        Value::Seq(_) | Value::Map(_) => {
                            errors.push(Diagnostic::error(
                                node.pos,
                                "a mapping key must be a plain value",
                            ));
                            String::new()
                        }
                    };
                    if entries.iter().any(|(k, _)| k.name == name) {
                        errors.push(Diagnostic::error(
                            node.pos,
                            format!("duplicate key `{name}`"),
                        ));
                    }
                    *pending_key = Some(Key {
                        name,
                        pos: node.pos,
                    });
                }
                Some(key) => {
                    // A block mapping "starts" where its first key is written, which is where
                    // people look for it (the parser's own mark for it can fall after that key).
                    if entries.is_empty() {
                        *map_pos = (*map_pos).min(key.pos);
                    }
                    entries.push((key, node))
                }
            },
        }
    }
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(errors)
    }
}

fn unreachable_structure(errors: &mut Vec<Diagnostic>, at: Pos) -> Node {
    // The parser guarantees balanced events; should that ever break, report instead of panicking.
    errors.push(Diagnostic::error(at, "invalid YAML structure"));
    Node {
        pos: at,
        value: Value::Null,
    }
}

/// YAML 1.2 core schema resolution for plain scalars; quoted and block scalars are always strings.
fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::Str { text, quoted: true };
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let looks_numeric =
        text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
    if looks_numeric {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
        if let Some(hex) = text.strip_prefix("0x") {
            if let Ok(i) = i64::from_str_radix(hex, 16) {
                return Value::Int(i);
            }
        }
        if text.chars().any(|c| c.is_ascii_digit()) {
            if let Ok(f) = text.parse::<f64>() {
                if f.is_finite() {
                    return Value::Float(f);
                }
            }
        }
    }
    Value::Str {
        text,
        quoted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut docs = load(text).expect("valid yaml");
        docs.remove(0).root.expect("a root")
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let root = one("a: 1\nb:\n  c: x\n");
        assert_eq!(root.get("a").unwrap().pos, Pos { line: 1, col: 4 });
        let c = root.at(&["b".into(), "c".into()]).unwrap();
        assert_eq!(c.pos, Pos { line: 3, col: 6 });
    }

    #[test]
    fn plain_scalars_resolve_by_the_core_schema_and_quoted_ones_stay_strings() {
        let root = one("i: 8080\nq: \"8080\"\nf: 99.95\nb: true\nn: ~\ns: 200m\n");
        assert_eq!(root.get("i").unwrap().value, Value::Int(8080));
        assert_eq!(
            root.get("q").unwrap().value,
            Value::Str {
                text: "8080".into(),
                quoted: true
            }
        );
        assert_eq!(root.get("f").unwrap().value, Value::Float(99.95));
        assert_eq!(root.get("b").unwrap().value, Value::Bool(true));
        assert_eq!(root.get("n").unwrap().value, Value::Null);
        assert_eq!(root.get("s").unwrap().as_str(), Some("200m"));
    }

    #[test]
    fn documents_with_only_comments_are_kept_as_empty() {
        let docs = load("a: 1\n---\n# just a comment\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].root.is_none());
        assert_eq!(
            docs[2].root.as_ref().unwrap().get("b").unwrap().value,
            Value::Int(2)
        );
    }

    #[test]
    fn duplicate_keys_are_errors_with_the_second_position() {
        let errs = load("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].pos, Pos { line: 3, col: 1 });
        assert!(errs[0].message.contains("duplicate key `a`"));
    }

    #[test]
    fn aliases_and_anchors_are_refused() {
        let errs = load("a: &x [1, 2]\nb: *x\n").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn syntax_errors_name_their_position() {
        let errs = load("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(errs[0].message.starts_with("invalid YAML"), "{errs:?}");
        assert!(errs[0].pos.line >= 1);
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let text = "[".repeat(100_000);
        let errs = load(&text).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        // Either our limit or the parser's own, whichever trips first.
        assert!(
            errs[0].message.contains("nesting deeper")
                || errs[0].message.contains("recursion limit"),
            "{errs:?}"
        );
    }

    #[test]
    fn paths_read_like_the_spec() {
        let path = [
            Seg::from("spec"),
            Seg::from("env"),
            Seg::from(3),
            Seg::from("name"),
        ];
        assert_eq!(display_path(&path), "spec.env[3].name");
    }
}

/// Writes plain data as one YAML document (starting with `---`), keys in their given order.
pub fn emit(value: &serde_json::Value) -> String {
    fn convert(v: &serde_json::Value) -> yaml_rust2::Yaml {
        use yaml_rust2::Yaml;
        match v {
            serde_json::Value::Null => Yaml::Null,
            serde_json::Value::Bool(b) => Yaml::Boolean(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Integer(i),
                None => Yaml::Real(n.to_string()),
            },
            serde_json::Value::String(s) => Yaml::String(s.clone()),
            serde_json::Value::Array(items) => Yaml::Array(items.iter().map(convert).collect()),
            serde_json::Value::Object(map) => Yaml::Hash(
                map.iter()
                    .map(|(k, v)| (Yaml::String(k.clone()), convert(v)))
                    .collect(),
            ),
        }
    }
    let mut out = String::new();
    let mut emitter = yaml_rust2::YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    // Writing to a String cannot fail.
    let _ = emitter.dump(&convert(value));
    out.push('\n');
    out
}

#[cfg(test)]
mod emit_tests {
    use super::*;

    #[test]
    fn emitted_yaml_reads_back_as_the_same_data() {
        let value = serde_json::json!({"b": 1, "a": ["x", {"c": true, "d": null}], "s": "8080", "m": "line1\nline2"});
        let text = emit(&value);
        let docs = load(&text).unwrap();
        assert_eq!(docs[0].root.as_ref().unwrap().to_json(), value, "{text}");
    }
}
