//! `keygen`: a new ed25519 signing key pair, or an X25519 recipient key pair, as PEM files.

use crate::{EXIT_OK, cli::KeygenArgs};
use anyhow::{Context, Result, bail};
use rustupdate_verify::SecretKey;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

pub fn run(args: &KeygenArgs) -> Result<u8> {
    let secret_path = with_suffix(&args.output, ".key.pem");
    let public_path = with_suffix(&args.output, ".pub.pem");
    for path in [&secret_path, &public_path] {
        if path.exists() {
            bail!(
                "{} already exists; refusing to overwrite a key",
                path.display()
            );
        }
    }
    let (secret_pem, public_pem, id) = if args.recipient {
        let secret = rustupdate_seal::RecipientSecretKey::generate();
        let public = secret.public();
        let id = rustupdate_seal::key_id_text(&public.key_id());
        (secret.to_pem().to_string(), public.to_pem(), id)
    } else {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|err| {
            anyhow::anyhow!("reading randomness from the operating system: {err}")
        })?;
        let secret = SecretKey::from_seed(&seed);
        let public = secret.public_key();
        (
            secret.to_pem()?.to_string(),
            public.to_pem()?,
            public.id().to_string(),
        )
    };
    // create_new + 0600: the secret never exists with wider permissions, not even briefly.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .with_context(|| format!("creating {}", secret_path.display()))?;
    file.write_all(secret_pem.as_bytes())?;
    file.sync_all()?;
    std::fs::write(&public_path, public_pem)
        .with_context(|| format!("writing {}", public_path.display()))?;
    println!(
        "{} key id {id}",
        if args.recipient {
            "recipient"
        } else {
            "signing"
        }
    );
    println!("secret key: {}", secret_path.display());
    println!("public key: {}", public_path.display());
    Ok(EXIT_OK)
}

fn with_suffix(prefix: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
