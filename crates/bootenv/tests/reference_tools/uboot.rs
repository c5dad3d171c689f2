//! U-Boot: single and redundant environments, against `fw_printenv`, `fw_setenv` and
//! `mkenvimage`, and `fw_env.config` as libubootenv reads it.

use crate::{listing, read, run, tool, write};
use rustupdate_bootenv::{Error, uboot};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;
use uboot::Padding;

// ---------------------------------------------------------------------------------------------
// U-Boot rig

const SIZE: usize = 0x4000;

/// A temp dir with `fw_printenv`/`fw_setenv` and `mkenvimage`.
struct Uboot {
    dir: TempDir,
    fw_printenv: PathBuf,
    fw_setenv: PathBuf,
    mkenvimage: PathBuf,
}

impl Uboot {
    fn new() -> Uboot {
        ensure_lock_dir();
        Uboot {
            dir: tempfile::tempdir().expect("temp dir"),
            fw_printenv: tool("fw_printenv", "libubootenv-tool"),
            fw_setenv: tool("fw_setenv", "libubootenv-tool"),
            mkenvimage: tool("mkenvimage", "u-boot-tools"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an `fw_env.config` with `text`, returning its path.
    fn config(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        write(&path, text.as_bytes());
        path
    }

    /// `fw_env.config` for one file holding a single copy at offset 0.
    fn single_config(&self, file: &Path) -> PathBuf {
        self.config(
            "single.config",
            &format!("{} 0x0 {SIZE:#x}\n", file.display()),
        )
    }

    /// `fw_env.config` for two files holding one copy each at offset 0.
    fn redundant_config(&self, copy0: &Path, copy1: &Path) -> PathBuf {
        self.config(
            "redundant.config",
            &format!(
                "{} 0x0 {SIZE:#x}\n{} 0x0 {SIZE:#x}\n",
                copy0.display(),
                copy1.display()
            ),
        )
    }

    /// A default-environment file that does not exist: with `-f` pointing there, the tools fail
    /// instead of falling back to `/etc/u-boot-initial-env`.
    fn no_default(&self) -> PathBuf {
        self.path("no-default-env")
    }

    fn fw_printenv(&self, config: &Path, names: &[&str]) -> Result<String, String> {
        run(Command::new(&self.fw_printenv)
            .arg("-c")
            .arg(config)
            .arg("-f")
            .arg(self.no_default())
            .args(names))
    }

    fn fw_setenv(&self, config: &Path, args: &[&str]) -> Result<String, String> {
        run(Command::new(&self.fw_setenv)
            .arg("-c")
            .arg(config)
            .arg("-f")
            .arg(self.no_default())
            .args(args))
    }

    /// `mkenvimage <options> -s SIZE -o <out> <input>` with `input` as the input file.
    fn mkenvimage(&self, options: &[&str], input: &str) -> Result<Vec<u8>, String> {
        let input_path = self.path("mkenvimage-input.txt");
        write(&input_path, input.as_bytes());
        let out = self.path("mkenvimage.bin");
        run(Command::new(&self.mkenvimage)
            .args(options)
            .arg("-s")
            .arg(format!("{SIZE:#x}"))
            .arg("-o")
            .arg(&out)
            .arg(&input_path))?;
        Ok(read(&out))
    }
}

/// libubootenv takes `/var/lock/fw_printenv.lock` (a fixed path, no option or variable moves it).
/// `/var/lock` is usually a symlink to `/run/lock`: create whichever is missing.
fn ensure_lock_dir() {
    let lock_dir = Path::new("/var/lock");
    if lock_dir.is_dir() {
        return;
    }
    let target = match std::fs::read_link(lock_dir) {
        Ok(target) => Path::new("/var").join(target),
        Err(_) => lock_dir.to_path_buf(),
    };
    std::fs::create_dir_all(&target).unwrap_or_else(|err| {
        panic!(
            "libubootenv locks /var/lock/fw_printenv.lock: create {} ({err})",
            target.display()
        )
    });
}

/// Values U-Boot can hold that need care: spaces, `=`, backslashes, newlines, quotes, tabs,
/// shell syntax, UTF-8.
const ODD: &[(&str, &str)] = &[
    ("Upper", "sorts before lower case"),
    ("backslash", "C:\\dir\\ \\n is not a newline\\"),
    ("bootcmd", "if test \"${a}\" = b; then echo 'x  y'; fi"),
    ("equals", "a=b==c="),
    ("hash", "#not a comment"),
    ("newline", "line1\nline2\n\nline4"),
    ("rustupdate_slot", "a"),
    ("spaces", "  lead and trail  "),
    ("tab", "\tx\ty\t"),
    ("unicode", "grüße ✓"),
    ("with.dot-dash_1", "1"),
];

fn uboot_env(pairs: &[(&str, &str)]) -> uboot::Env {
    let mut env = uboot::Env::new();
    for (name, value) in pairs {
        env.set(name, value).expect("valid variable");
    }
    env
}

// ---------------------------------------------------------------------------------------------
// U-Boot, single copy

#[test]
fn uboot_single_written_by_us_is_read_by_fw_printenv() {
    let rig = Uboot::new();
    let env = uboot_env(ODD);
    let file = rig.path("uboot.env");
    let config = rig.single_config(&file);
    for padding in [Padding::Zero, Padding::Erased] {
        write(&file, &uboot::to_single(&env, SIZE, padding).unwrap());
        assert_eq!(
            rig.fw_printenv(&config, &[]).unwrap(),
            listing(env.iter()),
            "{padding:?}"
        );
        assert_eq!(
            rig.fw_printenv(&config, &["newline", "equals"]).unwrap(),
            "newline=line1\nline2\n\nline4\nequals=a=b==c=\n"
        );
    }
}

#[test]
fn uboot_single_written_by_fw_setenv_is_read_by_us() {
    let rig = Uboot::new();
    let file = rig.path("uboot.env");
    let config = rig.single_config(&file);
    write(
        &file,
        &uboot::to_single(&uboot::Env::new(), SIZE, Padding::Erased).unwrap(),
    );
    // All odd values in one call (name value name value ...), then a deletion, then a script
    // (`name=value` lines; `name=` deletes).
    let args: Vec<&str> = ODD.iter().flat_map(|(n, v)| [*n, *v]).collect();
    rig.fw_setenv(&config, &args).unwrap();
    rig.fw_setenv(&config, &["with.dot-dash_1"]).unwrap();
    let script = rig.path("script.txt");
    write(
        &script,
        "from_script=a = b\\c\nspaces=\n# comment\n".as_bytes(),
    );
    rig.fw_setenv(&config, &["-s", script.to_str().unwrap()])
        .unwrap();

    let mut expected = uboot_env(ODD);
    expected.remove("with.dot-dash_1");
    expected.remove("spaces");
    expected.set("from_script", "a = b\\c").unwrap();
    let env = uboot::Env::from_single(&read(&file)).unwrap();
    assert_eq!(env, expected);
    assert_eq!(listing(env.iter()), rig.fw_printenv(&config, &[]).unwrap());

    // Interleaved: we change it, fw_setenv changes it, both still agree.
    let mut env = env;
    env.set("rustupdate_slot", "b").unwrap();
    write(&file, &uboot::to_single(&env, SIZE, Padding::Zero).unwrap());
    rig.fw_setenv(&config, &["bootcount", "1"]).unwrap();
    env.set("bootcount", "1").unwrap();
    assert_eq!(uboot::Env::from_single(&read(&file)).unwrap(), env);
    assert_eq!(rig.fw_printenv(&config, &[]).unwrap(), listing(env.iter()));
}

/// `fw_setenv name ""` stores `name=`, which fw_printenv lists. U-Boot's import deletes such an
/// entry, and so do we: the variable reads as unset, and `fw_printenv name` prints the same
/// `name=` whether the entry is there or not.
#[test]
fn uboot_empty_value_means_unset() {
    let rig = Uboot::new();
    let file = rig.path("uboot.env");
    let config = rig.single_config(&file);
    write(
        &file,
        &uboot::to_single(&uboot::Env::new(), SIZE, Padding::Zero).unwrap(),
    );
    rig.fw_setenv(&config, &["keep", "1", "empty", ""]).unwrap();
    assert_eq!(rig.fw_printenv(&config, &[]).unwrap(), "empty=\nkeep=1\n");
    let env = uboot::Env::from_single(&read(&file)).unwrap();
    assert_eq!(env, uboot_env(&[("keep", "1")]));
    assert_eq!(rig.fw_printenv(&config, &["empty"]).unwrap(), "empty=\n");

    write(&file, &uboot::to_single(&env, SIZE, Padding::Zero).unwrap());
    assert_eq!(rig.fw_printenv(&config, &[]).unwrap(), "keep=1\n");
    assert_eq!(rig.fw_printenv(&config, &["empty"]).unwrap(), "empty=\n");
}

#[test]
fn uboot_mkenvimage_images_are_read_by_us() {
    let rig = Uboot::new();
    // Unsorted, with a comment, a blank line and an embedded newline (`\` at the end of a line).
    let input = "zeta=last in, first out\n# comment=ignored\n\nbootcmd=echo a=b; echo \"c\"\n\
                 multi=one\\\ntwo\npath=C:\\dir\\file\nspaces=  x  \nunicode=grüße\n";
    let expected = uboot_env(&[
        ("zeta", "last in, first out"),
        ("bootcmd", "echo a=b; echo \"c\""),
        ("multi", "one\ntwo"),
        ("path", "C:\\dir\\file"),
        ("spaces", "  x  "),
        ("unicode", "grüße"),
    ]);
    let file = rig.path("uboot.env");
    let config = rig.single_config(&file);
    for options in [&[][..], &["-p", "0x00"][..]] {
        let image = rig.mkenvimage(options, input).unwrap();
        assert_eq!(
            uboot::Env::from_single(&image).unwrap(),
            expected,
            "{options:?}"
        );
        write(&file, &image);
        assert_eq!(
            rig.fw_printenv(&config, &[]).unwrap(),
            listing(expected.iter())
        );
    }
    let copy = rig.mkenvimage(&["-r"], input).unwrap();
    let (env, active) = uboot::read_redundant(&copy, &copy).unwrap();
    assert_eq!((env, active.index(), active.flags()), (expected, 0, 1));
}

#[test]
fn uboot_filled_to_the_last_byte() {
    let rig = Uboot::new();
    let file = rig.path("uboot.env");
    let config = rig.single_config(&file);
    let available = SIZE - uboot::SINGLE_HEADER_LEN;
    let mut env = uboot_env(ODD);
    // mkenvimage input cannot end a value with `\` (that is its embedded-newline escape).
    env.set("backslash", "C:\\dir\\ inner only").unwrap();
    // "zz_fill=" + value + "\0" takes the rest (sorted last, so it ends the data).
    let value_len = available - env.encoded_len() - "zz_fill=".len() - 1;
    env.set("zz_fill", &"f".repeat(value_len)).unwrap();
    assert_eq!(env.encoded_len(), available);
    let image = uboot::to_single(&env, SIZE, Padding::Erased).unwrap();
    assert_eq!(&image[SIZE - 3..], b"f\0\0");
    write(&file, &image);
    assert_eq!(rig.fw_printenv(&config, &[]).unwrap(), listing(env.iter()));
    // fw_setenv agrees it is full: adding a variable fails and writes nothing.
    assert!(rig.fw_setenv(&config, &["z", "1"]).is_err());
    assert!(read(&file) == image, "fw_setenv changed a full environment");
    // One byte more does not fit, and the error names the sizes.
    let mut over = env.clone();
    over.set("zz_fill", &"f".repeat(value_len + 1)).unwrap();
    assert_eq!(
        uboot::to_single(&over, SIZE, Padding::Erased),
        Err(Error::DoesNotFit {
            needed: available + 1,
            available,
            size: SIZE
        })
    );
    // mkenvimage fills it to the same last byte, and we read that too.
    let input: String = env
        .iter()
        .map(|(n, v)| format!("{n}={}\n", v.replace('\n', "\\\n")))
        .collect();
    let made = rig.mkenvimage(&[], &input).unwrap();
    let first_difference = made.iter().zip(&image).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "mkenvimage and we differ");
    assert_eq!(uboot::Env::from_single(&made).unwrap(), env);
}

#[test]
fn uboot_crc_covers_the_padding() {
    let rig = Uboot::new();
    let file = rig.path("uboot.env");
    let config = rig.single_config(&file);
    let image = uboot::to_single(&uboot_env(ODD), SIZE, Padding::Erased).unwrap();
    for at in [10, SIZE - 1] {
        let mut bad = image.clone();
        bad[at] ^= 0x01;
        write(&file, &bad);
        assert!(rig.fw_printenv(&config, &[]).is_err(), "byte {at}");
        assert!(
            matches!(uboot::Env::from_single(&bad), Err(Error::BadCrc { .. })),
            "byte {at}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// U-Boot, redundant

#[derive(Debug, Clone, Copy)]
enum CopyState {
    Valid(u8),
    BadCrc(u8),
}

/// One copy with `who=<who>`, flags as given, the CRC broken for `CopyState::BadCrc`.
fn redundant_copy(copy: CopyState, who: &str) -> Vec<u8> {
    let env = uboot_env(&[("who", who), ("shared", "same = in both")]);
    let (flags, valid) = match copy {
        CopyState::Valid(flags) => (flags, true),
        CopyState::BadCrc(flags) => (flags, false),
    };
    let mut bytes = uboot::to_redundant_copy(&env, SIZE, flags, Padding::Zero).unwrap();
    if !valid {
        bytes[SIZE - 1] ^= 0xff;
    }
    bytes
}

/// The selection cases of the notes; `Some(index)` is the copy U-Boot and libubootenv pick.
const SELECTION: &[(CopyState, CopyState, Option<usize>)] = &[
    (CopyState::Valid(1), CopyState::Valid(2), Some(1)),
    (CopyState::Valid(2), CopyState::Valid(1), Some(0)),
    (CopyState::Valid(5), CopyState::Valid(5), Some(0)),
    (CopyState::Valid(0xff), CopyState::Valid(0), Some(1)),
    (CopyState::Valid(0), CopyState::Valid(0xff), Some(0)),
    (CopyState::Valid(0xfe), CopyState::Valid(0xff), Some(1)),
    (CopyState::Valid(0xfe), CopyState::Valid(0), Some(0)),
    (CopyState::Valid(3), CopyState::BadCrc(9), Some(0)),
    (CopyState::BadCrc(9), CopyState::Valid(3), Some(1)),
    (CopyState::BadCrc(1), CopyState::BadCrc(2), None),
];

#[test]
fn uboot_redundant_selection_matches_fw_printenv() {
    let rig = Uboot::new();
    let (file0, file1) = (rig.path("env0"), rig.path("env1"));
    let config = rig.redundant_config(&file0, &file1);
    for &(c0, c1, expected) in SELECTION {
        let (copy0, copy1) = (redundant_copy(c0, "c0"), redundant_copy(c1, "c1"));
        write(&file0, &copy0);
        write(&file1, &copy1);
        let tool = rig.fw_printenv(&config, &[]);
        match (uboot::read_redundant(&copy0, &copy1), expected) {
            (Ok((env, active)), Some(index)) => {
                assert_eq!(active.index(), index, "{c0:?} {c1:?}");
                assert_eq!(env.get("who"), Some(["c0", "c1"][index]));
                assert_eq!(tool, Ok(listing(env.iter())), "{c0:?} {c1:?}");
            }
            (Err(Error::NoValidCopy { .. }), None) => {
                assert!(tool.is_err(), "{c0:?} {c1:?}: fw_printenv read {tool:?}");
            }
            (ours, _) => panic!("{c0:?} {c1:?}: we read {ours:?}, fw_printenv {tool:?}"),
        }
    }
}

#[test]
fn uboot_redundant_next_write_matches_fw_setenv() {
    let rig = Uboot::new();
    let (file0, file1) = (rig.path("env0"), rig.path("env1"));
    let config = rig.redundant_config(&file0, &file1);
    for &(c0, c1, expected) in SELECTION {
        let before = [redundant_copy(c0, "c0"), redundant_copy(c1, "c1")];
        write(&file0, &before[0]);
        write(&file1, &before[1]);
        let tool = rig.fw_setenv(&config, &["who", "written"]);
        let after = [read(&file0), read(&file1)];
        let Some(index) = expected else {
            // Both copies bad: fw_setenv refuses and writes nothing; we cannot even select.
            assert!(tool.is_err(), "{c0:?} {c1:?}");
            assert!(after == before, "{c0:?} {c1:?}: fw_setenv wrote");
            assert!(uboot::select_redundant(&before[0], &before[1]).is_err());
            continue;
        };
        tool.unwrap();
        let written = 1 - index;
        assert!(
            after[index] == before[index],
            "{c0:?} {c1:?}: active copy touched"
        );
        assert!(
            after[written] != before[written],
            "{c0:?} {c1:?}: nothing written"
        );

        let (mut env, active) = uboot::read_redundant(&before[0], &before[1]).unwrap();
        env.set("who", "written").unwrap();
        let (which, ours) = uboot::next_redundant_write(&env, SIZE, active).unwrap();
        assert_eq!(which, written, "{c0:?} {c1:?}");
        // Same flags and entries; only the tail after the terminator may differ (libubootenv
        // leaves stale heap bytes there), and with it the CRC.
        let entries = uboot::REDUNDANT_HEADER_LEN + env.encoded_len();
        assert!(
            ours[4..entries] == after[written][4..entries],
            "{c0:?} {c1:?}: flags or entries differ"
        );
        let (tool_env, tool_active) = uboot::read_redundant(&after[0], &after[1]).unwrap();
        assert_eq!((tool_env, tool_active.index()), (env, written));
    }
}

/// Alternating writers across the flags wrap-around (0xfd, 0xfe, 0xff, 0x00, 0x01, ...), starting
/// from one valid copy and one blank copy.
#[test]
fn uboot_redundant_alternating_writers_across_the_wrap() {
    let rig = Uboot::new();
    let (file0, file1) = (rig.path("env0"), rig.path("env1"));
    let config = rig.redundant_config(&file0, &file1);
    write(&file0, &redundant_copy(CopyState::Valid(0xfd), "start"));
    write(&file1, &vec![0u8; SIZE]);
    for step in 1..=6u8 {
        let value = step.to_string();
        if step % 2 == 1 {
            let (mut env, active) = uboot::read_redundant(&read(&file0), &read(&file1)).unwrap();
            env.set("who", &value).unwrap();
            let (which, bytes) = uboot::next_redundant_write(&env, SIZE, active).unwrap();
            write([&file0, &file1][which], &bytes);
        } else {
            rig.fw_setenv(&config, &["who", &value]).unwrap();
        }
        let (env, active) = uboot::read_redundant(&read(&file0), &read(&file1)).unwrap();
        assert_eq!(env.get("who"), Some(value.as_str()), "step {step}");
        assert_eq!(active.index(), usize::from(step % 2 == 1), "step {step}");
        assert_eq!(active.flags(), 0xfd_u8.wrapping_add(step), "step {step}");
        assert_eq!(rig.fw_printenv(&config, &[]).unwrap(), listing(env.iter()));
    }
}

// ---------------------------------------------------------------------------------------------
// fw_env.config

/// Each config must place the environment where fw_printenv finds it (a wrong offset or size
/// fails the CRC), and our parser must say the same offset and size.
#[test]
fn fw_env_config_numbers_mean_what_libubootenv_reads() {
    let rig = Uboot::new();
    let file = rig.path("disk.img");
    let env = uboot_env(ODD);
    let mut disk = vec![0u8; 1000];
    disk.extend_from_slice(&uboot::to_single(&env, SIZE, Padding::Zero).unwrap());
    disk.resize(0x8000, 0);
    write(&file, &disk);
    let f = file.display();
    for text in [
        format!("# comment\n\n{f} 1000 4000\n"),
        format!("  # indented comment\n{f}\t0x3e8\t0x4000 # trailing comment\n"),
        format!("{f} 01750 4000 4000\n"),
        format!("{f} 0X3E8 0x4000 0x4000 1\n"),
    ] {
        let config = rig.config("fw_env.config", &text);
        let locations = uboot::parse_fw_env_config(&text).unwrap();
        assert_eq!(locations.len(), 1, "{text}");
        assert_eq!(
            (locations[0].offset, locations[0].size),
            (1000, 0x4000),
            "{text}"
        );
        assert_eq!(locations[0].device, file);
        assert_eq!(
            rig.fw_printenv(&config, &[]),
            Ok(listing(env.iter())),
            "{text}"
        );
    }
    // A size that looks decimal is hex for libubootenv, and for us.
    let text = format!("{f} 1000 16384\n");
    let config = rig.config("fw_env.config", &text);
    assert_eq!(uboot::parse_fw_env_config(&text).unwrap()[0].size, 0x16384);
    assert!(rig.fw_printenv(&config, &[]).is_err());

    // Two lines: a redundant environment, here both copies in one file.
    let mut disk = redundant_copy(CopyState::Valid(1), "c0");
    disk.extend_from_slice(&redundant_copy(CopyState::Valid(2), "c1"));
    write(&file, &disk);
    let text = format!("{f} 0 0x4000\n{f} 0x4000 0x4000\n");
    let config = rig.config("fw_env.config", &text);
    let locations = uboot::parse_fw_env_config(&text).unwrap();
    let copies: Vec<&[u8]> = locations
        .iter()
        .map(|l| &disk[l.offset as usize..(l.offset + l.size) as usize])
        .collect();
    let (ours, active) = uboot::read_redundant(copies[0], copies[1]).unwrap();
    assert_eq!(active.index(), 1);
    assert_eq!(rig.fw_printenv(&config, &[]), Ok(listing(ours.iter())));
}
