//! The binary's configuration error, [`ConfigError`]: a bad flag,
//! variable or file, printed as one line before exit code 2. Its own
//! module, below both `cli` and `store`, so that neither imports the other
//! for it.

use std::fmt;

/// A bad command line or configuration: `what` names the flag, variable or
/// file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The flag or environment variable, and the file when there is one.
    pub(crate) what: String,
    /// What is wrong, in a few words.
    pub(crate) problem: String,
}

impl ConfigError {
    pub(crate) fn new(what: impl Into<String>, problem: impl fmt::Display) -> ConfigError {
        ConfigError {
            what: what.into(),
            problem: problem.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the underlying error printed.
        let problem = self.problem.replace(['\n', '\r'], " ");
        write!(f, "{}: {}", self.what, problem)
    }
}

impl std::error::Error for ConfigError {}
