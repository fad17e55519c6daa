//! Diagnostics for a spec file: where each value sits (line and column, found by a second,
//! event-level YAML parse, since serde_yaml keeps no positions for values) and how an error is
//! shown (`FILE:LINE:COL: error: message` with a caret snippet).

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    pub message: String,
}

/// Every diagnostic of one file, with the source kept for snippets.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file: String,
    pub source: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Warning)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.source.lines().collect();
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            write!(f, "{}:{}:{}: {sev}: {}", self.file, d.pos.line, d.pos.col, d.message)?;
            if let Some(text) = lines.get(d.pos.line.wrapping_sub(1)) {
                let gutter = d.pos.line.to_string();
                let pad = " ".repeat(gutter.len());
                let caret = " ".repeat(text.chars().take(d.pos.col.saturating_sub(1)).count());
                write!(f, "\n{pad} |\n{gutter} | {text}\n{pad} | {caret}^")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Positions of every value (and every mapping key) by path, e.g. `pipelines[0].stream.shards`.
#[derive(Debug, Default)]
pub struct PosIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl PosIndex {
    pub fn build(source: &str) -> PosIndex {
        let mut rx = Receiver::default();
        // Syntax errors are reported by serde_yaml; a partial index is still useful.
        let _ = Parser::new_from_str(source).load(&mut rx, false);
        rx.index
    }

    /// The position of the value at `path`, or of its nearest ancestor that exists.
    pub fn value(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.values.get("").copied().unwrap_or(Pos { line: 1, col: 1 }),
            }
        }
    }

    /// The position of the key that holds `path`, falling back to its value.
    pub fn key(&self, path: &str) -> Pos {
        self.keys.get(path).copied().unwrap_or_else(|| self.value(path))
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Receiver {
    stack: Vec<Frame>,
    index: PosIndex,
}

fn pos(m: Marker) -> Pos {
    // yaml-rust2 markers: line is 1-based, col is 0-based.
    Pos { line: m.line(), col: m.col() + 1 }
}

impl Receiver {
    /// Path of the value about to be read, or None when a mapping key is expected.
    fn child_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => {
                key.take().map(|k| if path.is_empty() { k } else { format!("{path}.{k}") })
            }
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => match self.child_path() {
                Some(p) => {
                    self.index.values.insert(p, pos(mark));
                }
                None => {
                    if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                        let full = if path.is_empty() { value.clone() } else { format!("{path}.{value}") };
                        self.index.keys.insert(full, pos(mark));
                        *key = Some(value);
                    }
                }
            },
            Event::Alias(_) => {
                if let Some(p) = self.child_path() {
                    self.index.values.insert(p, pos(mark));
                }
            }
            Event::MappingStart(..) => {
                let path = self.child_path().unwrap_or_else(|| "?".into());
                self.index.values.insert(path.clone(), pos(mark));
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.child_path().unwrap_or_else(|| "?".into());
                self.index.values.insert(path.clone(), pos(mark));
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn distance(a: &str, b: &str) -> usize {
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

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_values() {
        let src = "stack: a\npipelines:\n  - name: x\n    stream: { name: S, shards: 0 }\n";
        let ix = PosIndex::build(src);
        assert_eq!(ix.value("stack"), Pos { line: 1, col: 8 });
        assert_eq!(ix.value("pipelines[0].name"), Pos { line: 3, col: 11 });
        assert_eq!(ix.value("pipelines[0].stream.shards"), Pos { line: 4, col: 32 });
        assert_eq!(ix.key("pipelines[0].stream"), Pos { line: 4, col: 5 });
        // Missing paths fall back to the nearest ancestor.
        assert_eq!(ix.value("pipelines[0].stream.retention_hours"), Pos { line: 4, col: 13 });
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("shard", ["name", "shards", "retention_hours"]), Some("shards"));
        assert_eq!(suggest("zzzzzz", ["name", "shards"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
