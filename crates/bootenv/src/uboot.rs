//! U-Boot environments, byte-compatible with U-Boot, `mkenvimage` and libubootenv
//! (`fw_printenv`/`fw_setenv`).
//!
//! - Single copy, `size` bytes: `crc32 (u32 LE) | data[size - 4]`; the CRC covers the whole data
//!   area, padding included.
//! - One copy of a redundant environment, `size` bytes: `crc32 (u32 LE) | flags (u8) |
//!   data[size - 5]`; the CRC covers the data only, not the flags.
//! - Data: `name=value\0` entries, ended by an empty entry (`\0`). What follows the end is padding:
//!   0x00 from U-Boot, 0xff from `mkenvimage`, stale bytes from libubootenv. Readers stop at the
//!   first empty entry.
//!
//! Values are read raw, exactly as `fw_printenv` shows them. Where U-Boot's own import
//! (`himport_r`) and libubootenv disagree, this module follows:
//! - U-Boot for empty values, which mean "not set": an entry `name=` or `name` deletes `name`, and
//!   [`Env::set`] with an empty value removes the variable, like `fw_setenv name`;
//! - libubootenv for the rest, and [`Env::set`] refuses names U-Boot would read differently
//!   (leading `#`, space or tab). U-Boot's import also drops a backslash and keeps the byte after
//!   it, although its `saveenv` writes backslashes raw: a value with a backslash reads differently
//!   in U-Boot and in Linux. Keep backslashes out of variables the bootloader reads.
//!
//! Entries are written sorted by name, as U-Boot and libubootenv write them.
//!
//! Not here: I/O, locking, device probing, the NOR "boolean" flags mode (only the "incremental"
//! mode that libubootenv uses for files, block devices, NAND and UBI), big-endian CRCs, and
//! U-Boot's `.flags` attributes (kept as an ordinary variable).

use crate::{ConfigProblem, Error};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Smallest environment accepted, in bytes (header and a few entries).
pub const MIN_ENV_SIZE: usize = 16;
/// Largest environment accepted, in bytes (real ones are 8 KiB to a few hundred KiB).
pub const MAX_ENV_SIZE: usize = 16 * 1024 * 1024;
/// Bytes before the data in a single-copy environment: the CRC32.
pub const SINGLE_HEADER_LEN: usize = 4;
/// Bytes before the data in one copy of a redundant environment: the CRC32 and the flags byte.
pub const REDUNDANT_HEADER_LEN: usize = 5;

/// An environment: variable names and their non-empty values, sorted by name (the order U-Boot
/// and libubootenv write).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

/// The byte written after the end of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// 0x00, as U-Boot's `saveenv` and `env export -c` write.
    Zero,
    /// 0xff, as `mkenvimage` writes by default (erased flash).
    Erased,
}

impl Padding {
    /// The padding byte.
    pub fn byte(self) -> u8 {
        match self {
            Padding::Zero => 0x00,
            Padding::Erased => 0xff,
        }
    }
}

/// Which copy of a redundant environment is current, and its flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Active {
    index: usize,
    flags: u8,
}

impl Active {
    /// The current copy: 0 (first line of `fw_env.config`) or 1 (second line).
    pub fn index(self) -> usize {
        self.index
    }

    /// The current copy's flags byte (a wrapping write counter).
    pub fn flags(self) -> u8 {
        self.flags
    }

    /// The other copy, where the next write goes.
    pub fn inactive_index(self) -> usize {
        1 - self.index
    }
}

/// One line of `fw_env.config`: where one copy of the environment lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvLocation {
    /// Device or file (a path, or an MTD/UBI name, as written).
    pub device: PathBuf,
    /// Byte offset of the copy in `device`.
    pub offset: u64,
    /// Size of the copy in bytes, header included.
    pub size: u64,
    /// Erase-block size (MTD); `None` when not given.
    pub sector_size: Option<u64>,
    /// Number of erase blocks the copy may use (NAND bad-block skipping); `None` when not given.
    pub sectors: Option<u64>,
    /// libubootenv ≥ 0.3.5: `1` disables the MTD lock/unlock ioctls.
    pub disable_mtd_lock: bool,
}

impl Env {
    /// An empty environment.
    pub fn new() -> Env {
        Env::default()
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Sets `name` to `value`. An empty value removes the variable, as `fw_setenv name` and
    /// U-Boot's `setenv name` do. Names must be non-empty, without `=` or NUL, and must not start
    /// with `#`, a space or a tab (U-Boot's import would skip or rename them). Values must not
    /// contain NUL; spaces, `=` and newlines are fine, and so are backslashes for
    /// `fw_printenv`, but see the module docs for what U-Boot itself does with them.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        check_name(name)?;
        if value.contains('\0') {
            return Err(Error::BadValue {
                name: name.into(),
                reason: "contains a NUL byte",
            });
        }
        if value.is_empty() {
            self.vars.remove(name);
        } else {
            self.vars.insert(name.into(), value.into());
        }
        Ok(())
    }

    /// Removes `name`, returning its value if it was set.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.vars.remove(name)
    }

    /// The variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Data bytes the variables take: each `name=value\0`, then the final `\0`.
    pub fn encoded_len(&self) -> usize {
        1 + self
            .vars
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum::<usize>()
    }

    /// Decodes a single-copy environment (`crc | data`); `bytes` is the whole environment area
    /// (`envsize` of `fw_env.config`).
    pub fn from_single(bytes: &[u8]) -> Result<Env, Error> {
        check_size(bytes.len())?;
        let (crc, data) = bytes.split_at(SINGLE_HEADER_LEN);
        check_crc(crc, data)?;
        parse_data(data, SINGLE_HEADER_LEN)
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.starts_with(['#', ' ', '\t']) {
        // U-Boot's import strips leading blanks and skips entries starting with `#`.
        "starts with '#', a space or a tab (U-Boot would not read it back)"
    } else if name.contains('=') {
        "contains '='"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::BadName {
        name: name.into(),
        reason,
    })
}

fn check_size(size: usize) -> Result<(), Error> {
    if (MIN_ENV_SIZE..=MAX_ENV_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(Error::UbootSize { size })
    }
}

fn stored_crc(crc: &[u8]) -> u32 {
    let mut le = [0u8; 4];
    le.copy_from_slice(&crc[..4]);
    u32::from_le_bytes(le)
}

fn check_crc(crc: &[u8], data: &[u8]) -> Result<(), Error> {
    let (stored, computed) = (stored_crc(crc), crc32fast::hash(data));
    if stored == computed {
        Ok(())
    } else {
        Err(Error::BadCrc { stored, computed })
    }
}

/// Decodes the data area with U-Boot's import rules. `base` is the data's offset in the copy, for
/// error messages. The data ends at the first empty entry or at the end of the area (U-Boot
/// accepts both).
fn parse_data(data: &[u8], base: usize) -> Result<Env, Error> {
    let mut env = Env::new();
    let mut start = 0;
    while start < data.len() {
        let end = data[start..]
            .iter()
            .position(|b| *b == 0)
            .map_or(data.len(), |n| start + n);
        let entry = &data[start..end];
        if entry.is_empty() {
            break;
        }
        let text = std::str::from_utf8(entry).map_err(|_| Error::NotUtf8 {
            offset: base + start,
        })?;
        match text.split_once('=') {
            // U-Boot's himport_r: `name` and `name=` delete `name`.
            None => {
                env.vars.remove(text);
            }
            Some((name, "")) => {
                env.vars.remove(name);
            }
            // Nothing can set or delete a variable with an empty name; skip it.
            Some(("", _)) => {}
            Some((name, value)) => {
                env.vars.insert(name.into(), value.into());
            }
        }
        start = end + 1;
    }
    Ok(env)
}

/// The data area: entries, the terminating empty entry, then padding to `data_len`.
fn encode_data(
    env: &Env,
    size: usize,
    header_len: usize,
    padding: Padding,
) -> Result<Vec<u8>, Error> {
    check_size(size)?;
    let available = size - header_len;
    let needed = env.encoded_len();
    if needed > available {
        return Err(Error::DoesNotFit {
            needed,
            available,
            size,
        });
    }
    let mut data = Vec::with_capacity(available);
    for (name, value) in &env.vars {
        data.extend_from_slice(name.as_bytes());
        data.push(b'=');
        data.extend_from_slice(value.as_bytes());
        data.push(0);
    }
    data.push(0);
    data.resize(available, padding.byte());
    Ok(data)
}

/// Encodes a single-copy environment of `size` bytes (`envsize` of `fw_env.config`, `-s` of
/// `mkenvimage`).
pub fn to_single(env: &Env, size: usize, padding: Padding) -> Result<Vec<u8>, Error> {
    let data = encode_data(env, size, SINGLE_HEADER_LEN, padding)?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&crc32fast::hash(&data).to_le_bytes());
    out.extend_from_slice(&data);
    Ok(out)
}

/// Encodes one copy of a redundant environment of `size` bytes with the given flags byte.
pub fn to_redundant_copy(
    env: &Env,
    size: usize,
    flags: u8,
    padding: Padding,
) -> Result<Vec<u8>, Error> {
    let data = encode_data(env, size, REDUNDANT_HEADER_LEN, padding)?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&crc32fast::hash(&data).to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&data);
    Ok(out)
}

/// Picks the current copy of a redundant environment exactly as U-Boot's `env_import_redund` and
/// libubootenv (incremental flags) do:
/// - only one copy has a valid CRC: that copy;
/// - both valid: the higher flags byte wins, except that 0x00 beats 0xff (the counter wrapped);
///   equal flags: copy 0;
/// - neither valid: [`Error::NoValidCopy`].
pub fn select_redundant(copy0: &[u8], copy1: &[u8]) -> Result<Active, Error> {
    check_size(copy0.len())?;
    if copy0.len() != copy1.len() {
        return Err(Error::CopySizeMismatch {
            size0: copy0.len(),
            size1: copy1.len(),
        });
    }
    let check = |copy: &[u8]| {
        let stored = stored_crc(copy);
        let computed = crc32fast::hash(&copy[REDUNDANT_HEADER_LEN..]);
        (stored, computed, stored == computed)
    };
    let (stored0, computed0, valid0) = check(copy0);
    let (stored1, computed1, valid1) = check(copy1);
    let (f0, f1) = (copy0[4], copy1[4]);
    let index = match (valid0, valid1) {
        (false, false) => {
            return Err(Error::NoValidCopy {
                stored: [stored0, stored1],
                computed: [computed0, computed1],
            });
        }
        (true, false) => 0,
        (false, true) => 1,
        (true, true) => match (f0, f1) {
            (0xff, 0x00) => 1,
            (0x00, 0xff) => 0,
            _ if f1 > f0 => 1,
            _ => 0,
        },
    };
    Ok(Active {
        index,
        flags: if index == 0 { f0 } else { f1 },
    })
}

/// Decodes a redundant environment: the current copy's variables and which copy that is.
pub fn read_redundant(copy0: &[u8], copy1: &[u8]) -> Result<(Env, Active), Error> {
    let active = select_redundant(copy0, copy1)?;
    let copy = if active.index == 0 { copy0 } else { copy1 };
    let env = parse_data(&copy[REDUNDANT_HEADER_LEN..], REDUNDANT_HEADER_LEN)?;
    Ok((env, active))
}

/// The next write of a redundant environment, as libubootenv does it for files, block devices,
/// NAND and UBI ("incremental" flags): the bytes of the *inactive* copy, with flags one above the
/// active copy's (wrapping 0xff to 0x00) and 0x00 padding, and the index of the copy to write them
/// to. The active copy is not touched, so a power cut during the write leaves it current: a torn
/// new copy fails its CRC, and a complete one wins by its flags.
pub fn next_redundant_write(
    env: &Env,
    size: usize,
    active: Active,
) -> Result<(usize, Vec<u8>), Error> {
    let bytes = to_redundant_copy(env, size, active.flags.wrapping_add(1), Padding::Zero)?;
    Ok((active.inactive_index(), bytes))
}

/// Parses libubootenv's `fw_env.config`: per line `device offset envsize [sectorsize [sectors
/// [disable-lock]]]`, separated by spaces or tabs; a field starting with `#` starts a comment;
/// blank lines are skipped. One line is a single copy, two lines a redundant environment (both
/// of the same size).
///
/// Numbers are read as libubootenv reads them (`sscanf("%lli %zx %zx %lx %d")`): the offset in C
/// notation (decimal, `0x` hex, or octal with a leading `0`); `envsize`, `sectorsize` and
/// `sectors` always in hex, with or without `0x` (`2000` is 0x2000 bytes); `disable-lock` 0 or 1.
/// Unlike libubootenv, which skips lines it cannot read, this parser reports them.
pub fn parse_fw_env_config(text: &str) -> Result<Vec<EnvLocation>, Error> {
    let mut locations: Vec<EnvLocation> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let err = |problem| Error::Config { line, problem };
        let fields: Vec<&str> = raw
            .split_whitespace()
            .take_while(|f| !f.starts_with('#'))
            .collect();
        if fields.is_empty() {
            continue;
        }
        if !(3..=6).contains(&fields.len()) {
            return Err(err(ConfigProblem::FieldCount {
                found: fields.len(),
            }));
        }
        if locations.len() == 2 {
            return Err(err(ConfigProblem::TooManyLocations));
        }
        let hex = |field: &'static str, text: &str| {
            parse_hex(text).ok_or_else(|| {
                err(ConfigProblem::Number {
                    field,
                    text: text.into(),
                    notation: "a hex number (libubootenv reads sizes in hex, `0x` optional)",
                })
            })
        };
        let location = EnvLocation {
            device: fields[0].into(),
            offset: parse_offset(fields[1]).map_err(err)?,
            size: hex("envsize", fields[2])?,
            sector_size: fields.get(3).map(|f| hex("sectorsize", f)).transpose()?,
            sectors: fields.get(4).map(|f| hex("sectors", f)).transpose()?,
            disable_mtd_lock: match fields.get(5) {
                None | Some(&"0") => false,
                Some(&"1") => true,
                Some(other) => {
                    return Err(err(ConfigProblem::Number {
                        field: "disable-lock",
                        text: (*other).into(),
                        notation: "0 or 1",
                    }));
                }
            },
        };
        let in_range = usize::try_from(location.size)
            .is_ok_and(|size| (MIN_ENV_SIZE..=MAX_ENV_SIZE).contains(&size));
        if !in_range {
            return Err(err(ConfigProblem::Size {
                size: location.size,
            }));
        }
        if let Some(first) = locations.first()
            && first.size != location.size
        {
            return Err(err(ConfigProblem::SizeMismatch {
                size: location.size,
                first: first.size,
            }));
        }
        locations.push(location);
    }
    if locations.is_empty() {
        return Err(Error::ConfigEmpty);
    }
    Ok(locations)
}

/// `%zx`: hex digits with an optional `0x`/`0X` prefix.
fn parse_hex(text: &str) -> Option<u64> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// `%lli`: decimal, `0x` hex or `0` octal; negative offsets are rejected.
fn parse_offset(text: &str) -> Result<u64, ConfigProblem> {
    if text.starts_with('-') {
        return Err(ConfigProblem::NegativeOffset { text: text.into() });
    }
    let (digits, radix) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16)
        } else if text.len() > 1
            && let Some(octal) = text.strip_prefix('0')
        {
            (octal, 8)
        } else {
            (text, 10)
        };
    let valid = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    valid
        .then(|| u64::from_str_radix(digits, radix).ok())
        .flatten()
        .ok_or_else(|| ConfigProblem::Number {
            field: "offset",
            text: text.into(),
            notation: "a number (decimal, 0x hex, or 0 octal)",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_INPUT: &[(&str, &str)] = &[
        ("bootcmd", "run distro_bootcmd; echo a=b"),
        ("bootlimit", "3"),
        ("equals", "a=b=c"),
        ("multiline", "line1\nline2"),
        ("path", "C:\\dir\\file"),
        ("quoted", "\"double\" 'single'"),
        ("rustupdate_slot", "a"),
        ("spaces", "  leading and trailing  "),
        ("tab", "x\ty"),
        ("unicode", "grüße"),
        ("upgrade_available", "0"),
    ];

    fn env_of(pairs: &[(&str, &str)]) -> Env {
        let mut env = Env::new();
        for (name, value) in pairs {
            env.set(name, value).unwrap();
        }
        env
    }

    fn sample() -> Env {
        env_of(&[
            ("rustupdate_slot", "a"),
            ("bootcmd", "run distro_bootcmd; echo a=b"),
        ])
    }

    /// Data area ending: index just past the terminating empty entry.
    fn end_of_entries(data: &[u8]) -> usize {
        data.windows(2).position(|w| w == [0, 0]).unwrap() + 2
    }

    #[test]
    fn mkenvimage_fixtures_match_byte_for_byte() {
        let expected = env_of(FIXTURE_INPUT);
        for (bytes, padding) in [
            (
                &include_bytes!("../tests/fixtures/uboot-single-ff.bin")[..],
                Padding::Erased,
            ),
            (
                &include_bytes!("../tests/fixtures/uboot-single-00.bin")[..],
                Padding::Zero,
            ),
        ] {
            assert_eq!(Env::from_single(bytes).unwrap(), expected);
            assert_eq!(to_single(&expected, 0x2000, padding).unwrap(), bytes);
        }
        let redund = include_bytes!("../tests/fixtures/uboot-redund.bin");
        assert_eq!(redund[4], 1, "mkenvimage -r writes flags 1");
        let (env, active) = read_redundant(redund, redund).unwrap();
        assert_eq!(
            (env, active.index(), active.flags()),
            (expected.clone(), 0, 1)
        );
        assert_eq!(
            to_redundant_copy(&expected, 0x2000, 1, Padding::Erased).unwrap(),
            redund
        );
    }

    #[test]
    fn fw_setenv_fixture_with_stale_tail() {
        let bytes = include_bytes!("../tests/fixtures/uboot-fw_setenv-stale.bin");
        let env = Env::from_single(bytes).unwrap();
        let mut expected = env_of(FIXTURE_INPUT);
        expected.set("bootcmd", "").unwrap();
        expected.set("multiline", "").unwrap();
        expected.set("rustupdate_slot", "b").unwrap();
        expected.set("upgrade_available", "1").unwrap();
        assert_eq!(env, expected);
        // The fixture is only meaningful if it really has stale bytes after the terminator.
        let data = &bytes[4..];
        let tail = &data[end_of_entries(data)..];
        assert!(
            tail.iter().any(|b| *b != 0 && *b != 0xff),
            "no stale bytes in the fixture's tail"
        );
        // Our encoding differs only in the tail.
        let ours = to_single(&env, bytes.len(), Padding::Erased).unwrap();
        let end = end_of_entries(data) + 4;
        assert_eq!(ours[4..end], bytes[4..end]);
    }

    #[test]
    fn fw_setenv_redundant_fixture() {
        let copy0 = include_bytes!("../tests/fixtures/uboot-redund-fw_setenv-0.bin");
        let copy1 = include_bytes!("../tests/fixtures/uboot-redund-fw_setenv-1.bin");
        // mkenvimage -r for both (flags 1/1), then three fw_setenv writes: 1/2, 3/2, 3/4.
        assert_eq!((copy0[4], copy1[4]), (3, 4));
        let (env, active) = read_redundant(copy0, copy1).unwrap();
        assert_eq!((active.index(), active.flags()), (1, 4));
        let mut expected = env_of(FIXTURE_INPUT);
        expected.set("bootcount", "2").unwrap();
        expected.set("rustupdate_slot", "b").unwrap();
        assert_eq!(env, expected);
        // The older copy holds the state before the last write.
        let (older, _) = read_redundant(copy0, &[0u8; 0x2000]).unwrap();
        expected.set("bootcount", "1").unwrap();
        assert_eq!(older, expected);
    }

    #[test]
    fn stale_tail_and_corruption() {
        let bytes = to_single(&sample(), 0x2000, Padding::Erased).unwrap();
        assert_eq!(bytes.len(), 0x2000);
        assert_eq!(Env::from_single(&bytes).unwrap(), sample());
        let mut data = bytes[4..].to_vec();
        let end = end_of_entries(&data);
        data[end..end + 6].copy_from_slice(b"old=1\0");
        let mut stale = crc32fast::hash(&data).to_le_bytes().to_vec();
        stale.extend_from_slice(&data);
        assert_eq!(Env::from_single(&stale).unwrap(), sample());
        let mut bad = bytes.clone();
        bad[100] ^= 1;
        assert!(matches!(
            Env::from_single(&bad),
            Err(Error::BadCrc { stored, computed }) if stored != computed
        ));
        assert_eq!(Env::from_single(&[0; 8]), Err(Error::UbootSize { size: 8 }));
    }

    /// Builds a single-copy image around raw data bytes (zero-padded).
    fn single_with_data(raw: &[u8]) -> Vec<u8> {
        let mut data = raw.to_vec();
        data.resize(64, 0);
        let mut out = crc32fast::hash(&data).to_le_bytes().to_vec();
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn import_rules() {
        // `name=` and `name` delete earlier entries; empty names are skipped; later wins;
        // backslashes, `#` and blanks are kept raw (as fw_printenv shows them).
        let env = Env::from_single(&single_with_data(
            b"a=1\0b=2\0c=3\0a=\0b\0=x\0c=4\0#h= \\x\0 s=1\0\0d=stale\0",
        ))
        .unwrap();
        assert_eq!(
            env.iter().collect::<Vec<_>>(),
            [(" s", "1"), ("#h", " \\x"), ("c", "4")]
        );
        // An empty data area is an empty environment.
        assert!(Env::from_single(&single_with_data(b"")).unwrap().is_empty());
        // Entries may run to the end of the area without the final empty entry (U-Boot accepts it).
        let mut data = b"a=".to_vec();
        data.resize(60, b'v');
        let mut image = crc32fast::hash(&data).to_le_bytes().to_vec();
        image.extend_from_slice(&data);
        assert_eq!(
            Env::from_single(&image).unwrap().get("a").unwrap().len(),
            58
        );
        // Not UTF-8: the error names the byte offset of the entry.
        assert_eq!(
            Env::from_single(&single_with_data(b"a=1\0b=\xff\0\0")),
            Err(Error::NotUtf8 { offset: 8 })
        );
    }

    #[test]
    fn exact_fit_and_overflow() {
        // 0x20 bytes: 28 data bytes = "a=" + 24 + "\0" + "\0" (as `mkenvimage -s 0x20` accepts).
        let full = env_of(&[("a", &"x".repeat(24))]);
        assert_eq!(full.encoded_len(), 28);
        let bytes = to_single(&full, 0x20, Padding::Erased).unwrap();
        // The bytes `mkenvimage -s 0x20` wrote for this input (CRC 0x832e1f8d).
        assert_eq!(&bytes[..4], &[0x8d, 0x1f, 0x2e, 0x83]);
        assert_eq!(&bytes[28..], b"xx\0\0");
        assert_eq!(Env::from_single(&bytes).unwrap(), full);
        let over = env_of(&[("a", &"x".repeat(25))]);
        assert_eq!(
            to_single(&over, 0x20, Padding::Erased),
            Err(Error::DoesNotFit {
                needed: 29,
                available: 28,
                size: 0x20
            })
        );
        assert_eq!(
            to_redundant_copy(&full, 0x20, 1, Padding::Zero),
            Err(Error::DoesNotFit {
                needed: 28,
                available: 27,
                size: 0x20
            })
        );
        let message = to_single(&over, 0x20, Padding::Erased)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("29") && message.contains("32"),
            "{message}"
        );
        assert!(to_single(&Env::new(), 8, Padding::Zero).is_err());
    }

    #[test]
    fn names_and_values() {
        let mut env = Env::new();
        for bad in ["", "a=b", "a\0b", "#a", " a", "\ta"] {
            assert!(
                matches!(env.set(bad, "1"), Err(Error::BadName { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(env.set("a", "x\0y"), Err(Error::BadValue { .. })));
        env.set("odd", "a = b \\ c\nd").unwrap();
        assert_eq!(env.get("odd"), Some("a = b \\ c\nd"));
        env.set("odd", "").unwrap();
        assert_eq!(env.get("odd"), None);
        env.set("x", "1").unwrap();
        assert_eq!(env.remove("x").as_deref(), Some("1"));
        assert!(env.is_empty());
    }

    #[test]
    fn written_sorted_by_name() {
        let env = env_of(&[("zeta", "1"), ("Alpha", "2"), ("beta", "3")]);
        let bytes = to_single(&env, 64, Padding::Zero).unwrap();
        assert!(bytes[4..].starts_with(b"Alpha=2\0beta=3\0zeta=1\0\0"));
        assert_eq!(
            env.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["Alpha", "beta", "zeta"]
        );
    }

    fn copy(flags: u8, who: &str) -> Vec<u8> {
        to_redundant_copy(&env_of(&[("who", who)]), 0x100, flags, Padding::Zero).unwrap()
    }

    fn corrupt(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes[20] ^= 0x40;
        bytes
    }

    #[test]
    fn redundant_selection_rules() {
        let pick = |a: &[u8], b: &[u8]| {
            let (env, active) = read_redundant(a, b).unwrap();
            let who = env.get("who").unwrap().to_string();
            (active.index(), active.flags(), who)
        };
        let cases: [(Vec<u8>, Vec<u8>, usize, u8); 9] = [
            (copy(1, "c0"), copy(2, "c1"), 1, 2),
            (copy(2, "c0"), copy(1, "c1"), 0, 2),
            (copy(5, "c0"), copy(5, "c1"), 0, 5),
            (copy(0xff, "c0"), copy(0, "c1"), 1, 0),
            (copy(0, "c0"), copy(0xff, "c1"), 0, 0),
            (copy(0xfe, "c0"), copy(0xff, "c1"), 1, 0xff),
            (copy(3, "c0"), corrupt(copy(9, "c1")), 0, 3),
            (corrupt(copy(9, "c0")), copy(3, "c1"), 1, 3),
            // Only 0xff vs 0x00 wraps: 0xfe vs 0x00 is "higher wins".
            (copy(0xfe, "c0"), copy(0, "c1"), 0, 0xfe),
        ];
        for (c0, c1, index, flags) in cases {
            let who = format!("c{index}");
            assert_eq!(
                pick(&c0, &c1),
                (index, flags, who),
                "flags {} {}",
                c0[4],
                c1[4]
            );
        }
        let both_bad = select_redundant(&corrupt(copy(1, "c0")), &corrupt(copy(2, "c1")));
        assert!(
            matches!(both_bad, Err(Error::NoValidCopy { .. })),
            "{both_bad:?}"
        );
        assert_eq!(
            select_redundant(&copy(1, "c0"), &copy(1, "c1")[..0x80]),
            Err(Error::CopySizeMismatch {
                size0: 0x100,
                size1: 0x80
            })
        );
    }

    #[test]
    fn next_write_goes_to_the_inactive_copy() {
        let env = env_of(&[("who", "new")]);
        for (c0, c1, index, flags) in [
            (copy(1, "c0"), copy(2, "c1"), 0, 3),
            (copy(5, "c0"), copy(5, "c1"), 1, 6),
            (copy(0xff, "c0"), copy(0, "c1"), 0, 1),
            (copy(0xfe, "c0"), copy(0xff, "c1"), 0, 0),
            (copy(7, "c0"), corrupt(copy(9, "c1")), 1, 8),
        ] {
            let active = select_redundant(&c0, &c1).unwrap();
            let (which, bytes) = next_redundant_write(&env, 0x100, active).unwrap();
            assert_eq!((which, bytes[4]), (index, flags));
            // Applying the write makes the new copy current.
            let (c0, c1) = if which == 0 { (bytes, c1) } else { (c0, bytes) };
            let (read, now) = read_redundant(&c0, &c1).unwrap();
            assert_eq!((read, now.index()), (env.clone(), which));
        }
    }

    #[test]
    fn fw_env_config() {
        let locs = parse_fw_env_config(
            "# comment\n\n  # indented comment\n/dev/mmcblk0 0x3fe000 0x2000 0x200 10 # trailing\n\
             /dev/mmcblk0\t4186112\t2000\n",
        )
        .unwrap();
        assert_eq!(
            locs,
            [
                EnvLocation {
                    device: "/dev/mmcblk0".into(),
                    offset: 0x3fe000,
                    size: 0x2000,
                    sector_size: Some(0x200),
                    sectors: Some(0x10),
                    disable_mtd_lock: false,
                },
                EnvLocation {
                    device: "/dev/mmcblk0".into(),
                    offset: 4186112,
                    size: 0x2000,
                    sector_size: None,
                    sectors: None,
                    disable_mtd_lock: false,
                },
            ]
        );
        let one = parse_fw_env_config("/boot/uboot.env 0100 0X4000 0x4000 1 1").unwrap();
        assert_eq!((one[0].offset, one[0].size), (0o100, 0x4000));
        assert!(one[0].disable_mtd_lock);
    }

    #[test]
    fn fw_env_config_errors() {
        let problem = |text: &str| match parse_fw_env_config(text) {
            Err(Error::Config { line, problem }) => (line, problem),
            other => panic!("{text:?}: {other:?}"),
        };
        assert_eq!(
            problem("#\n/dev/x 0x0\n"),
            (2, ConfigProblem::FieldCount { found: 2 })
        );
        assert!(matches!(
            problem("/dev/x 0x0 zz\n"),
            (
                1,
                ConfigProblem::Number {
                    field: "envsize",
                    ..
                }
            )
        ));
        assert!(matches!(
            problem("/dev/x 08 0x2000\n"),
            (
                1,
                ConfigProblem::Number {
                    field: "offset",
                    ..
                }
            )
        ));
        assert!(matches!(
            problem("/dev/x 1e3 0x2000\n"),
            (
                1,
                ConfigProblem::Number {
                    field: "offset",
                    ..
                }
            )
        ));
        assert!(matches!(
            problem("/dev/x -0x2000 0x2000\n"),
            (1, ConfigProblem::NegativeOffset { .. })
        ));
        assert_eq!(
            problem("/dev/x 0 0\n"),
            (1, ConfigProblem::Size { size: 0 })
        );
        assert_eq!(
            problem("/dev/x 0 0x2000\n/dev/x 0x2000 0x4000\n"),
            (
                2,
                ConfigProblem::SizeMismatch {
                    size: 0x4000,
                    first: 0x2000
                }
            )
        );
        assert_eq!(
            problem("/dev/x 0 0x2000\n/dev/y 0 0x2000\n\n/dev/z 0 0x2000\n"),
            (4, ConfigProblem::TooManyLocations)
        );
        assert!(matches!(
            problem("/dev/x 0 0x2000 0 0 2\n"),
            (
                1,
                ConfigProblem::Number {
                    field: "disable-lock",
                    ..
                }
            )
        ));
        assert_eq!(
            parse_fw_env_config("# nothing\n\n"),
            Err(Error::ConfigEmpty)
        );
        let message = parse_fw_env_config("\n/dev/x 0x0 zz\n")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("line 2") && message.contains("\"zz\""),
            "{message}"
        );
    }
}
