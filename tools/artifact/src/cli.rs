//! Command-line arguments as parsed by clap (raw); each subcommand module validates its own.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rustupdate-artifact",
    version,
    about = "Build, sign, inspect and verify rustupdate artifacts (.rua), and make delta patches"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make an ed25519 key pair: PREFIX.key.pem (PKCS#8, mode 0600) and PREFIX.pub.pem; with
    /// --recipient an X25519 key pair to encrypt artifacts to.
    Keygen(KeygenArgs),
    /// Build an artifact from a filesystem image; signs it when keys are given.
    Build(BuildArgs),
    /// Add a signature to an existing artifact without rebuilding it.
    Sign(SignArgs),
    /// Show the header, manifest and signatures (nothing is verified).
    Inspect(InspectArgs),
    /// Check signatures against trusted keys, every chunk and the whole-image hash.
    Verify(VerifyArgs),
    /// Make a delta patch: rebuilds TARGET on devices whose active slot holds the BASE image.
    Delta(DeltaArgs),
    /// Create, edit, sign and inspect trust documents (release keys signed by offline root keys).
    Trust(TrustArgs),
}

#[derive(Debug, Args)]
pub struct DeltaArgs {
    /// The image the devices run now: an image file, or the artifact (.rua) it came from.
    #[arg(
        long,
        required_unless_present = "base_index",
        conflicts_with = "base_index"
    )]
    pub base: Option<PathBuf>,
    /// Instead of --base: the block index a device made of its slot (`rustupdate index`), for a
    /// device whose image is not known here (any base).
    #[arg(long)]
    pub base_index: Option<PathBuf>,
    /// The new artifact (format version 2) the patch rebuilds.
    #[arg(long)]
    pub target: PathBuf,
    /// zstd level of the patch (1-22).
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: i32,
    /// Trusted public key: check the target's signatures first (optional; devices check anyway).
    #[arg(long = "key")]
    pub keys: Vec<PathBuf>,
    /// X25519 secret key of a recipient of an encrypted target (and base): the patch is made
    /// from the opened target and sealed under its content key (docs/encryption.md).
    #[arg(long)]
    pub decryption_key: Option<PathBuf>,
    /// Output patch file (conventionally TARGET.from-BASEVERSION.rudelta).
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path prefix of the key files.
    #[arg(short, long)]
    pub output: PathBuf,
    /// An X25519 recipient key pair (docs/encryption.md): the public half for `build
    /// --encrypt-to`, the secret half for a device's `keys.decryption-key`.
    #[arg(long)]
    pub recipient: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Filesystem image to pack (e.g. an ext4 rootfs image).
    #[arg(long)]
    pub image: PathBuf,
    /// Artifact name (e.g. the image name).
    #[arg(long)]
    pub name: String,
    /// Artifact version.
    #[arg(long)]
    pub version: String,
    /// Compatible device type; repeat for several.
    #[arg(long = "device-type", required = true)]
    pub device_types: Vec<String>,
    /// Anti-downgrade counter: devices refuse artifacts below their committed security version.
    #[arg(long)]
    pub security_version: Option<u64>,
    /// A trust document (docs/trust.md) devices accept when they commit this release, e.g. one
    /// that revokes a leaked release key; checked to parse, embedded in the signed manifest.
    #[arg(long)]
    pub trust_document: Option<std::path::PathBuf>,
    /// Encrypt the artifact to this X25519 recipient public key (PEM, `keygen --recipient` or
    /// `openssl genpkey -algorithm x25519`); repeat for several recipients (docs/encryption.md).
    #[arg(long = "encrypt-to")]
    pub encrypt_to: Vec<PathBuf>,
    /// Artifact format version: 2 compresses each segment (up to 32 MiB) as one zstd frame, 1
    /// compresses every chunk on its own (readable by clients before format version 2).
    #[arg(long, default_value_t = rustupdate_format::header::FORMAT_VERSION,
          value_parser = clap::value_parser!(u16).range(1..=2))]
    pub format_version: u16,
    /// Compression (gzip only with --format-version 1).
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "gzip", "none"])]
    pub compression: String,
    /// Compression level (zstd 1-22, default 3; gzip 0-9, default 6).
    #[arg(long)]
    pub level: Option<i32>,
    /// Chunking: fixed:SIZE or fastcdc:MIN:AVG:MAX (bytes).
    #[arg(long, default_value = "fixed:4096")]
    pub chunking: String,
    /// Creation time in seconds since the epoch (default: $SOURCE_DATE_EPOCH, else now).
    #[arg(long)]
    pub created: Option<u64>,
    /// Secret key to sign with (PKCS#8 PEM); repeat for several. Without keys the artifact is unsigned.
    #[arg(long = "key")]
    pub keys: Vec<PathBuf>,
    /// Compression threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output file.
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Artifact to sign.
    pub artifact: PathBuf,
    /// Write the signed artifact here instead of replacing the input.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Secret key (PKCS#8 PEM).
    #[arg(long, conflicts_with_all = ["signer_cmd", "public_key"], required_unless_present = "signer_cmd")]
    pub key: Option<PathBuf>,
    /// External signer: a shell command that reads the message on stdin and prints the raw 64-byte
    /// ed25519 signature (or 128 hex digits) on stdout, e.g. an HSM tool or
    /// `openssl pkeyutl -sign -rawin -inkey key.pem`.
    #[arg(long, requires = "public_key")]
    pub signer_cmd: Option<String>,
    /// Public key of the external signer (SubjectPublicKeyInfo PEM): names the signature and checks it.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    pub artifact: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    pub artifact: PathBuf,
    /// Trusted public key (PEM); repeat for several.
    #[arg(long = "key")]
    pub keys: Vec<PathBuf>,
    /// Directory whose *.pem files are trusted public keys.
    #[arg(long)]
    pub keys_dir: Option<PathBuf>,
    /// Distinct trusted keys that must have signed.
    #[arg(long, default_value_t = 1)]
    pub threshold: usize,
    /// X25519 secret key of a recipient, to open an encrypted artifact (PKCS#8 PEM).
    #[arg(long)]
    pub decryption_key: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(subcommand)]
    pub command: TrustCommand,
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Make the first document (version 1, unsigned).
    Init(TrustInitArgs),
    /// Add root or release keys; raises the version and drops the signatures.
    AddKey(TrustKeysArgs),
    /// Remove root or release keys; raises the version and drops the signatures.
    RemoveKey(TrustKeysArgs),
    /// Remove keys from every role and list them as revoked; raises the version, drops signatures.
    Revoke(TrustRevokeArgs),
    /// Change thresholds; raises the version and drops the signatures.
    SetThreshold(TrustThresholdArgs),
    /// Add root signatures (own key or external signer), each checked before it is added.
    Sign(TrustSignArgs),
    /// Show the document, check its signatures, and whether a device would accept it.
    Inspect(TrustInspectArgs),
}

#[derive(Debug, Args)]
pub struct TrustInitArgs {
    /// Output file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Root public key (PEM): signs the next document; repeat for several.
    #[arg(long = "root-key", required = true)]
    pub root_keys: Vec<PathBuf>,
    /// Root signatures a new document needs.
    #[arg(long, default_value_t = 1)]
    pub root_threshold: usize,
    /// Release public key (PEM): signs artifacts; repeat for several.
    #[arg(long = "release-key", required = true)]
    pub release_keys: Vec<PathBuf>,
    /// Release signatures an artifact needs.
    #[arg(long, default_value_t = 1)]
    pub release_threshold: usize,
}

/// The document an editing command changes in place.
#[derive(Debug, Args)]
pub struct TrustEditTarget {
    /// Trust document (edited in place).
    pub file: PathBuf,
    /// Version of the edited document (must be higher; default: one higher).
    #[arg(long)]
    pub version: Option<u64>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("keys").required(true).multiple(true))]
pub struct TrustKeysArgs {
    #[command(flatten)]
    pub target: TrustEditTarget,
    /// Root public key (PEM); repeat for several.
    #[arg(long = "root-key", group = "keys")]
    pub root_keys: Vec<PathBuf>,
    /// Release public key (PEM); repeat for several.
    #[arg(long = "release-key", group = "keys")]
    pub release_keys: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("revoked").required(true).multiple(true))]
pub struct TrustRevokeArgs {
    #[command(flatten)]
    pub target: TrustEditTarget,
    /// Public key (PEM) to revoke; repeat for several.
    #[arg(long = "key", group = "revoked")]
    pub keys: Vec<PathBuf>,
    /// Key id (16 hex digits) to revoke; repeat for several.
    #[arg(long = "key-id", group = "revoked")]
    pub key_ids: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("thresholds").required(true).multiple(true))]
pub struct TrustThresholdArgs {
    #[command(flatten)]
    pub target: TrustEditTarget,
    /// Root signatures a new document needs.
    #[arg(long, group = "thresholds")]
    pub root: Option<usize>,
    /// Release signatures an artifact needs.
    #[arg(long, group = "thresholds")]
    pub release: Option<usize>,
}

#[derive(Debug, Args)]
pub struct TrustSignArgs {
    /// Trust document (signed in place).
    pub file: PathBuf,
    /// Root secret key (PKCS#8 PEM); repeat for several.
    #[arg(long = "key", conflicts_with_all = ["signer_cmd", "public_key"], required_unless_present = "signer_cmd")]
    pub keys: Vec<PathBuf>,
    /// External signer, as for `sign`: reads the message on stdin, prints the signature.
    #[arg(long, requires = "public_key")]
    pub signer_cmd: Option<String>,
    /// Public key of the external signer (PEM).
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// The document this one replaces: its root keys may sign too (a root rotation needs them).
    #[arg(long)]
    pub previous: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TrustInspectArgs {
    /// Trust document.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The document a device holds now: would it accept FILE after it?
    #[arg(long)]
    pub previous: Option<PathBuf>,
    /// An image's root public key (PEM), the anchor FILE is checked against as an image's
    /// document; repeat for several (default: FILE's own root keys).
    #[arg(long = "root-anchor")]
    pub root_anchor: Vec<PathBuf>,
    /// Root signatures the anchor needs [default: 1].
    #[arg(long, requires = "root_anchor")]
    pub anchor_threshold: Option<usize>,
}
