//! Secrets read from the settings: inline, or from a file (a mounted Kubernetes Secret). A
//! [`Secret`] from a file is read again by [`Secret::reload`], so that a rotated Secret takes
//! effect without a restart, including Kubernetes' symlink swap and an atomic rename.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use secrecy::{ExposeSecret, SecretString};

use crate::config::Problem;

/// A secret value, and the file it comes from if any.
#[derive(Clone)]
pub struct Secret {
    file: Option<PathBuf>,
    value: Arc<RwLock<SecretString>>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("file", &self.file)
            .field("value", &"[REDACTED]")
            .finish()
    }
}

impl Secret {
    /// Whether `presented` is the current value, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let current = self.value.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        subtle::ConstantTimeEq::ct_eq(current.expose_secret().as_bytes(), presented.as_bytes()).into()
    }

    /// The current value.
    pub fn current(&self) -> SecretString {
        self.value
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The file this secret is read from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the file again; Ok(true) if the value changed. An unreadable or empty file
    /// keeps the value in force (a Secret being rewritten is briefly absent).
    pub fn reload(&self) -> Result<bool, String> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let fresh = read(path)?;
        let mut value = self
            .value
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if value.expose_secret() == fresh.expose_secret() {
            return Ok(false);
        }
        *value = fresh;
        Ok(true)
    }
}

fn read(path: &Path) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::from(text.to_owned()))
}

/// A secret given inline (`key`) or in a file (`key_file`), not both; the file is kept so the
/// secret can be read again.
pub fn rotating_secret(
    key: &str,
    inline: Option<&SecretString>,
    file: Option<&PathBuf>,
    problems: &mut Vec<Problem>,
) -> Option<Secret> {
    let value = secret_from(key, inline, file, problems)?;
    Some(Secret {
        file: file.cloned(),
        value: Arc::new(RwLock::new(value)),
    })
}

/// A secret given inline (`key`) or in a file (`key_file`), not both.
pub fn secret_from(
    key: &str,
    inline: Option<&SecretString>,
    file: Option<&PathBuf>,
    problems: &mut Vec<Problem>,
) -> Option<SecretString> {
    let secret = match (inline, file) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                key,
                format!("set either {key} or {key}_file, not both"),
            ));
            return None;
        }
        (Some(secret), None) => secret.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => SecretString::from(text.trim().to_owned()),
            Err(e) => {
                problems.push(Problem::new(
                    format!("{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                ));
                return None;
            }
        },
        (None, None) => return None,
    };
    if secret.expose_secret().is_empty() {
        problems.push(Problem::new(key, "must not be empty"));
        return None;
    }
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_from_a_file_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "one\n").unwrap();
        let mut problems = Vec::new();
        let secret = rotating_secret("t", None, Some(&path), &mut problems).unwrap();
        assert!(secret.matches("one") && !secret.matches("two"));
        assert_eq!(secret.reload(), Ok(false));

        std::fs::write(dir.path().join("next"), "two").unwrap();
        std::fs::rename(dir.path().join("next"), &path).unwrap();
        assert_eq!(secret.reload(), Ok(true));
        assert!(secret.matches("two") && !secret.matches("one"));

        std::fs::write(&path, "  \n").unwrap();
        assert!(secret.reload().is_err(), "an empty file is refused");
        assert!(secret.matches("two"), "and the value in force stays");
        assert!(problems.is_empty());
    }
}
