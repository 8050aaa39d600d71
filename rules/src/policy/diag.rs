//! Diagnostics: every error and warning found while reading and compiling a policy, with
//! the file, line, column and object it concerns.
//!
//! A policy may come from several files at once (a TOML host document and HNS JSON
//! documents). Their texts are laid out one after the other in one offset space, so a
//! span (`Range<usize>`) anywhere in the reader and the compiler names one file and one
//! place in it without carrying the file along. Lines are found by binary search in a
//! table of line starts built once per file, so locating N diagnostics costs
//! O(N log lines), never a rescan of the text (a 20k-endpoint file used to be quadratic).

use std::fmt;
use std::ops::Range;

/// One problem (or, among [`super::Loaded::warnings`], one remark) in a policy file.
/// Displays as `FILE:LINE:COL: OBJECT: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// The object at fault, e.g. `endpoint "web" acl #2`, or `TOML` for syntax errors.
    pub object: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.object, self.message
        )
    }
}

impl PolicyError {
    /// The same place and object, shown as a warning: `FILE:LINE:COL: OBJECT: warning: ...`.
    pub fn as_warning(&self) -> String {
        format!(
            "{}:{}:{}: {}: warning: {}",
            self.file, self.line, self.col, self.object, self.message
        )
    }
}

/// Every problem found in a policy, in file order. Displays one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, PolicyError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// One file of the policy, placed at `base` in the shared offset space.
struct SourceMap<'a> {
    name: &'a str,
    text: &'a str,
    base: usize,
    /// Byte offset (in `text`) of the start of every line.
    line_starts: Vec<usize>,
}

impl SourceMap<'_> {
    fn line_col(&self, local: usize) -> (usize, usize) {
        let mut at = local.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= at).max(1);
        let start = self.line_starts[line - 1];
        let before = &self.text[start..at];
        let col = if before.is_ascii() {
            before.len()
        } else {
            before.chars().count()
        };
        (line, col + 1)
    }
}

/// Where a source sits in the shared offset space.
pub(crate) struct Placed {
    pub base: usize,
}

/// Collects errors and warnings against the texts they point into.
pub(crate) struct Diagnostics<'a> {
    sources: Vec<SourceMap<'a>>,
    errors: Vec<(usize, PolicyError)>,
    warnings: Vec<(usize, PolicyError)>,
}

impl<'a> Diagnostics<'a> {
    /// No file yet; see [`Diagnostics::add`].
    pub(crate) fn empty() -> Self {
        Diagnostics {
            sources: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Places one more file after the others; its spans are offsets from `base`.
    pub(crate) fn add(&mut self, name: &'a str, text: &'a str) -> Placed {
        let base = self.sources.last().map_or(0, |s| s.base + s.text.len() + 1);
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        self.sources.push(SourceMap {
            name,
            text,
            base,
            line_starts,
        });
        Placed { base }
    }

    /// The source holding a shared offset, and the offset inside it.
    fn locate(&self, offset: usize) -> Option<(usize, &SourceMap<'a>, usize)> {
        let i = self
            .sources
            .partition_point(|s| s.base <= offset)
            .checked_sub(1)?;
        let s = &self.sources[i];
        Some((i, s, offset - s.base))
    }

    fn make(&self, span: &Range<usize>, object: &str, message: String) -> (usize, PolicyError) {
        let (index, file, line, col) = match self.locate(span.start) {
            Some((i, s, local)) => {
                let (line, col) = s.line_col(local);
                (i, s.name, line, col)
            }
            None => (0, "", 1, 1),
        };
        (
            index,
            PolicyError {
                file: file.to_owned(),
                line,
                col,
                object: object.to_owned(),
                message,
            },
        )
    }

    pub(crate) fn error(&mut self, span: Range<usize>, object: &str, message: impl Into<String>) {
        let e = self.make(&span, object, message.into());
        self.errors.push(e);
    }

    /// Something the policy says that Strata reads but does not use, or assumes.
    pub(crate) fn warning(&mut self, span: Range<usize>, object: &str, message: impl Into<String>) {
        let w = self.make(&span, object, message.into());
        self.warnings.push(w);
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// `line N`, or `FILE line N` when the policy has several files, for messages like
    /// "first defined at line 3".
    pub(crate) fn at(&self, offset: usize) -> String {
        match self.locate(offset) {
            Some((_, s, local)) if self.sources.len() > 1 => {
                format!("{} line {}", s.name, s.line_col(local).0)
            }
            Some((_, s, local)) => format!("line {}", s.line_col(local).0),
            None => "line 1".to_owned(),
        }
    }

    /// `FILE:LINE` of an offset, for comments in emitted files.
    pub(crate) fn file_line(&self, offset: usize) -> String {
        match self.locate(offset) {
            Some((_, s, local)) => format!("{}:{}", s.name, s.line_col(local).0),
            None => String::new(),
        }
    }

    fn sorted(mut v: Vec<(usize, PolicyError)>) -> Vec<PolicyError> {
        // Stable sort: diagnostics at one place keep the order they were found in.
        v.sort_by_key(|(i, e)| (*i, e.line, e.col));
        v.into_iter().map(|(_, e)| e).collect()
    }

    /// The errors and the warnings, each sorted by file (in the order given) and place.
    pub(crate) fn finish(self) -> (PolicyErrors, Vec<PolicyError>) {
        (
            PolicyErrors(Self::sorted(self.errors)),
            Self::sorted(self.warnings),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_across_files() {
        let mut d = Diagnostics::empty();
        let a = d.add("a.toml", "x\nyz\n");
        let b = d.add("b.json", "{\n  é\"k\"\n}");
        d.error(a.base + 3..a.base + 4, "o", "in a");
        d.error(b.base + 6..b.base + 7, "o", "in b");
        d.warning(b.base..b.base, "o", "w");
        assert_eq!(d.at(b.base + 2), "b.json line 2");
        let (errors, warnings) = d.finish();
        assert_eq!(
            errors.to_string(),
            "a.toml:2:2: o: in a\nb.json:2:4: o: in b"
        );
        assert_eq!(warnings[0].as_warning(), "b.json:1:1: o: warning: w");
    }
}
