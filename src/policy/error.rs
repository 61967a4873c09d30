//! Policy errors that carry the file, line, column and field path of the offending value.

use std::fmt;
use std::ops::Range;

/// One problem found in a policy file, located at the value that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file label given to [`parse`](super::parse) (the path for [`load`](super::load)).
    pub file: String,
    /// 1-based line of the offending value.
    pub line: usize,
    /// 1-based column (in characters) of the offending value.
    pub column: usize,
    /// Path of the offending field, e.g. `agent[1].never[0]` or `channel[0].grant[2].agent`;
    /// empty when the error concerns the whole file (it could not be read, or has a syntax
    /// error outside any field).
    pub field: String,
    /// What is wrong, for a human to read.
    pub message: String,
}

/// Renders `file:line:col: field: message`, leaving out `field: ` when the field is empty.
impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self;
        write!(f, "{}:{}:{}: ", e.file, e.line, e.column)?;
        if !e.field.is_empty() {
            write!(f, "{}: ", e.field)?;
        }
        f.write_str(&e.message)
    }
}

impl std::error::Error for PolicyError {}

/// Every problem found in a policy file (never empty), ordered by position in the file.
///
/// `Display` prints one [`PolicyError`] per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors {
    errors: Vec<PolicyError>,
}

impl PolicyErrors {
    /// Wraps a non-empty list, sorting it by position (stable, so errors at the same place
    /// keep the order they were found in).
    pub(super) fn new(mut errors: Vec<PolicyError>) -> Self {
        errors.sort_by_key(|e| (e.line, e.column));
        Self { errors }
    }

    /// The errors, ordered by line then column.
    pub fn errors(&self) -> &[PolicyError] {
        &self.errors
    }

    /// How many errors were found (at least one).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always `false`: a `PolicyErrors` holds at least one error. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Iterates over the errors in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, PolicyError> {
        self.errors.iter()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

impl<'a> IntoIterator for &'a PolicyErrors {
    type Item = &'a PolicyError;
    type IntoIter = std::slice::Iter<'a, PolicyError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl IntoIterator for PolicyErrors {
    type Item = PolicyError;
    type IntoIter = std::vec::IntoIter<PolicyError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

/// Collects errors while checking one file, turning byte spans into line and column.
pub(super) struct Sink<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    errors: Vec<PolicyError>,
}

impl<'a> Sink<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file,
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// 1-based (line, column) of a byte offset; the column counts characters.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line_idx = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(line_idx).copied().unwrap_or(0);
        let column = match self.text.get(start..offset) {
            Some(prefix) => prefix.chars().count(),
            None => offset - start,
        };
        (line_idx + 1, column + 1)
    }

    /// Records an error at the start of `span`.
    pub(super) fn error(
        &mut self,
        span: &Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = self.position(span.start);
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        });
    }

    /// How many errors have been recorded so far.
    pub(super) fn count(&self) -> usize {
        self.errors.len()
    }

    pub(super) fn into_errors(self) -> Vec<PolicyError> {
        self.errors
    }
}
