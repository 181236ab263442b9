//! Located configuration errors and warnings.
//!
//! A config file is checked as a whole: every problem found is collected into
//! [`ConfigErrors`] so an operator fixes them all in one pass instead of one per restart.
//! Every entry says where it is (`file:line:column`, or the environment variable)
//! and names the key, because "invalid config" alone is useless at 3 a.m.

use std::fmt;

/// Where a problem is: a position in a file, or an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// 1-based line and column (column counted in characters).
    File {
        file: String,
        line: usize,
        column: usize,
    },
    /// A whole file (could not be read, or no finer position is known).
    WholeFile { file: String },
    /// An environment variable override.
    Env { var: String },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { file, line, column } => write!(f, "{file}:{line}:{column}"),
            Location::WholeFile { file } => write!(f, "{file}"),
            Location::Env { var } => write!(f, "environment variable {var}"),
        }
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{location}: cannot read: {message}")]
    Read { location: Location, message: String },
    /// Not valid TOML (the parser stops at the first such error).
    #[error("{location}: TOML syntax error: {message}")]
    Syntax { location: Location, message: String },
    /// Valid TOML, invalid configuration: unknown key, wrong type, bad value, inconsistency.
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
}

impl ConfigError {
    pub fn location(&self) -> &Location {
        match self {
            ConfigError::Read { location, .. }
            | ConfigError::Syntax { location, .. }
            | ConfigError::Invalid { location, .. } => location,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ConfigError::Read { message, .. }
            | ConfigError::Syntax { message, .. }
            | ConfigError::Invalid { message, .. } => message,
        }
    }

    /// `(line, column)` when the error points into a file.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match self.location() {
            Location::File { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }
}

/// Every problem found in one load; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line, in file order.
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

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Something accepted but worth telling the operator (`orochi-router check` prints these),
/// e.g. a PgCat-era layout that we reinterpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.location, self.message)
    }
}
