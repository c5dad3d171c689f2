//! GRUB: the environment block, against `grub-editenv`.

use crate::{listing, read, run, tool, write};
use rustupdate_bootenv::{Error, grub};
use std::path::PathBuf;
use std::process::Command;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// GRUB

struct Grub {
    dir: TempDir,
    grub_editenv: PathBuf,
}

impl Grub {
    fn new() -> Grub {
        Grub {
            dir: tempfile::tempdir().expect("temp dir"),
            grub_editenv: tool("grub-editenv", "grub-common"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("grubenv")
    }

    fn grub_editenv(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new(&self.grub_editenv).arg(self.path()).args(args))
    }
}

const GRUB_ODD: &[(&str, &str)] = &[
    ("rustupdate_slot", "a"),
    ("equals", "a=b=c="),
    ("backslash", "x\\y\\"),
    ("escape", "\\n is not a newline"),
    ("newline", "l1\nl2\n"),
    ("empty", ""),
    ("spaces", "  two  words  "),
    ("hash", "#not a comment"),
    ("tab", "\tx"),
    ("unicode", "grüße ✓"),
];

fn grub_env(pairs: &[(&str, &str)]) -> grub::Env {
    let mut env = grub::Env::new();
    for (name, value) in pairs {
        env.set(name, value).expect("valid variable");
    }
    env
}

#[test]
fn grub_block_written_by_us_is_read_and_edited_by_grub_editenv() {
    let rig = Grub::new();
    let env = grub_env(GRUB_ODD);
    write(&rig.path(), &env.to_bytes().unwrap());
    assert_eq!(rig.grub_editenv(&["list"]).unwrap(), listing(env.iter()));
    // grub-editenv edits our block in place, and we read its edits.
    rig.grub_editenv(&["set", "rustupdate_slot=b", "added=x\\y"])
        .unwrap();
    rig.grub_editenv(&["unset", "empty"]).unwrap();
    let block = read(&rig.path());
    assert_eq!(block.len(), grub::BLOCK_SIZE);
    let mut expected = env;
    expected.set("rustupdate_slot", "b").unwrap();
    expected.set("added", "x\\y").unwrap();
    expected.remove("empty");
    assert_eq!(grub::Env::from_bytes(&block).unwrap(), expected);
    assert_eq!(
        rig.grub_editenv(&["list"]).unwrap(),
        listing(expected.iter())
    );
}

#[test]
fn grub_block_written_by_grub_editenv_is_read_by_us() {
    let rig = Grub::new();
    rig.grub_editenv(&["create"]).unwrap();
    let mut args = vec![
        "set".to_string(),
        "gone=1".to_string(),
        "n\\m=name with a backslash".into(),
    ];
    args.extend(GRUB_ODD.iter().map(|(n, v)| format!("{n}={v}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rig.grub_editenv(&args).unwrap();
    rig.grub_editenv(&["unset", "gone"]).unwrap();
    rig.grub_editenv(&["set", "rustupdate_slot=b"]).unwrap();

    let env = grub::Env::from_bytes(&read(&rig.path())).unwrap();
    let mut expected = grub_env(&[("n\\m", "name with a backslash")]);
    for (name, value) in GRUB_ODD {
        expected.set(name, value).unwrap();
    }
    expected.set("rustupdate_slot", "b").unwrap();
    assert_eq!(env, expected);
    assert_eq!(listing(env.iter()), rig.grub_editenv(&["list"]).unwrap());
}

#[test]
fn grub_block_filled_to_the_last_byte() {
    let rig = Grub::new();
    let mut env = grub_env(GRUB_ODD);
    let used = env
        .to_bytes()
        .unwrap()
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    // "fill=" + value + "\n" takes the rest.
    let value_len = grub::BLOCK_SIZE - used - "fill=".len() - 1;
    env.set("fill", &"f".repeat(value_len)).unwrap();
    let block = env.to_bytes().unwrap();
    assert_eq!(block.last(), Some(&b'\n'), "no padding left");
    write(&rig.path(), &block);
    assert_eq!(rig.grub_editenv(&["list"]).unwrap(), listing(env.iter()));
    // grub-editenv agrees it is full: adding a variable fails and writes nothing.
    assert!(rig.grub_editenv(&["set", "z=1"]).is_err());
    assert!(
        read(&rig.path()) == block,
        "grub-editenv changed a full block"
    );
    // One byte more does not fit, and the error names the overflow.
    env.set("fill", &"f".repeat(value_len + 1)).unwrap();
    let err = env.to_bytes().unwrap_err();
    assert_eq!(err, Error::GrubTooLarge { needed: 1025 });
    assert!(
        err.to_string().contains("1 more than the 1024-byte block"),
        "{err}"
    );
}
