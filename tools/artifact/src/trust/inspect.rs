//! `trust inspect`: the document for people (or `--json`), each signature checked, and whether a
//! device would accept it: as an image's document (against `--root-anchor`, or its own root keys)
//! and, with `--previous`, after the document the device holds now. The decisions are
//! `rustupdate_trust::Trusted`'s; this only reports them.

use super::files::{id_list, read_public_keys};
use crate::cli::TrustInspectArgs;
use crate::{EXIT_OK, EXIT_REJECTED};
use anyhow::{Context, Result};
use rustupdate_trust::{Document, Role, Trusted};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `--json` prints; the text output shows the same fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Report {
    file: PathBuf,
    version: u64,
    root: RoleReport,
    release: RoleReport,
    revoked: Vec<String>,
    signatures: Vec<SignatureReport>,
    /// As an image's document, against the anchor.
    image: Verdict,
    /// After `--previous`, when given.
    previous: Option<Verdict>,
    /// Exit status 0: every verdict that counts is an acceptance.
    ok: bool,
}

#[derive(Debug, Serialize)]
struct RoleReport {
    threshold: usize,
    /// Key ids.
    keys: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct SignatureReport {
    key_id: String,
    roles: Vec<&'static str>,
    /// `null`: the key is in neither document, so the signature cannot be checked.
    verifies: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Verdict {
    /// `own root keys`, `given root keys` (`--root-anchor`), or the `--previous` file.
    against: String,
    accepted: bool,
    reason: Option<String>,
}

impl Verdict {
    fn of(against: String, result: Result<Trusted, String>) -> Verdict {
        let reason = result.err();
        Verdict {
            against,
            accepted: reason.is_none(),
            reason,
        }
    }
}

pub fn run(args: &TrustInspectArgs) -> Result<u8> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let document = match Document::parse(&bytes) {
        Ok(document) => document,
        Err(err) => {
            eprintln!("rustupdate-artifact: {}: {err}", args.file.display());
            return Ok(EXIT_REJECTED);
        }
    };
    let previous = match &args.previous {
        Some(path) => Some((path, previous_document(path)?)),
        None => None,
    };
    let anchor_given = !args.root_anchor.is_empty();
    let anchor = if anchor_given {
        Role::of(
            args.anchor_threshold.unwrap_or(1),
            &read_public_keys(&args.root_anchor)?,
        )
    } else {
        document.signed.root.clone()
    };
    let image = Verdict::of(
        if anchor_given {
            "given root keys"
        } else {
            "own root keys"
        }
        .to_string(),
        Trusted::from_image(&anchor, document.clone()).map_err(|e| e.to_string()),
    );
    let after = previous.as_ref().map(|(path, old)| {
        let result = Trusted::kept(old.clone())
            .map_err(|e| format!("{} is not trusted itself: {e}", path.display()))
            .and_then(|old| old.accept(document.clone()).map_err(|e| e.to_string()));
        Verdict::of(path.display().to_string(), result)
    });
    let ok = (image.accepted || !anchor_given) && after.as_ref().is_none_or(|v| v.accepted);
    let report = Report {
        file: args.file.clone(),
        version: document.signed.version,
        root: role_report(&document.signed.root, "root")?,
        release: role_report(&document.signed.release, "release")?,
        revoked: document.signed.revoked.clone(),
        signatures: document
            .signature_checks(previous.as_ref().map(|(_, old)| &old.signed))
            .into_iter()
            .map(|c| SignatureReport {
                key_id: c.key_id,
                roles: c.roles,
                verifies: c.verifies,
            })
            .collect(),
        image,
        previous: after,
        ok,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    for verdict in [
        Some(&report.image).filter(|_| anchor_given),
        report.previous.as_ref(),
    ] {
        if let Some(Verdict {
            reason: Some(reason),
            ..
        }) = verdict
        {
            eprintln!(
                "rustupdate-artifact: {}: not accepted: {reason}",
                args.file.display()
            );
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_REJECTED })
}

fn previous_document(path: &Path) -> Result<Document> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Document::parse(&bytes).with_context(|| format!("--previous {}", path.display()))
}

fn role_report(role: &Role, name: &'static str) -> Result<RoleReport> {
    Ok(RoleReport {
        threshold: role.threshold,
        keys: role
            .public_keys(name)?
            .iter()
            .map(|k| k.id().to_string())
            .collect(),
    })
}

fn print_text(report: &Report) {
    let role =
        |r: &RoleReport| format!("{} of {}: {}", r.threshold, r.keys.len(), id_list(&r.keys));
    println!("trust document:   {}", report.file.display());
    println!("version:          {}", report.version);
    println!("root:             {}", role(&report.root));
    println!("release:          {}", role(&report.release));
    println!("revoked:          {}", id_list(&report.revoked));
    if report.signatures.is_empty() {
        println!("signatures:       none (UNSIGNED)");
    }
    for s in &report.signatures {
        let roles = if s.roles.is_empty() {
            "unknown key".to_string()
        } else {
            s.roles.join(", ")
        };
        let verifies = match s.verifies {
            Some(true) => "verifies",
            Some(false) => "DOES NOT VERIFY",
            None => "not checked",
        };
        println!("signature:        {} ({roles}): {verifies}", s.key_id);
    }
    let verdict = |v: &Verdict| match &v.reason {
        None => "accepted".to_string(),
        Some(reason) => format!("NOT accepted: {reason}"),
    };
    println!(
        "image document:   {} (anchor: {})",
        verdict(&report.image),
        report.image.against
    );
    if let Some(previous) = &report.previous {
        println!(
            "after previous:   {} (a device holding {})",
            verdict(previous),
            previous.against
        );
    }
}
