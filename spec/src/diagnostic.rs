//! Problems found in a spec, each with its place: `FILE:LINE:COL: message`.

use std::fmt;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    pub message: String,
}

impl Diagnostic {
    pub fn error(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            pos,
            message: message.into(),
        }
    }

    pub fn warning(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            pos,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col: message`, the form editors and compilers use.
    pub fn located<'a>(&'a self, file: &'a str) -> Located<'a> {
        Located {
            file,
            diagnostic: self,
        }
    }
}

pub struct Located<'a> {
    file: &'a str,
    diagnostic: &'a Diagnostic,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diagnostic;
        let prefix = if d.severity == Severity::Warning {
            "warning: "
        } else {
            ""
        };
        write!(
            f,
            "{}:{}:{}: {prefix}{}",
            self.file, d.pos.line, d.pos.col, d.message
        )
    }
}

/// The nearest candidate to a misspelt name, if one is close enough to be a likely typo.
pub fn suggest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given_lower = given.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&given_lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(given.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_nearest_known_name() {
        let known = ["replicas", "resources", "readinessProbe", "port"];
        assert_eq!(suggest("replicsa", known), Some("replicas"));
        assert_eq!(suggest("Port", known), Some("port"));
        assert_eq!(suggest("readinesProbe", known), Some("readinessProbe"));
        assert_eq!(suggest("completelydifferent", known), None);
    }

    #[test]
    fn located_diagnostics_read_file_line_col() {
        let d = Diagnostic::error(Pos { line: 3, col: 7 }, "bad");
        assert_eq!(d.located("a.yaml").to_string(), "a.yaml:3:7: bad");
        let w = Diagnostic::warning(Pos { line: 1, col: 1 }, "hm");
        assert_eq!(w.located("a.yaml").to_string(), "a.yaml:1:1: warning: hm");
    }
}
