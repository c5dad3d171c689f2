//! Secrets: the admin token (management API, dashboard), the gateway token (any device of the
//! tenant, registering on first contact) and per-device target tokens. Target tokens are stored
//! only as sha256; the admin and gateway tokens live in files (0600) in the data directory.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// 32 random bytes, hex: 256 bits.
pub fn generate() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow::anyhow!("reading the system's random source: {e}"))?;
    Ok(hex::encode(bytes))
}

/// How a target token is stored.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison (a timing difference must not reveal how much of a guess matched).
pub fn equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads the token at `path`, creating it (0600, random) if it does not exist.
pub fn load_or_create(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            anyhow::ensure!(
                token.len() >= 16,
                "token file {} holds fewer than 16 characters",
                path.display()
            );
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = generate()?;
            write_secret(path, &token)?;
            tracing::info!(event = %"token-created", path = %path.display());
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("reading token file {}", path.display())),
    }
}

fn write_secret(path: &Path, token: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating token file {}", path.display()))?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    Ok(())
}

/// What an `Authorization` header claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    Target(&'a str),
    Gateway(&'a str),
    Bearer(&'a str),
}

/// Parses `TargetToken x`, `GatewayToken x` or `Bearer x` (scheme case-insensitive).
pub fn parse_authorization(header: &str) -> Option<Credential<'_>> {
    let (scheme, value) = header.trim().split_once(' ')?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match scheme.to_ascii_lowercase().as_str() {
        "targettoken" => Some(Credential::Target(value)),
        "gatewaytoken" => Some(Credential::Gateway(value)),
        "bearer" => Some(Credential::Bearer(value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes() {
        assert_eq!(
            parse_authorization("TargetToken abc"),
            Some(Credential::Target("abc"))
        );
        assert_eq!(
            parse_authorization("gatewaytoken  x "),
            Some(Credential::Gateway("x"))
        );
        assert_eq!(
            parse_authorization("Bearer t"),
            Some(Credential::Bearer("t"))
        );
        assert_eq!(parse_authorization("Basic dXNlcg=="), None);
        assert_eq!(parse_authorization("TargetToken "), None);
    }

    #[test]
    fn compares_tokens() {
        assert!(equal("abc", "abc"));
        assert!(!equal("abc", "abd"));
        assert!(!equal("abc", "abcd"));
    }

    #[test]
    fn creates_a_private_token_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create(&path).unwrap(), first);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
