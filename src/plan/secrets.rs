//! Secrets read from the settings: inline, or from a file (a mounted Kubernetes Secret). A
//! [`Secret`] from a file is read again by [`Secret::reload`], so that a rotated Secret takes
//! effect without a restart, including Kubernetes' symlink swap and an atomic rename; a file
//! emptied or deleted disables the secret (nothing matches it) until it has a value again.

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
    /// None: its file was emptied or deleted, so it is revoked.
    value: Arc<RwLock<Option<SecretString>>>,
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
        let Some(current) = current.as_ref() else {
            return false;
        };
        subtle::ConstantTimeEq::ct_eq(current.expose_secret().as_bytes(), presented.as_bytes()).into()
    }

    /// The current value; None while revoked.
    pub fn current(&self) -> Option<SecretString> {
        self.value
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether `fingerprint` is the SHA-256 of the current value (a console session made from
    /// it); false once the secret has changed or been revoked.
    pub fn has_fingerprint(&self, fingerprint: &[u8]) -> bool {
        self.fingerprint()
            .is_some_and(|current| subtle::ConstantTimeEq::ct_eq(current.as_slice(), fingerprint).into())
    }

    /// The SHA-256 of the current value; None while revoked.
    pub fn fingerprint(&self) -> Option<Vec<u8>> {
        use sha2::Digest;
        let current = self.current()?;
        Some(sha2::Sha256::digest(current.expose_secret().as_bytes()).to_vec())
    }

    /// The file this secret is read from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the file again; Ok(true) if the value changed. An empty or missing file revokes
    /// the secret (the error says so): a token taken away must stop working, and Kubernetes
    /// swaps a Secret's files atomically, so a file is never briefly absent there.
    pub fn reload(&self) -> Result<bool, String> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let fresh = read(path);
        let mut value = self
            .value
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let same = match (value.as_ref(), fresh.as_ref()) {
            (Some(old), Ok(new)) => old.expose_secret() == new.expose_secret(),
            (None, Err(_)) => true,
            _ => false,
        };
        match fresh {
            Ok(new) => {
                *value = Some(new);
                Ok(!same)
            }
            Err(e) => {
                *value = None;
                Err(e)
            }
        }
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
        value: Arc::new(RwLock::new(Some(value))),
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
    fn a_secret_from_a_file_follows_the_file_and_ends_with_it() {
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
        assert!(secret.reload().is_err(), "an empty file is an error");
        assert!(
            !secret.matches("two") && !secret.matches(""),
            "and revokes the secret"
        );
        assert_eq!(secret.current().map(|_| ()), None);
        std::fs::write(&path, "three").unwrap();
        assert_eq!(secret.reload(), Ok(true));
        assert!(secret.matches("three"));
        std::fs::remove_file(&path).unwrap();
        assert!(
            secret.reload().is_err() && !secret.matches("three"),
            "a deleted file revokes it too"
        );
        assert!(problems.is_empty());
    }
}
