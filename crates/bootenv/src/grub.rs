//! The GRUB environment block, byte-compatible with `grub-editenv` and GRUB's `load_env`/`save_env`.
//!
//! Exactly [`BLOCK_SIZE`] (1024) bytes: the [`HEADER`] line `# GRUB Environment Block`, then one
//! `name=value` line per variable, then `#` padding to the end. In values `\` is written `\\` and
//! a newline `\` + newline; `=` is kept as is (a line splits at its first `=`). Lines starting with
//! `#` are comments. Reading follows GRUB's `grub_envblk_iterate`: a name is everything before the
//! first `=`, and in a value (and a comment) a backslash takes the next byte literally.
//!
//! Unlike U-Boot, GRUB keeps empty values (`name=`). Variables keep their order: new ones are
//! appended, changed ones stay in place, as `grub-editenv set` does.
//!
//! Two copies ([`current_copy`], [`next_copy_write`]): the boot contract keeps the environment in
//! two blocks written alternately, each framed by a sequence number (its first and its last
//! variable), because a block has no checksum to tell a torn write (docs/bootenv.md).
//!
//! Not here: I/O (GRUB's `save_env` rewrites the file's sectors in place and never resizes it, so
//! the file must stay 1024 bytes), blocks of other sizes (rejected), and keeping comment lines (a
//! block written by [`Env::to_bytes`] has only the header, the variables and the padding).

use crate::Error;

/// Size of a GRUB environment block in bytes; GRUB requires exactly this.
pub const BLOCK_SIZE: usize = 1024;
/// First line of every block.
pub const HEADER: &str = "# GRUB Environment Block\n";

/// A GRUB environment, in block order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// An empty environment.
    pub fn new() -> Env {
        Env::default()
    }

    /// Decodes a 1024-byte block. A variable that appears twice keeps its first position and its
    /// last value (the value GRUB's `load_env` ends up with).
    pub fn from_bytes(bytes: &[u8]) -> Result<Env, Error> {
        if bytes.len() != BLOCK_SIZE {
            return Err(Error::GrubSize { size: bytes.len() });
        }
        if !bytes.starts_with(HEADER.as_bytes()) {
            return Err(Error::GrubHeader);
        }
        let mut env = Env::new();
        let mut pos = HEADER.len();
        while pos < bytes.len() {
            if bytes[pos] == b'#' {
                pos = skip_comment(bytes, pos);
                continue;
            }
            let (name, value, next) = parse_line(bytes, pos)?;
            match env.vars.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => *v = value,
                None => env.vars.push((name, value)),
            }
            pos = next;
        }
        Ok(env)
    }

    /// Encodes the 1024-byte block: header, `name=value` lines, `#` padding. Fails with
    /// [`Error::GrubTooLarge`] (naming the bytes needed) when the variables do not fit.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(BLOCK_SIZE);
        out.extend_from_slice(HEADER.as_bytes());
        for (name, value) in &self.vars {
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            for b in value.bytes() {
                if b == b'\\' || b == b'\n' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'\n');
        }
        if out.len() > BLOCK_SIZE {
            return Err(Error::GrubTooLarge { needed: out.len() });
        }
        out.resize(BLOCK_SIZE, b'#');
        Ok(out)
    }

    /// The value of `name`, if set (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value` (empty values are kept), in place if it exists, else at the end.
    /// Names must be non-empty, must not start with `#` (that would be a comment) and must not
    /// contain `=`, newline or NUL; values must not contain NUL.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let bad_name = if name.is_empty() {
            Some("empty")
        } else if name.starts_with('#') {
            Some("starts with '#' (a comment line)")
        } else if name.contains('=') {
            Some("contains '='")
        } else if name.contains('\n') {
            Some("contains a newline")
        } else if name.contains('\0') {
            Some("contains a NUL byte")
        } else {
            None
        };
        if let Some(reason) = bad_name {
            return Err(Error::BadName {
                name: name.into(),
                reason,
            });
        }
        if value.contains('\0') {
            return Err(Error::BadValue {
                name: name.into(),
                reason: "contains a NUL byte",
            });
        }
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.into(),
            None => self.vars.push((name.into(), value.into())),
        }
        Ok(())
    }

    /// Removes `name`, returning its value if it was set.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let index = self.vars.iter().position(|(n, _)| n == name)?;
        Some(self.vars.remove(index).1)
    }

    /// The variables in block order.
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
}

/// GRUB's `find_next_line`: the start of the next line, a backslash taking the next byte.
/// The first variable of each copy of a two-copy environment: the copy's sequence number.
pub const VAR_SEQ: &str = "rustupdate_seq";
/// The last variable of each copy: the sequence number again. GRUB's block has no checksum; a
/// copy whose write was cut has the new number in one place and the old one (or none) in the
/// other.
pub const VAR_SEQ_END: &str = "rustupdate_seq_end";
/// Sequence numbers cycle 0 -> 1 -> 2 -> 0 (GRUB script has no arithmetic; three values tell
/// "one step ahead" from "one step behind").
pub const SEQ_CYCLE: u8 = 3;

/// Which copy of a two-copy environment is current, and its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentCopy {
    pub index: usize,
    pub seq: u8,
}

/// The sequence number of a complete copy: `rustupdate_seq` and `rustupdate_seq_end` both present,
/// equal and in `0..SEQ_CYCLE` (the rule the boot script applies).
pub fn copy_seq(env: &Env) -> Option<u8> {
    let seq = env.get(VAR_SEQ)?;
    if env.get(VAR_SEQ_END)? != seq {
        return None;
    }
    seq.parse::<u8>()
        .ok()
        .filter(|n| *n < SEQ_CYCLE && seq.len() == 1)
}

/// The current copy of two (`None`: missing or not a block): the complete one; of two complete
/// copies the one a step ahead (copy 1 when its number is copy 0's + 1, modulo 3; otherwise copy
/// 0). `None` when neither copy is complete.
pub fn current_copy(copy0: Option<&Env>, copy1: Option<&Env>) -> Option<CurrentCopy> {
    let seq0 = copy0.and_then(copy_seq);
    let seq1 = copy1.and_then(copy_seq);
    match (seq0, seq1) {
        (None, None) => None,
        (Some(seq), None) => Some(CurrentCopy { index: 0, seq }),
        (None, Some(seq)) => Some(CurrentCopy { index: 1, seq }),
        (Some(s0), Some(s1)) if s1 == (s0 + 1) % SEQ_CYCLE => {
            Some(CurrentCopy { index: 1, seq: s1 })
        }
        (Some(s0), Some(_)) => Some(CurrentCopy { index: 0, seq: s0 }),
    }
}

/// The next write of a two-copy environment: the index of the copy to write (the one not
/// current; copy 0 when neither is) and its block, `vars` framed by the next sequence number as
/// first and last variable (any sequence variables in `vars` are replaced).
pub fn next_copy_write(
    vars: &Env,
    current: Option<CurrentCopy>,
) -> Result<(usize, Vec<u8>), Error> {
    let (index, seq) = match current {
        Some(c) => (1 - c.index, (c.seq + 1) % SEQ_CYCLE),
        None => (0, 0),
    };
    let seq = seq.to_string();
    let mut block = Env::new();
    block.set(VAR_SEQ, &seq)?;
    for (name, value) in vars
        .iter()
        .filter(|(n, _)| *n != VAR_SEQ && *n != VAR_SEQ_END)
    {
        block.set(name, value)?;
    }
    block.set(VAR_SEQ_END, &seq)?;
    Ok((index, block.to_bytes()?))
}

fn skip_comment(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() {
        match bytes[pos] {
            b'\\' => pos += 2,
            b'\n' => break,
            _ => pos += 1,
        }
    }
    pos + 1
}

/// One `name=value` line starting at `start`: the name, the unescaped value and the start of the
/// next line.
fn parse_line(bytes: &[u8], start: usize) -> Result<(String, String, usize), Error> {
    let syntax = |offset, problem| Error::GrubSyntax { offset, problem };
    let name_len = bytes[start..]
        .iter()
        .position(|b| matches!(b, b'=' | b'\n' | 0))
        .ok_or(syntax(start, "line without '=' at the end of the block"))?;
    let eq = start + name_len;
    if bytes[eq] != b'=' {
        return Err(syntax(start, "line without '='"));
    }
    let mut value = Vec::new();
    let mut pos = eq + 1;
    loop {
        match bytes.get(pos) {
            None => return Err(syntax(start, "last line has no newline")),
            Some(b'\n') => break,
            Some(0) => return Err(syntax(pos, "NUL byte in a value")),
            Some(b'\\') => match bytes.get(pos + 1) {
                None => return Err(syntax(start, "last line has no newline")),
                Some(0) => return Err(syntax(pos + 1, "NUL byte in a value")),
                Some(b) => {
                    value.push(*b);
                    pos += 2;
                }
            },
            Some(b) => {
                value.push(*b);
                pos += 1;
            }
        }
    }
    let text =
        |raw: Vec<u8>, offset| String::from_utf8(raw).map_err(|_| syntax(offset, "not UTF-8"));
    let name = text(bytes[start..eq].to_vec(), start)?;
    let value = text(value, eq + 1)?;
    Ok((name, value, pos + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> Env {
        let mut env = Env::new();
        for (name, value) in pairs {
            env.set(name, value).unwrap();
        }
        env
    }

    /// A block with `body` after the header, `#`-padded.
    fn block(body: &str) -> Vec<u8> {
        let mut out = format!("{HEADER}{body}").into_bytes();
        out.resize(BLOCK_SIZE, b'#');
        out
    }

    #[test]
    fn grub_editenv_fixture() {
        let fixture = include_bytes!("../tests/fixtures/grubenv");
        let env = Env::from_bytes(fixture).unwrap();
        let expected = env_of(&[
            ("rustupdate_slot", "b"),
            ("equals", "a=b=c"),
            ("backslash", "x\\y\\"),
            ("multiline", "line1\nline2"),
            ("empty", ""),
            ("spaces", "  two  words  "),
            ("hash", "#not a comment"),
            ("unicode", "grüße"),
        ]);
        assert_eq!(env, expected);
        // grub-editenv's block is ours plus its warning comment line: same bytes without it.
        let text = String::from_utf8(fixture.to_vec()).unwrap();
        let comment = "# WARNING: Do not edit this file by tools other than grub-editenv!!!\n";
        assert!(text.contains(comment));
        let mut without = text.replacen(comment, "", 1).into_bytes();
        without.resize(BLOCK_SIZE, b'#');
        assert_eq!(env.to_bytes().unwrap(), without);
    }

    #[test]
    fn escaping_round_trip() {
        let env = env_of(&[
            ("slot", "a"),
            ("odd", "x=y \\z\nline2"),
            ("empty", ""),
            ("trailing", "ends with \\"),
        ]);
        let bytes = env.to_bytes().unwrap();
        assert_eq!(
            bytes,
            block("slot=a\nodd=x=y \\\\z\\\nline2\nempty=\ntrailing=ends with \\\\\n")
        );
        assert_eq!(Env::from_bytes(&bytes).unwrap(), env);
    }

    #[test]
    fn reading_follows_grub() {
        // Comments (also escaped newlines inside them), a backslash before any byte, `=` in names'
        // values, duplicates (first position, last value), an empty name.
        let env = Env::from_bytes(&block(
            "# c1\n#c2 \\\nstill comment\na=1\nb=\\q\\=\na=2\n=z\nn\\m=v\n",
        ))
        .unwrap();
        assert_eq!(
            env.iter().collect::<Vec<_>>(),
            [("a", "2"), ("b", "q="), ("", "z"), ("n\\m", "v")]
        );
        // Filled to the last byte: no padding at all.
        let value = "v".repeat(BLOCK_SIZE - HEADER.len() - 3);
        let mut full = format!("{HEADER}a={value}\n").into_bytes();
        assert_eq!(full.len(), BLOCK_SIZE);
        assert_eq!(Env::from_bytes(&full).unwrap().get("a"), Some(&value[..]));
        // The same without the final newline is broken.
        full[BLOCK_SIZE - 1] = b'v';
        assert!(matches!(
            Env::from_bytes(&full),
            Err(Error::GrubSyntax { offset, .. }) if offset == HEADER.len()
        ));
    }

    #[test]
    fn malformed_blocks() {
        let syntax = |body: &str| match Env::from_bytes(&block(body)) {
            Err(Error::GrubSyntax { offset, problem }) => (offset, problem),
            other => panic!("{body:?}: {other:?}"),
        };
        assert_eq!(syntax("a=1\njunk\nb=2\n"), (29, "line without '='"));
        assert_eq!(syntax("a=1\n\nb=2\n"), (29, "line without '='"));
        assert_eq!(syntax("a=x\0y\n"), (28, "NUL byte in a value"));
        assert_eq!(syntax("a=\u{0}\n").1, "NUL byte in a value");
        let mut bad_utf8 = block("a=\u{e9}\n");
        bad_utf8[HEADER.len() + 2] = 0xff;
        assert!(matches!(
            Env::from_bytes(&bad_utf8),
            Err(Error::GrubSyntax {
                problem: "not UTF-8",
                ..
            })
        ));
        assert_eq!(
            Env::from_bytes(&[b'#'; 1000]),
            Err(Error::GrubSize { size: 1000 })
        );
        assert_eq!(
            Env::from_bytes(&[b'#'; 2048]),
            Err(Error::GrubSize { size: 2048 })
        );
        assert_eq!(Env::from_bytes(&[b'#'; BLOCK_SIZE]), Err(Error::GrubHeader));
    }

    #[test]
    fn too_large_names_the_overflow() {
        let fits = env_of(&[("a", &"v".repeat(BLOCK_SIZE - HEADER.len() - 3))]);
        assert_eq!(fits.to_bytes().unwrap().last(), Some(&b'\n'));
        // One byte more; an escaped backslash counts twice.
        let over = env_of(&[
            ("a", &"v".repeat(BLOCK_SIZE - HEADER.len() - 3 - 1)),
            ("b", ""),
        ]);
        let err = over.to_bytes().unwrap_err();
        assert_eq!(err, Error::GrubTooLarge { needed: 1026 });
        assert!(err.to_string().contains("2 more than"), "{err}");
        let escaped = env_of(&[("a", &"\\".repeat(500))]);
        assert_eq!(
            escaped.to_bytes(),
            Err(Error::GrubTooLarge {
                needed: HEADER.len() + 3 + 1000
            })
        );
    }

    #[test]
    fn set_get_remove() {
        let mut env = env_of(&[("a", "1"), ("b", "2")]);
        env.set("a", "3").unwrap();
        env.set("c", "").unwrap();
        assert_eq!(
            env.iter().collect::<Vec<_>>(),
            [("a", "3"), ("b", "2"), ("c", "")]
        );
        assert_eq!(env.remove("b").as_deref(), Some("2"));
        assert_eq!(env.remove("b"), None);
        assert_eq!(env.get("c"), Some(""));
        for bad in ["", "#x", "a=b", "a\nb", "a\0b"] {
            assert!(
                matches!(env.set(bad, "1"), Err(Error::BadName { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(env.set("a", "x\0"), Err(Error::BadValue { .. })));
    }

    fn copy_with(seq: &str, seq_end: &str, slot: &str) -> Env {
        env_of(&[
            (VAR_SEQ, seq),
            ("rustupdate_slot", slot),
            (VAR_SEQ_END, seq_end),
        ])
    }

    #[test]
    fn a_copy_is_complete_when_both_numbers_match() {
        assert_eq!(copy_seq(&copy_with("2", "2", "a")), Some(2));
        for (seq, end) in [("1", "2"), ("3", "3"), ("01", "01"), ("", ""), ("x", "x")] {
            assert_eq!(copy_seq(&copy_with(seq, end, "a")), None, "{seq:?} {end:?}");
        }
        assert_eq!(copy_seq(&env_of(&[(VAR_SEQ, "1")])), None, "no end marker");
    }

    #[test]
    fn the_copy_a_step_ahead_is_current() {
        let c = |s: &str| copy_with(s, s, s);
        let current =
            |a: Option<&Env>, b: Option<&Env>| current_copy(a, b).map(|c| (c.index, c.seq));
        for (s0, s1, want) in [
            ("0", "1", (1, 1)),
            ("1", "2", (1, 2)),
            ("2", "0", (1, 0)),
            ("1", "0", (0, 1)),
            ("2", "1", (0, 2)),
            ("0", "2", (0, 0)),
            ("1", "1", (0, 1)),
        ] {
            assert_eq!(current(Some(&c(s0)), Some(&c(s1))), Some(want), "{s0} {s1}");
        }
        let torn = copy_with("2", "1", "b");
        assert_eq!(current(Some(&c("1")), Some(&torn)), Some((0, 1)));
        assert_eq!(current(Some(&torn), Some(&c("0"))), Some((1, 0)));
        assert_eq!(current(None, Some(&c("2"))), Some((1, 2)));
        assert_eq!(current(Some(&torn), None), None);
    }

    #[test]
    fn each_write_goes_to_the_other_copy_with_the_next_number() {
        let vars = env_of(&[
            ("rustupdate_slot", "b"),
            (VAR_SEQ, "stale"),
            ("bootcount", "1"),
        ]);
        let (index, bytes) = next_copy_write(&vars, None).unwrap();
        assert_eq!(index, 0);
        let written = Env::from_bytes(&bytes).unwrap();
        let names: Vec<_> = written.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [VAR_SEQ, "rustupdate_slot", "bootcount", VAR_SEQ_END]
        );
        assert_eq!(copy_seq(&written), Some(0));

        // Alternating writes: every new copy is current, the other one stays intact.
        let mut copies: [Option<Env>; 2] = [Some(written), None];
        for round in 0..7 {
            let current = current_copy(copies[0].as_ref(), copies[1].as_ref());
            let (index, bytes) = next_copy_write(&vars, current).unwrap();
            assert_eq!(Some(1 - index), current.map(|c| c.index), "round {round}");
            copies[index] = Some(Env::from_bytes(&bytes).unwrap());
            let now = current_copy(copies[0].as_ref(), copies[1].as_ref()).unwrap();
            assert_eq!(now.index, index, "round {round}");
        }
    }
}
