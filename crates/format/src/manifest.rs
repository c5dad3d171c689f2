//! The manifest: TOML, signed as raw bytes (so no canonical form is needed), kebab-case keys,
//! unknown keys rejected. See `docs/artifact-format.md` for every field.

use crate::encryption::{self, Encryption};
use crate::{Chunking, Compression, Error, TableLayout, limits};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u16,
    pub name: String,
    pub version: String,
    /// Device types this artifact may be installed on.
    pub compatible: Vec<String>,
    /// Monotonic anti-downgrade counter; a device refuses versions below its committed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_version: Option<u64>,
    /// Creation time, seconds since the Unix epoch (SOURCE_DATE_EPOCH when reproducible).
    pub created: u64,
    /// A trust document (docs/trust.md, JSON) the device accepts when it commits this release.
    /// Older clients refuse manifests with this key (unknown keys are rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_document: Option<String>,
    /// Present when the body is sealed to recipients (docs/encryption.md). Older clients refuse
    /// manifests with this key (unknown keys are rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    #[serde(rename = "payload")]
    pub payloads: Vec<Payload>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadType {
    /// A complete root filesystem image written to the inactive rootfs slot.
    RootfsImage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Payload {
    pub name: String,
    #[serde(rename = "type")]
    pub payload_type: PayloadType,
    /// Slot class the payload goes to (`rootfs` for rootfs images).
    pub target: String,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// sha256 of the whole uncompressed image.
    pub sha256: Sha256Hex,
    /// Version 1: codec of chunks that compress (individual chunks may be stored raw). Version 2:
    /// codec of every segment's frame (`zstd` or `none`).
    pub compression: Compression,
    /// How the image was cut; a device uses it to cut its own slot the same way for deltas.
    pub chunking: Chunking,
    #[serde(rename = "segment")]
    pub segments: Vec<Segment>,
}

/// A run of chunk table entries and the data they describe, stored contiguously in the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Segment {
    pub entries: u32,
    /// sha256 of the segment's table bytes (`entries` x the layout's entry length).
    pub table_sha256: Sha256Hex,
    /// Total stored bytes of the segment's data: its chunks (version 1) or its frame (version 2).
    pub data_size: u64,
    /// Encrypted artifacts: sha256 of the stored (sealed) frame, so that signatures cover the
    /// ciphertext. Absent for a segment without a frame and in clear artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<Sha256Hex>,
}

impl Segment {
    /// Length of the segment's table in clear (`entries` x the layout's entry length).
    pub fn table_len(&self, layout: TableLayout) -> u64 {
        u64::from(self.entries) * layout.entry_len() as u64
    }

    /// Length of the table as stored: sealed tables carry a tag.
    pub fn stored_table_len(&self, layout: TableLayout, sealed: bool) -> u64 {
        self.table_len(layout) + if sealed { encryption::SEAL_TAG_LEN } else { 0 }
    }
}

/// A sha256 digest, written as 64 lowercase hex digits in the manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Hex(pub [u8; 32]);

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

impl Serialize for Sha256Hex {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom(
                "a sha256 must be 64 lowercase hex digits",
            ));
        }
        hex::decode_to_slice(&text, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(Sha256Hex(bytes))
    }
}

impl Manifest {
    /// Parses and validates a manifest. The caller has already bounded `bytes` by
    /// [`limits::MAX_MANIFEST_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest, Error> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| Error::Manifest("not valid UTF-8".into()))?;
        let manifest: Manifest =
            toml::from_str(text).map_err(|err| Error::Manifest(err.message().to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let text = toml::to_string(self).map_err(|err| Error::Manifest(err.to_string()))?;
        if text.len() > limits::MAX_MANIFEST_LEN {
            return Err(Error::Manifest(format!(
                "manifest of {} bytes exceeds the {} limit",
                text.len(),
                limits::bytes_text(limits::MAX_MANIFEST_LEN as u64)
            )));
        }
        Ok(text.into_bytes())
    }

    /// Checks every rule that does not need the body: lengths, counts, and that the segments
    /// can describe exactly `size` bytes.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Manifest(msg));
        let Some(layout) = TableLayout::for_version(self.format_version) else {
            return bad(format!(
                "format version {} is not supported",
                self.format_version
            ));
        };
        check_short("name", &self.name)?;
        check_short("version", &self.version)?;
        if self.compatible.is_empty() || self.compatible.len() > limits::MAX_COMPATIBLE {
            return bad(format!(
                "compatible must list 1 to {} device types",
                limits::MAX_COMPATIBLE
            ));
        }
        for device_type in &self.compatible {
            check_short("compatible device type", device_type)?;
        }
        if self.payloads.is_empty() || self.payloads.len() > limits::MAX_PAYLOADS {
            return bad(format!(
                "an artifact carries 1 to {} payloads",
                limits::MAX_PAYLOADS
            ));
        }
        for (index, payload) in self.payloads.iter().enumerate() {
            check_short("payload name", &payload.name)?;
            check_short("payload target", &payload.target)?;
            if self.payloads[..index]
                .iter()
                .any(|p| p.name == payload.name)
            {
                return bad(format!("payload name {:?} appears twice", payload.name));
            }
            payload.validate(layout, self.encryption.is_some())?;
        }
        if let Some(encryption) = &self.encryption {
            if layout != TableLayout::Framed {
                return bad("encryption needs format version 2".into());
            }
            encryption.validate()?;
        }
        Ok(())
    }
}

impl Payload {
    fn validate(&self, layout: TableLayout, sealed: bool) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Manifest(format!("payload {:?}: {msg}", self.name)));
        if self.size == 0 || self.size > limits::MAX_PAYLOAD_SIZE {
            return bad(format!(
                "size {} must be between 1 byte and {}",
                self.size,
                limits::bytes_text(limits::MAX_PAYLOAD_SIZE)
            ));
        }
        self.chunking.validate()?;
        if layout == TableLayout::Framed && self.compression == Compression::Gzip {
            return bad("version 2 frames are zstd or none; gzip is a version 1 codec".into());
        }
        let max_entries = layout.max_segment_entries();
        // Every entry covers at least one byte, so a payload cannot have more entries than bytes.
        let mut entries: u64 = 0;
        for (index, segment) in self.segments.iter().enumerate() {
            if segment.entries == 0 || segment.entries > max_entries {
                return bad(format!(
                    "segment {index} has {} entries (1 to {max_entries} allowed)",
                    segment.entries,
                ));
            }
            let data = if sealed {
                encryption::opened_len(segment.data_size).ok_or_else(|| {
                    Error::Manifest(format!(
                        "payload {:?}: segment {index}: {} bytes is no sealed frame's length",
                        self.name, segment.data_size
                    ))
                })?
            } else {
                segment.data_size
            };
            if data > u64::from(segment.entries) * u64::from(limits::MAX_CHUNK_SIZE) {
                return bad(format!(
                    "segment {index} claims more data than its entries can hold"
                ));
            }
            if segment.data_sha256.is_some() != (sealed && segment.data_size > 0) {
                return bad(format!(
                    "segment {index}: data-sha256 belongs to (and only to) every sealed frame"
                ));
            }
            entries += u64::from(segment.entries);
        }
        if self.segments.is_empty() || entries > self.size {
            return bad("segments do not fit the payload size".into());
        }
        Ok(())
    }
}

fn check_short(what: &str, value: &str) -> Result<(), Error> {
    if value.is_empty()
        || value.len() > limits::MAX_SHORT_STRING
        || value.chars().any(char::is_control)
    {
        return Err(Error::Manifest(format!(
            "{what} {value:?} must be 1 to {} printable characters",
            limits::MAX_SHORT_STRING
        )));
    }
    Ok(())
}
