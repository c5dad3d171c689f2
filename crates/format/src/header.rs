//! The fixed 24-byte header at offset 0.
//!
//! ```text
//! 0  [8]  magic  89 52 55 41 0d 0a 1a 0a  ("\x89RUA\r\n\x1a\n")
//! 8  u16  format version (1 or 2)
//! 10 u16  flags (0; any other value is rejected)
//! 12 u32  manifest length in bytes (1 ..= MAX_MANIFEST_LEN)
//! 16 u16  number of signatures (0 ..= MAX_SIGNATURES)
//! 18 [6]  reserved, zero
//! ```
//! All integers little-endian. The header is not signed; every field in it either only frames
//! signed data or is repeated inside the signed manifest.

use crate::{Error, limits};

pub const MAGIC: [u8; 8] = *b"\x89RUA\r\n\x1a\n";
/// The format version builders write.
pub const FORMAT_VERSION: u16 = 2;
/// Every format version this crate reads.
pub const SUPPORTED_VERSIONS: [u16; 2] = [1, 2];
pub const HEADER_LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format_version: u16,
    pub manifest_len: u32,
    pub signature_count: u16,
}

impl Header {
    pub fn new(
        format_version: u16,
        manifest_len: usize,
        signature_count: usize,
    ) -> Result<Header, Error> {
        if !SUPPORTED_VERSIONS.contains(&format_version) {
            return Err(Error::UnsupportedVersion {
                found: format_version,
                supported: FORMAT_VERSION,
            });
        }
        let header = Header {
            format_version,
            manifest_len: u32::try_from(manifest_len).unwrap_or(u32::MAX),
            signature_count: u16::try_from(signature_count).unwrap_or(u16::MAX),
        };
        header.check()?;
        Ok(header)
    }

    pub fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Result<Header, Error> {
        if bytes[0..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        let format_version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if !SUPPORTED_VERSIONS.contains(&format_version) {
            return Err(Error::UnsupportedVersion {
                found: format_version,
                supported: FORMAT_VERSION,
            });
        }
        let flags = u16::from_le_bytes([bytes[10], bytes[11]]);
        if flags != 0 {
            return Err(Error::BadHeaderField {
                field: "flags",
                value: flags.into(),
                reason: format!("no flags are defined in version {format_version}"),
            });
        }
        if let Some(at) = bytes[18..24].iter().position(|b| *b != 0) {
            return Err(Error::BadHeaderField {
                field: "reserved",
                value: bytes[18 + at].into(),
                reason: format!("byte {} must be zero", 18 + at),
            });
        }
        let header = Header {
            format_version,
            manifest_len: u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
            signature_count: u16::from_le_bytes([bytes[16], bytes[17]]),
        };
        header.check()?;
        Ok(header)
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.format_version.to_le_bytes());
        out[12..16].copy_from_slice(&self.manifest_len.to_le_bytes());
        out[16..18].copy_from_slice(&self.signature_count.to_le_bytes());
        out
    }

    fn check(&self) -> Result<(), Error> {
        if self.manifest_len == 0 || self.manifest_len as usize > limits::MAX_MANIFEST_LEN {
            return Err(Error::BadHeaderField {
                field: "manifest length",
                value: self.manifest_len.into(),
                reason: format!(
                    "must be between 1 byte and {}",
                    limits::bytes_text(limits::MAX_MANIFEST_LEN as u64)
                ),
            });
        }
        if self.signature_count as usize > limits::MAX_SIGNATURES {
            return Err(Error::BadHeaderField {
                field: "signature count",
                value: self.signature_count.into(),
                reason: format!("at most {} signatures are allowed", limits::MAX_SIGNATURES),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let header = Header::new(FORMAT_VERSION, 1234, 2).unwrap();
        assert_eq!(Header::from_bytes(&header.to_bytes()).unwrap(), header);
    }

    #[test]
    fn rejects_bad_fields() {
        let good = Header::new(FORMAT_VERSION, 10, 1).unwrap().to_bytes();
        let mut bytes = good;
        bytes[0] ^= 1;
        assert!(matches!(Header::from_bytes(&bytes), Err(Error::BadMagic)));
        let mut bytes = good;
        bytes[8] = 3;
        assert!(matches!(
            Header::from_bytes(&bytes),
            Err(Error::UnsupportedVersion { found: 3, .. })
        ));
        let mut bytes = good;
        bytes[8] = 1;
        assert_eq!(Header::from_bytes(&bytes).unwrap().format_version, 1);
        let mut bytes = good;
        bytes[10] = 1;
        assert!(matches!(
            Header::from_bytes(&bytes),
            Err(Error::BadHeaderField { field: "flags", .. })
        ));
        let mut bytes = good;
        bytes[20] = 0xab;
        let err = Header::from_bytes(&bytes).unwrap_err();
        assert!(
            err.to_string()
                .contains("reserved is 171, which is not allowed: byte 20 must be zero"),
            "{err}"
        );
        let mut bytes = good;
        bytes[12..16].copy_from_slice(&(2u32 << 20).to_le_bytes());
        let err = Header::from_bytes(&bytes).unwrap_err();
        assert!(err.to_string().contains("1 MiB"), "{err}");
        let mut bytes = good;
        bytes[12..16].copy_from_slice(&0u32.to_le_bytes());
        assert!(Header::from_bytes(&bytes).is_err());
        let mut bytes = good;
        bytes[16] = 17;
        assert!(Header::from_bytes(&bytes).is_err());
        let mut bytes = good;
        bytes[23] = 1;
        assert!(Header::from_bytes(&bytes).is_err());
    }
}
