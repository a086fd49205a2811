//! The installation's secret key, which seals what coachloop must keep but never show
//! again (a remote sync connection's Reporting API key) with XChaCha20-Poly1305. The key
//! lives in a file outside the database (`secret_key_file`, by default `secret.key` in
//! the data directory), so a copy of the database alone does not give the keys away.
//! Every node of an installation must be given the same file. It is read (or made) when
//! first needed, so an installation that never seals anything has none.

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::path::Path;

const NONCE: usize = 24;

/// 32 bytes, kept in memory only.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

/// A sealed value that this key cannot open: sealed with another key (a node given
/// another `secret_key_file`), or changed.
#[derive(Debug, thiserror::Error)]
#[error(
    "a sealed secret cannot be opened with this installation's secret key: was it sealed \
     by a node with another secret_key_file?"
)]
pub struct Unsealable;

/// The installation's secret key, read from its file (or made there) on first use.
#[derive(Debug)]
pub struct Secrets {
    file: Option<std::path::PathBuf>,
    key: std::sync::Mutex<Option<SecretKey>>,
}

impl Secrets {
    /// The key kept in `path`.
    pub fn file(path: std::path::PathBuf) -> Self {
        Self {
            file: Some(path),
            key: std::sync::Mutex::new(None),
        }
    }

    /// A key of this process only (tests).
    pub fn random() -> Self {
        Self {
            file: None,
            key: std::sync::Mutex::new(Some(SecretKey::random())),
        }
    }

    /// The key: read or made at the first call.
    pub fn key(&self) -> anyhow::Result<SecretKey> {
        let mut key = self.key.lock().expect("not poisoned");
        if let Some(key) = key.as_ref() {
            return Ok(key.clone());
        }
        let path = self
            .file
            .as_deref()
            .context("no secret key file is configured")?;
        let loaded = SecretKey::load_or_create(path)?;
        *key = Some(loaded.clone());
        Ok(loaded)
    }
}

impl SecretKey {
    /// A new random key (tests, and a file made on first start).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// Reads the key from `path` (64 hex digits), making the file (readable by its owner
    /// only) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
                let bytes = bytes.with_context(|| {
                    format!(
                        "{} does not hold a secret key (64 hex digits)",
                        path.display()
                    )
                })?;
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                Ok(Self(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                use std::io::Write;
                let mut file = options
                    .open(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                writeln!(file, "{}", hex::encode(key.0))
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(key)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Seals `plain` for `context` (what it belongs to: a value sealed for one connection
    /// does not open as another's).
    pub fn seal(&self, plain: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = XChaCha20Poly1305::new((&self.0).into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .expect("sealing in memory does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, Unsealable> {
        if sealed.len() < NONCE {
            return Err(Unsealable);
        }
        let (nonce, body) = sealed.split_at(NONCE);
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_what_it_sealed_for_the_same_context() {
        let key = SecretKey::random();
        let sealed = key.seal(b"kb4-token", "sync-key:1");
        assert!(!sealed.windows(9).any(|w| w == b"kb4-token"));
        assert_eq!(key.open(&sealed, "sync-key:1").unwrap(), b"kb4-token");
        assert!(key.open(&sealed, "sync-key:2").is_err());
        assert!(SecretKey::random().open(&sealed, "sync-key:1").is_err());
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(key.open(&changed, "sync-key:1").is_err());
        assert!(key.open(&sealed[..10], "sync-key:1").is_err());
    }

    #[test]
    fn the_key_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/secret.key");
        let made = SecretKey::load_or_create(&path).unwrap();
        let read = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(made.0, read.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        let error = SecretKey::load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("does not hold a secret key"), "{error}");
    }
}
