//! Operator passwords: Argon2id (the `argon2` crate's defaults, OWASP's recommended 19 MiB,
//! 2 passes) in the PHC string format, which carries its own salt and parameters, so stronger
//! parameters later still verify old hashes.

use anyhow::{Result, anyhow};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password accepted (NIST SP 800-63B asks at least 8; an operator account steers the
/// whole fleet).
pub const MIN_LEN: usize = 12;
/// Longest, so that hashing an attacker's megabyte costs nothing extra.
pub const MAX_LEN: usize = 1024;

/// Why a new password is refused, or nothing.
pub fn check(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(format!("a password has at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        return Err(format!("a password has at most {MAX_LEN} bytes"));
    }
    Ok(())
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)
        .map_err(|e| anyhow!("reading the system's random source: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("encoding a salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("hashing a password: {e}"))?
        .to_string())
}

/// Whether `password` matches the stored `phc` string. A malformed stored hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one verification, for a login with an unknown name: the answer's timing
/// must not tell which names exist.
pub fn verify_nobody(password: &str) {
    // A valid hash of a random string nobody knows, made once per process.
    static NOBODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = NOBODY.get_or_init(|| hash("no user has this password: ¬∃").unwrap_or_default());
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_right_password() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterz", &phc));
        assert!(!verify("correct horse battery", "not a hash"));
        // Salted: the same password hashes differently each time.
        assert_ne!(phc, hash("correct horse battery").unwrap());
    }

    #[test]
    fn refuses_short_and_huge_passwords() {
        assert!(check("short").is_err());
        assert!(check("twelve chars").is_ok());
        assert!(check(&"x".repeat(MAX_LEN + 1)).is_err());
        assert!(!verify(&"x".repeat(MAX_LEN + 1), "$argon2id$whatever"));
    }
}
