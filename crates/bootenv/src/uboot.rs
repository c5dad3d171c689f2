//! U-Boot environments, byte-compatible with U-Boot, `mkenvimage` and libubootenv
//! (`fw_printenv`/`fw_setenv`).
//!
//! Single copy: `crc32 (u32 LE) | data`, CRC over the whole data area including padding.
//! Redundant copy: `crc32 (u32 LE) | flags (u8) | data`, CRC over data only (not the flags).
//! Data: `name=value\0` entries, ended by an empty entry (`\0\0`); bytes after the end are padding
//! (0x00 from U-Boot, 0xff from mkenvimage, stale bytes from libubootenv) and are ignored on read.

use crate::Error;
use std::collections::BTreeMap;

/// An environment; kept sorted by name, the order U-Boot and libubootenv write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

/// Padding written after the terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// 0x00, as U-Boot's `saveenv` and `env export -c` write.
    Zero,
    /// 0xff, as `mkenvimage` writes by default (erased flash).
    Erased,
}

impl Padding {
    fn byte(self) -> u8 {
        match self {
            Padding::Zero => 0x00,
            Padding::Erased => 0xff,
        }
    }
}

/// Which copy of a redundant environment is current, and its flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Active {
    pub index: usize,
    pub flags: u8,
}

/// One line of `fw_env.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvLocation {
    pub device: std::path::PathBuf,
    pub offset: u64,
    pub size: u64,
    pub sector_size: Option<u64>,
    pub sectors: Option<u64>,
}

/// Largest environment accepted (U-Boot environments are a few KiB to a few hundred KiB).
pub const MAX_ENV_SIZE: u64 = 16 * 1024 * 1024;

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Sets a variable; an empty value deletes it, as `fw_setenv name` does.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(Error::BadName(name.into()));
        }
        if value.contains('\0') {
            return Err(Error::BadValue(name.into()));
        }
        if value.is_empty() {
            self.vars.remove(name);
        } else {
            self.vars.insert(name.into(), value.into());
        }
        Ok(())
    }

    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Parses a single-copy environment.
    pub fn from_single(bytes: &[u8]) -> Result<Env, Error> {
        if bytes.len() < 5 {
            return Err(Error::UbootSize(bytes.len()));
        }
        let stored = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if crc32fast::hash(&bytes[4..]) != stored {
            return Err(Error::BadCrc);
        }
        parse_data(&bytes[4..])
    }

    fn data(&self, data_len: usize, padding: Padding) -> Result<Vec<u8>, Error> {
        let mut data = Vec::with_capacity(data_len);
        for (name, value) in &self.vars {
            data.extend_from_slice(name.as_bytes());
            data.push(b'=');
            data.extend_from_slice(value.as_bytes());
            data.push(0);
        }
        data.push(0);
        if data.len() > data_len {
            return Err(Error::UbootTooLarge {
                needed: data.len(),
                available: data_len,
            });
        }
        // An empty environment still needs its "\0\0" end marker.
        if self.vars.is_empty() {
            data.push(0);
        }
        data.resize(data_len, padding.byte());
        Ok(data)
    }
}

fn parse_data(data: &[u8]) -> Result<Env, Error> {
    let mut env = Env::new();
    for entry in data.split(|b| *b == 0) {
        if entry.is_empty() {
            return Ok(env);
        }
        let text = std::str::from_utf8(entry)
            .map_err(|_| Error::UbootSyntax("entry is not UTF-8".into()))?;
        let Some((name, value)) = text.split_once('=') else {
            return Err(Error::UbootSyntax(format!("entry without '=': {text:?}")));
        };
        if !name.is_empty() {
            env.vars.insert(name.into(), value.into());
        }
    }
    Err(Error::UbootSyntax("no end marker (\\0\\0)".into()))
}

/// Encodes a single-copy environment of `size` bytes.
pub fn to_single(env: &Env, size: usize, padding: Padding) -> Result<Vec<u8>, Error> {
    if size < 6 {
        return Err(Error::UbootSize(size));
    }
    let data = env.data(size - 4, padding)?;
    let mut out = crc32fast::hash(&data).to_le_bytes().to_vec();
    out.extend_from_slice(&data);
    Ok(out)
}

/// Encodes one copy of a redundant environment with the given flags byte.
pub fn to_redundant_copy(
    env: &Env,
    size: usize,
    flags: u8,
    padding: Padding,
) -> Result<Vec<u8>, Error> {
    if size < 7 {
        return Err(Error::UbootSize(size));
    }
    let data = env.data(size - 5, padding)?;
    let mut out = crc32fast::hash(&data).to_le_bytes().to_vec();
    out.push(flags);
    out.extend_from_slice(&data);
    Ok(out)
}

fn redundant_copy_valid(bytes: &[u8]) -> Option<u8> {
    if bytes.len() < 7 {
        return None;
    }
    let stored = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    (crc32fast::hash(&bytes[5..]) == stored).then_some(bytes[4])
}

/// Picks the current copy like U-Boot's `env_import_redund` and libubootenv: a single valid copy
/// wins; of two valid copies the higher flags wins, except that 0x00 beats 0xff (wrap-around);
/// equal flags pick copy 0.
pub fn select_redundant(copy0: &[u8], copy1: &[u8]) -> Result<Active, Error> {
    match (redundant_copy_valid(copy0), redundant_copy_valid(copy1)) {
        (None, None) => Err(Error::BadCrc),
        (Some(flags), None) => Ok(Active { index: 0, flags }),
        (None, Some(flags)) => Ok(Active { index: 1, flags }),
        (Some(f0), Some(f1)) => {
            let index = if f0 == 0xff && f1 == 0x00 {
                1
            } else if f0 == 0x00 && f1 == 0xff {
                0
            } else if f1 > f0 {
                1
            } else {
                0
            };
            Ok(Active {
                index,
                flags: if index == 0 { f0 } else { f1 },
            })
        }
    }
}

/// Reads a redundant environment: the current copy's variables and which copy it is.
pub fn read_redundant(copy0: &[u8], copy1: &[u8]) -> Result<(Env, Active), Error> {
    let active = select_redundant(copy0, copy1)?;
    let bytes = if active.index == 0 { copy0 } else { copy1 };
    Ok((parse_data(&bytes[5..])?, active))
}

/// The next write of a redundant environment ("incremental" flags, as libubootenv does for files
/// and block devices): the bytes for the *inactive* copy with flags one above the active copy's.
/// Returns the index of the copy to write. Writing only the inactive copy means a power cut
/// leaves the old copy current and valid.
pub fn next_redundant_write(
    env: &Env,
    size: usize,
    active: Active,
) -> Result<(usize, Vec<u8>), Error> {
    let bytes = to_redundant_copy(env, size, active.flags.wrapping_add(1), Padding::Zero)?;
    Ok((1 - active.index, bytes))
}

/// Parses `fw_env.config`: `device offset size [sector-size [sectors]]` per line, numbers in
/// decimal or `0x` hex, `#` comments. One line = single copy; two lines = redundant.
pub fn parse_fw_env_config(text: &str) -> Result<Vec<EnvLocation>, Error> {
    let mut locations = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(3..=5).contains(&fields.len()) {
            return Err(Error::Config {
                line: line_no,
                reason: "expected: device offset size [sector-size [sectors]]".into(),
            });
        }
        let number = |what: &str, text: &str| -> Result<u64, Error> {
            let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.map_err(|_| Error::Config {
                line: line_no,
                reason: format!("{what} {text:?} is not a number"),
            })
        };
        let location = EnvLocation {
            device: fields[0].into(),
            offset: number("offset", fields[1])?,
            size: number("size", fields[2])?,
            sector_size: fields
                .get(3)
                .map(|f| number("sector size", f))
                .transpose()?,
            sectors: fields
                .get(4)
                .map(|f| number("sector count", f))
                .transpose()?,
        };
        if location.size < 16 || location.size > MAX_ENV_SIZE {
            return Err(Error::Config {
                line: line_no,
                reason: format!("environment size {} is out of range", location.size),
            });
        }
        locations.push(location);
    }
    match locations.len() {
        1 | 2 => {}
        0 => {
            return Err(Error::Config {
                line: 0,
                reason: "no environment location".into(),
            });
        }
        n => {
            return Err(Error::Config {
                line: 0,
                reason: format!("{n} locations; at most 2 (redundant) are supported"),
            });
        }
    }
    if locations.len() == 2 && locations[0].size != locations[1].size {
        return Err(Error::Config {
            line: 2,
            reason: "both copies of a redundant environment must have the same size".into(),
        });
    }
    Ok(locations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Env {
        let mut env = Env::new();
        env.set("rustupdate_slot", "a").unwrap();
        env.set("bootcmd", "run distro_bootcmd; echo a=b").unwrap();
        env
    }

    #[test]
    fn single_round_trip_and_stale_tail() {
        let bytes = to_single(&sample(), 0x2000, Padding::Erased).unwrap();
        assert_eq!(bytes.len(), 0x2000);
        assert_eq!(Env::from_single(&bytes).unwrap(), sample());
        // Stale bytes after the terminator (as libubootenv leaves them) are ignored.
        let mut data = bytes[4..].to_vec();
        let end = data.windows(2).position(|w| w == [0, 0]).unwrap() + 2;
        data[end..end + 6].copy_from_slice(b"old=1\0");
        let mut stale = crc32fast::hash(&data).to_le_bytes().to_vec();
        stale.extend_from_slice(&data);
        assert_eq!(Env::from_single(&stale).unwrap(), sample());
        let mut bad = bytes.clone();
        bad[100] ^= 1;
        assert!(matches!(Env::from_single(&bad), Err(Error::BadCrc)));
    }

    #[test]
    fn redundant_selection_rules() {
        let copy = |flags: u8| to_redundant_copy(&sample(), 0x1000, flags, Padding::Zero).unwrap();
        let pick = |a: &[u8], b: &[u8]| select_redundant(a, b).map(|x| x.index);
        assert_eq!(pick(&copy(1), &copy(2)).unwrap(), 1);
        assert_eq!(pick(&copy(2), &copy(1)).unwrap(), 0);
        assert_eq!(pick(&copy(5), &copy(5)).unwrap(), 0);
        assert_eq!(pick(&copy(0xff), &copy(0)).unwrap(), 1);
        assert_eq!(pick(&copy(0), &copy(0xff)).unwrap(), 0);
        assert_eq!(pick(&copy(0xfe), &copy(0xff)).unwrap(), 1);
        let mut bad = copy(9);
        bad[50] ^= 1;
        assert_eq!(pick(&copy(3), &bad).unwrap(), 0);
        assert!(pick(&bad, &bad).is_err());
        let (index, bytes) = next_redundant_write(
            &sample(),
            0x1000,
            Active {
                index: 1,
                flags: 0xff,
            },
        )
        .unwrap();
        assert_eq!((index, bytes[4]), (0, 0));
    }

    #[test]
    fn fw_env_config() {
        let locs = parse_fw_env_config(
            "# comment\n/dev/mmcblk0 0x3fe000 0x2000 0x200 16\n\n/dev/mmcblk0 0x400000 8192\n",
        )
        .unwrap();
        assert_eq!(locs.len(), 2);
        assert_eq!(locs[0].offset, 0x3fe000);
        assert_eq!(locs[0].sectors, Some(16));
        assert_eq!(locs[1].size, 8192);
        let err = parse_fw_env_config("/dev/x 0x0 zz\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(parse_fw_env_config("").is_err());
    }

    #[test]
    fn too_large_and_bad_names() {
        let mut env = Env::new();
        env.set("x", &"y".repeat(100)).unwrap();
        assert!(matches!(
            to_single(&env, 64, Padding::Zero),
            Err(Error::UbootTooLarge { .. })
        ));
        assert!(env.set("a=b", "1").is_err());
        env.set("x", "").unwrap();
        assert_eq!(env.get("x"), None);
    }
}
