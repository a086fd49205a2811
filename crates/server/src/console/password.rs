//! Console passwords: Argon2id with the crate's default cost (19 MiB, 2 passes), kept as
//! PHC strings so that the cost can rise later without breaking stored hashes.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::OnceLock;

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 12;
/// The longest (Argon2 takes any length; this keeps a request's cost bounded).
pub const MAX_LENGTH: usize = 1024;

/// Why a password cannot be used.
pub fn problem(password: &str) -> Option<String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        Some(format!("a password needs at least {MIN_LENGTH} characters"))
    } else if length > MAX_LENGTH {
        Some(format!("a password has at most {MAX_LENGTH} characters"))
    } else {
        None
    }
}

/// A random password of 20 letters and digits (about 119 bits), for a first sign-in.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The PHC string of `password` with a fresh salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?
        .to_string())
}

/// Whether `password` matches `stored`. With no stored hash (an unknown administrator,
/// or one without a password) a hash is still checked, so that the answer takes as long
/// and tells nothing.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    static DECOY: OnceLock<String> = OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash("not anyone's password").unwrap_or_default());
    let matches = |phc: &str| {
        PasswordHash::new(phc).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    };
    match stored {
        Some(phc) => matches(phc),
        None => {
            matches(decoy);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify(Some(&phc), "correct horse battery"));
        assert!(!verify(Some(&phc), "correct horse batterY"));
        assert!(!verify(None, "correct horse battery"));
        assert!(!verify(Some("not a phc string"), "x"));
        assert_ne!(hash("a").unwrap(), hash("a").unwrap(), "salted");
    }

    #[test]
    fn length_bounds() {
        assert!(problem("short").is_some());
        assert!(problem("twelve chars").is_none());
        assert!(problem(&"x".repeat(MAX_LENGTH + 1)).is_some());
        assert!(problem(&generate()).is_none());
        assert_ne!(generate(), generate());
    }
}
