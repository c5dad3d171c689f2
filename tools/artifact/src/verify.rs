//! `verify`: the same checks a device makes, without writing anything.

use crate::{EXIT_OK, EXIT_REJECTED, cli::VerifyArgs, files, progress};
use anyhow::{Context, Result, bail};
use rustupdate_verify::{SignaturePolicy, VerifiedArtifact};
use serde_json::json;
use std::io::BufReader;

pub fn run(args: &VerifyArgs) -> Result<u8> {
    let ring = files::keyring(&args.keys, args.keys_dir.as_deref())?;
    if ring.is_empty() {
        bail!("no trusted keys: give --key PUB.pem or --keys-dir DIR");
    }
    let policy = SignaturePolicy::threshold(args.threshold)?;
    let decryption_key = args
        .decryption_key
        .as_deref()
        .map(files::read_decryption_key)
        .transpose()?;
    let file = std::fs::File::open(&args.artifact)
        .with_context(|| format!("opening {}", args.artifact.display()))?;
    let result = check(
        BufReader::with_capacity(1 << 20, file),
        &ring,
        &policy,
        decryption_key.as_ref(),
    );
    let (ok, detail) = match &result {
        Ok(summary) => (true, summary.clone()),
        Err(err) => (false, err.to_string()),
    };
    if args.json {
        println!(
            "{}",
            json!({ "artifact": args.artifact, "ok": ok, "detail": detail })
        );
    } else if ok {
        println!("{}: OK: {detail}", args.artifact.display());
    } else {
        println!("{}: REJECTED: {detail}", args.artifact.display());
    }
    Ok(if ok { EXIT_OK } else { EXIT_REJECTED })
}

fn check<R: std::io::Read>(
    reader: R,
    ring: &rustupdate_verify::Keyring,
    policy: &SignaturePolicy,
    decryption_key: Option<&rustupdate_seal::RecipientSecretKey>,
) -> Result<String, rustupdate_verify::Error> {
    let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let mut artifact =
        VerifiedArtifact::open(reader, ring, policy)?.with_parallel_image_hash(parallel);
    if artifact.head().is_encrypted() && decryption_key.is_none() {
        // Without a recipient key: the signatures and every sealed byte's signed digest.
        let name = format!(
            "{} {}",
            artifact.manifest().name,
            artifact.manifest().version
        );
        let signers = signer_list(&artifact);
        let bytes = rustupdate_verify::check_sealed_body(artifact)?;
        return Ok(format!(
            "{name}, encrypted: {bytes} sealed body bytes match their signed digests (contents \
             not opened: no --decryption-key), signed by {signers}"
        ));
    }
    artifact.unlock(decryption_key)?;
    let signers = signer_list(&artifact);
    let (name, version) = (
        artifact.manifest().name.clone(),
        artifact.manifest().version.clone(),
    );
    let mut total = 0u64;
    while let Some(mut payload) = artifact.next_payload()? {
        let bar = progress::bar(payload.payload().size, "verifying");
        while let Some(chunk) = payload.next_chunk()? {
            total += chunk.data.len();
            bar.set_position(total);
        }
        bar.finish_and_clear();
    }
    artifact.finish()?;
    Ok(format!(
        "{name} {version}, {total} image bytes verified, signed by {signers}"
    ))
}

fn signer_list<R: std::io::Read>(artifact: &VerifiedArtifact<R>) -> String {
    artifact
        .signers()
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
