//! What is wrong with a configuration: each problem at its key path, and all of them at once.
//! Every settings file checks into these, so they live apart from the settings tree.

use std::fmt;

/// One thing wrong with the configuration, at a key path such as `server.auth.bearer_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `notifiers.pager.url`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl Problem {
    /// The problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}
