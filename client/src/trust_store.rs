//! The device's trust document (docs/trust.md): the image's document, checked against the
//! image's root keys, and the newer ones the device accepted since, kept in `data-dir/trust.json`
//! (replaced atomically). The rules are `rustupdate_trust`'s; this module reads and writes files.

use crate::config::Config;
use crate::sys::replace_file;
use anyhow::{Context, Result, anyhow};
use rustupdate_trust::{Document, Role, Trusted};
use rustupdate_verify::{Keyring, SignaturePolicy};
use std::path::{Path, PathBuf};

/// File name of the accepted document in the client's data directory.
pub const TRUST_FILE: &str = "trust.json";

#[derive(Debug)]
pub struct TrustStore {
    /// The image's document.
    pub image_document: PathBuf,
    /// The image's root keys (`*.pem`) and how many must sign.
    pub root_dir: PathBuf,
    pub root_threshold: usize,
    /// The document the device accepted last.
    pub kept: PathBuf,
}

/// The release keys and threshold an artifact must satisfy on this device.
pub fn release_keys(config: &Config) -> Result<(Keyring, SignaturePolicy)> {
    match TrustStore::from_config(config) {
        Some(store) => Ok(store.current()?.release_keyring()),
        None => {
            let dir = config
                .keys
                .trusted_dir
                .as_deref()
                .ok_or_else(|| anyhow!("keys.trusted-dir is not set"))?;
            let ring = rustupdate_verify::key_files::keyring(&[], Some(dir))
                .with_context(|| format!("trusted key directory {}", dir.display()))?;
            Ok((ring, SignaturePolicy::threshold(config.keys.threshold)?))
        }
    }
}

fn read_document(path: &Path) -> Result<Document> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Document::parse(&bytes).with_context(|| format!("trust document {}", path.display()))
}

impl TrustStore {
    /// `None` when the configuration uses fixed keys (`trusted-dir`).
    pub fn from_config(config: &Config) -> Option<TrustStore> {
        let keys = &config.keys;
        Some(TrustStore {
            image_document: keys.trust_document.clone()?,
            root_dir: keys.root_dir.clone()?,
            root_threshold: keys.root_threshold,
            kept: config.data_dir.join(TRUST_FILE),
        })
    }

    fn anchor(&self) -> Result<Role> {
        let ring = rustupdate_verify::key_files::keyring(&[], Some(&self.root_dir))
            .with_context(|| format!("root key directory {}", self.root_dir.display()))?;
        Ok(Role::of(self.root_threshold, ring.keys()))
    }

    fn image_trusted(&self) -> Result<Trusted> {
        let document = read_document(&self.image_document)?;
        Trusted::from_image(&self.anchor()?, document).with_context(|| {
            format!(
                "the image's trust document {} is not signed by its root keys ({})",
                self.image_document.display(),
                self.root_dir.display()
            )
        })
    }

    /// The document in force: the kept one, unless the image carries a newer one it accepts;
    /// the image's own when nothing valid is kept. Reads only (commands without the lock call
    /// it); [`TrustStore::refresh`] keeps the answer.
    pub fn current(&self) -> Result<Trusted> {
        Ok(self.resolve()?.0)
    }

    /// [`TrustStore::current`], and keeps it in `data-dir/trust.json` when that file does not
    /// hold it yet (the first boot, an image that brought a newer document). Under the lock.
    pub fn refresh(&self) -> Result<Trusted> {
        let (trusted, changed) = self.resolve()?;
        if changed {
            self.keep(&trusted)?;
        }
        Ok(trusted)
    }

    /// The document in force and whether the kept file differs from it.
    fn resolve(&self) -> Result<(Trusted, bool)> {
        let kept = if self.kept.exists() {
            read_document(&self.kept)
                .and_then(|doc| Ok(Trusted::kept(doc)?))
                .inspect_err(|err| {
                    log::warn!("ignoring the kept trust document: {err:#}");
                })
                .ok()
        } else {
            None
        };
        let Some(kept) = kept else {
            return Ok((self.image_trusted()?, true));
        };
        let image_document = read_document(&self.image_document)?;
        if image_document.signed.version <= kept.version() {
            return Ok((kept, false));
        }
        match kept.accept(image_document) {
            Ok(newer) => {
                log::info!(
                    "the image's trust document (version {}) replaces version {}",
                    newer.version(),
                    kept.version()
                );
                Ok((newer, true))
            }
            Err(err) => {
                log::warn!("the image's newer trust document is not accepted: {err}");
                Ok((kept, false))
            }
        }
    }

    /// Accepts `bytes` as the next document (docs/trust.md) and keeps it, or says why not; the
    /// current document stays in force either way.
    pub fn update(&self, bytes: &[u8]) -> Result<Trusted> {
        let current = self.refresh()?;
        let candidate = Document::parse(bytes).context("the offered trust document")?;
        let newer = current
            .accept(candidate)
            .context("the offered trust document is not accepted")?;
        self.keep(&newer)?;
        Ok(newer)
    }

    fn keep(&self, trusted: &Trusted) -> Result<()> {
        if let Some(dir) = self.kept.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        replace_file(&self.kept, &trusted.document().to_bytes(), "trust")
            .with_context(|| format!("writing {}", self.kept.display()))
    }
}

/// File name (in the data directory) of the trust document an installed release carries, kept
/// aside until that release commits.
pub const PENDING_FILE: &str = "trust-pending.json";

/// A carried trust document waiting for its release to commit.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PendingTrust {
    /// The release (manifest version) that carries it.
    release: String,
    document: Document,
}

/// The trust document an artifact carries is one the device would refuse: the artifact is
/// rejected (a release must not install with a document its device cannot accept).
#[derive(Debug)]
pub struct CarriedTrustRefused(pub String);

impl std::fmt::Display for CarriedTrustRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the trust document the artifact carries is refused: {}",
            self.0
        )
    }
}

impl std::error::Error for CarriedTrustRefused {}

/// Before anything is written: the trust document `manifest` carries (if any) must be one the
/// device accepts, and is kept aside until the release commits; one that is not newer than the
/// current one is ignored. A device with fixed keys ignores it.
pub fn stage_carried(
    config: &Config,
    manifest: &rustupdate_format::Manifest,
) -> Result<(), CarriedTrustRefused> {
    let Some(text) = &manifest.trust_document else {
        return Ok(());
    };
    let Some(store) = TrustStore::from_config(config) else {
        log::warn!("the artifact carries a trust document; this device has fixed keys: ignored");
        return Ok(());
    };
    let refused = |err: &dyn std::fmt::Display| CarriedTrustRefused(format!("{err:#}"));
    let document = Document::parse(text.as_bytes()).map_err(|e| refused(&e))?;
    let current = store.current().map_err(|e| refused(&e))?;
    if document.signed.version <= current.version() {
        log::info!(
            "the artifact carries trust document version {}, this device has {}: nothing to do",
            document.signed.version,
            current.version()
        );
        return Ok(());
    }
    current.accept(document.clone()).map_err(|e| refused(&e))?;
    let pending = PendingTrust {
        release: manifest.version.clone(),
        document,
    };
    let bytes = serde_json::to_vec_pretty(&pending).map_err(|e| refused(&e))?;
    let path = config.data_dir.join(PENDING_FILE);
    replace_file(&path, &bytes, "trust-pending").map_err(|e| refused(&e))?;
    log::info!(
        "trust document version {} accepted for when {} commits",
        pending.document.signed.version,
        manifest.version
    );
    Ok(())
}

/// After the boot-time decision: the carried document of the committed release takes effect
/// (never during a trial that can still roll back); one of a release that did not commit and is
/// not installed either is dropped. `committed` is the committed release's version, `installed`
/// that of an install still pending (armed or on trial).
pub fn settle_carried(
    config: &Config,
    committed: Option<&str>,
    installed: Option<&str>,
) -> Result<()> {
    let path = config.data_dir.join(PENDING_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let pending: Option<PendingTrust> = serde_json::from_slice(&bytes)
        .inspect_err(|err| log::warn!("{}: {err}; dropped", path.display()))
        .ok();
    if let Some(pending) = pending {
        if installed == Some(pending.release.as_str()) {
            return Ok(()); // Its release is still on its way: keep it aside.
        }
        if committed == Some(pending.release.as_str())
            && let Some(store) = TrustStore::from_config(config)
        {
            match store.update(&pending.document.to_bytes()) {
                Ok(trusted) => log::info!(
                    "{} committed: its trust document version {} is in force",
                    pending.release,
                    trusted.version()
                ),
                // Applied before a cut, or overtaken: the document in force stays.
                Err(err) => log::warn!("the trust document of {}: {err:#}", pending.release),
            }
        }
    }
    // Durably: a cut right after would otherwise bring it back, and the next commit would
    // apply (or warn about) it again.
    crate::sys::remove_durably(&path).with_context(|| format!("removing {}", path.display()))
}
