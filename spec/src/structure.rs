//! The structural check: a document tree against the JSON Schema generated from the typed model.
//! Unlike deserializing, it keeps going after the first problem, so a file's errors come all at once,
//! each at its own line and column, with the nearest known name for a misspelt field or value.

use serde_json::Value as J;

use crate::diagnostic::{Diagnostic, suggest};
use crate::yaml::{Node, Seg, Value, display_path};

pub struct Checker<'s> {
    root: &'s J,
    pub errors: Vec<Diagnostic>,
    /// Where each error is: the value (or the unknown field) to leave out so that the rest of the
    /// document can still be read and checked for its meaning.
    pub invalid: Vec<Vec<Seg>>,
}

impl<'s> Checker<'s> {
    pub fn new(root: &'s J) -> Self {
        Self {
            root,
            errors: Vec::new(),
            invalid: Vec::new(),
        }
    }

    pub fn check(&mut self, node: &Node, schema: &'s J, path: &mut Vec<Seg>) {
        let schema = self.resolve(schema);
        let Some(obj) = schema.as_object() else {
            return;
        }; // `true`: anything goes

        if let Some(branches) = obj
            .get("anyOf")
            .or_else(|| obj.get("oneOf"))
            .and_then(J::as_array)
        {
            self.check_alternatives(node, branches, path);
            return;
        }
        if let Some(expected) = obj.get("const") {
            if &node.to_json() != expected {
                self.error(
                    node,
                    path,
                    format!("must be {expected}, found {}", preview(node)),
                );
            }
            return;
        }
        if let Some(options) = obj.get("enum").and_then(J::as_array) {
            self.check_enum(node, options, path);
            return;
        }
        if let Some(ty) = obj.get("type") {
            if !type_matches(node, ty) {
                let expected = describe_type(ty);
                let mut message = format!("must be {expected}, found {}", preview(node));
                if expects_string(ty)
                    && matches!(node.value, Value::Int(_) | Value::Float(_) | Value::Bool(_))
                {
                    message.push_str(&format!(" (write it in quotes: \"{}\")", plain(node)));
                }
                self.error(node, path, message);
                return;
            }
        }
        match &node.value {
            Value::Map(entries) => self.check_object(node, entries, obj, path),
            Value::Seq(items) => {
                if let Some(item_schema) = obj.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        path.push(Seg::Index(i));
                        self.check(item, item_schema, path);
                        path.pop();
                    }
                }
            }
            Value::Int(_) | Value::Float(_) => self.check_range(node, obj, path),
            _ => {}
        }
    }

    fn check_object(
        &mut self,
        node: &Node,
        entries: &[(crate::yaml::Key, Node)],
        obj: &'s serde_json::Map<String, J>,
        path: &mut Vec<Seg>,
    ) {
        static EMPTY: std::sync::OnceLock<serde_json::Map<String, J>> = std::sync::OnceLock::new();
        let properties = obj
            .get("properties")
            .and_then(J::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default));
        let additional = obj.get("additionalProperties");
        for (key, value) in entries {
            path.push(Seg::Key(key.name.clone()));
            if let Some(prop) = properties.get(&key.name) {
                self.check(value, prop, path);
            } else {
                match additional {
                    Some(J::Bool(false)) => {
                        let at = display_path(&path[..path.len() - 1]);
                        let place = if at.is_empty() {
                            "at the top level".to_owned()
                        } else {
                            format!("in `{at}`")
                        };
                        let mut message = format!("unknown field `{}` {place}", key.name);
                        match suggest(&key.name, properties.keys().map(String::as_str)) {
                            Some(near) => message.push_str(&format!("; did you mean `{near}`?")),
                            None => message.push_str(&format!(
                                "; expected one of: {}",
                                properties
                                    .keys()
                                    .map(String::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        }
                        self.errors.push(Diagnostic::error(key.pos, message));
                        self.invalid.push(path.clone());
                    }
                    Some(extra @ J::Object(_)) => self.check(value, extra, path),
                    _ => {}
                }
            }
            path.pop();
        }
        if let Some(required) = obj.get("required").and_then(J::as_array) {
            for name in required.iter().filter_map(J::as_str) {
                if !entries.iter().any(|(k, _)| k.name == name) {
                    let at = display_path(path);
                    let place = if at.is_empty() {
                        "at the top level".to_owned()
                    } else {
                        format!("in `{at}`")
                    };
                    self.errors.push(Diagnostic::error(
                        node.pos,
                        format!("missing required field `{name}` {place}"),
                    ));
                    let mut missing = path.clone();
                    missing.push(Seg::Key(name.to_owned()));
                    self.invalid.push(missing);
                }
            }
        }
    }

    fn check_enum(&mut self, node: &Node, options: &[J], path: &[Seg]) {
        let value = node.to_json();
        if options.contains(&value) {
            return;
        }
        let names: Vec<&str> = options.iter().filter_map(J::as_str).collect();
        let mut message = format!(
            "must be one of {}, found {}",
            names.join(", "),
            preview(node)
        );
        if let Some(near) = node
            .as_str()
            .and_then(|s| suggest(s, names.iter().copied()))
        {
            message.push_str(&format!("; did you mean `{near}`?"));
        }
        self.error(node, path, message);
    }

    fn check_alternatives(&mut self, node: &Node, branches: &'s [J], path: &mut Vec<Seg>) {
        let is_null = |b: &J| self.resolve(b).get("type") == Some(&J::String("null".into()));
        if matches!(node.value, Value::Null) && branches.iter().any(is_null) {
            return;
        }
        let candidates: Vec<&J> = branches.iter().filter(|b| !is_null(b)).collect();
        let mut best: Option<Vec<Diagnostic>> = None;
        for branch in candidates {
            let mut sub = Checker::new(self.root);
            sub.check(node, branch, path);
            if sub.errors.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| sub.errors.len() < b.len()) {
                best = Some(sub.errors);
            }
        }
        self.invalid.push(path.to_vec());
        self.errors.extend(best.unwrap_or_default());
    }

    fn check_range(&mut self, node: &Node, obj: &serde_json::Map<String, J>, path: &[Seg]) {
        let n = match node.value {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
            _ => return,
        };
        if let Some(min) = obj.get("minimum").and_then(J::as_f64) {
            if n < min {
                self.error(
                    node,
                    path,
                    format!("must be at least {min}, found {}", plain(node)),
                );
            }
        }
        if let Some(max) = obj.get("maximum").and_then(J::as_f64) {
            if n > max {
                self.error(
                    node,
                    path,
                    format!("must be at most {max}, found {}", plain(node)),
                );
            }
        }
    }

    fn resolve(&self, mut schema: &'s J) -> &'s J {
        // Bounded: a reference cycle in a generated schema must not hang the checker.
        for _ in 0..16 {
            let Some(reference) = schema.get("$ref").and_then(J::as_str) else {
                return schema;
            };
            let Some(name) = reference.strip_prefix("#/$defs/") else {
                return schema;
            };
            match self.root.get("$defs").and_then(|d| d.get(name)) {
                Some(target) => schema = target,
                None => return schema,
            }
        }
        schema
    }

    fn error(&mut self, node: &Node, path: &[Seg], message: String) {
        self.invalid.push(path.to_vec());
        self.errors.push(Diagnostic::error(
            node.pos,
            format!("`{}` {message}", display_path(path)),
        ));
    }
}

fn type_matches(node: &Node, ty: &J) -> bool {
    let one = |t: &str| match (&node.value, t) {
        (Value::Null, "null") => true,
        (Value::Bool(_), "boolean") => true,
        (Value::Int(_), "integer" | "number") => true,
        (Value::Float(_), "number") => true,
        (Value::Str { .. }, "string") => true,
        (Value::Seq(_), "array") => true,
        (Value::Map(_), "object") => true,
        _ => false,
    };
    match ty {
        J::String(t) => one(t),
        J::Array(ts) => ts.iter().filter_map(J::as_str).any(one),
        _ => true,
    }
}

fn expects_string(ty: &J) -> bool {
    match ty {
        J::String(t) => t == "string",
        J::Array(ts) => ts
            .iter()
            .filter(|t| *t != "null")
            .eq([&J::String("string".into())]),
        _ => false,
    }
}

fn describe_type(ty: &J) -> String {
    let word = |t: &str| match t {
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "array" => "a list",
        "object" => "a mapping",
        "null" => "empty",
        _ => "a value",
    };
    match ty {
        J::String(t) => word(t).to_owned(),
        J::Array(ts) => ts
            .iter()
            .filter_map(J::as_str)
            .filter(|t| *t != "null")
            .map(word)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "a value".to_owned(),
    }
}

fn plain(node: &Node) -> String {
    match &node.value {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str { text, .. } => text.clone(),
        _ => String::new(),
    }
}

fn preview(node: &Node) -> String {
    match &node.value {
        Value::Str { text, .. } => {
            let short: String = text.chars().take(40).collect();
            if short.len() < text.len() {
                format!("`{short}…`")
            } else {
                format!("`{short}`")
            }
        }
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
            format!("{} `{}`", node.kind(), plain(node))
        }
        _ => node.kind().to_owned(),
    }
}
