//! The GRUB environment block: exactly 1024 bytes, `# GRUB Environment Block\n`, then
//! `name=value\n` lines, then `#` padding. In values `\` is written `\\` and a newline `\` + newline.
//! Lines starting with `#` are comments. Byte-compatible with `grub-editenv`.

use crate::Error;
use std::collections::BTreeMap;

pub const BLOCK_SIZE: usize = 1024;
pub const HEADER: &str = "# GRUB Environment Block\n";

/// A GRUB environment. Variables keep their order of first appearance, like `grub-editenv`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Env, Error> {
        if bytes.len() != BLOCK_SIZE {
            return Err(Error::GrubSize(bytes.len()));
        }
        if !bytes.starts_with(HEADER.as_bytes()) {
            return Err(Error::GrubHeader);
        }
        let text = &bytes[HEADER.len()..];
        let mut env = Env::new();
        let mut i = 0;
        while i < text.len() {
            // Comment or padding line.
            if text[i] == b'#' {
                match text[i..].iter().position(|b| *b == b'\n') {
                    Some(n) => i += n + 1,
                    None => break,
                }
                continue;
            }
            if text[i] == b'\n' {
                i += 1;
                continue;
            }
            let mut line = Vec::new();
            let mut ended = false;
            while i < text.len() {
                match text[i] {
                    b'\\' if i + 1 < text.len() => {
                        line.push(text[i + 1]);
                        i += 2;
                    }
                    b'\n' => {
                        i += 1;
                        ended = true;
                        break;
                    }
                    b => {
                        line.push(b);
                        i += 1;
                    }
                }
            }
            if !ended {
                return Err(Error::GrubSyntax("unterminated last line".into()));
            }
            let line =
                String::from_utf8(line).map_err(|_| Error::GrubSyntax("not UTF-8".into()))?;
            let Some((name, value)) = line.split_once('=') else {
                return Err(Error::GrubSyntax(format!("line without '=': {line:?}")));
            };
            env.set(name, value)?;
        }
        Ok(env)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = HEADER.as_bytes().to_vec();
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

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a variable (added at the end if new). Names must be non-empty without `=`, newline or
    /// a leading `#`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        if name.is_empty() || name.contains(['=', '\n', '\\']) || name.starts_with('#') {
            return Err(Error::BadName(name.into()));
        }
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.into(),
            None => self.vars.push((name.into(), value.into())),
        }
        Ok(())
    }

    pub fn remove(&mut self, name: &str) {
        self.vars.retain(|(n, _)| n != name);
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.vars.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_odd_values() {
        let mut env = Env::new();
        env.set("slot", "a").unwrap();
        env.set("odd", "x=y \\z\nline2").unwrap();
        env.set("empty", "").unwrap();
        let bytes = env.to_bytes().unwrap();
        assert_eq!(bytes.len(), 1024);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("odd=x=y \\\\z\\\nline2\n"), "{text}");
        assert_eq!(Env::from_bytes(&bytes).unwrap(), env);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Env::from_bytes(&[b'#'; 1000]),
            Err(Error::GrubSize(1000))
        ));
        assert!(matches!(
            Env::from_bytes(&[b'#'; 1024]),
            Err(Error::GrubHeader)
        ));
        let mut env = Env::new();
        env.set("big", &"v".repeat(1000)).unwrap();
        assert!(matches!(env.to_bytes(), Err(Error::GrubTooLarge { .. })));
        assert!(env.set("a=b", "c").is_err());
    }
}
