//! The state file `<data-dir>/state.json`, replaced atomically. A corrupt file is moved aside to
//! `state.json.corrupt` and reported, never silently overwritten.

use super::replace_file;
use rustupdate_core::state::{Loaded, STATE_FORMAT};
use rustupdate_core::{Error, State, StateStore};
use std::path::PathBuf;

pub const STATE_FILE: &str = "state.json";
/// A state file is small; anything bigger is corrupt, and is not read into memory.
const MAX_STATE_LEN: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct StateFile {
    pub dir: PathBuf,
}

impl StateFile {
    fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }
}

impl StateFile {
    /// The state as stored, read only: a missing file is the default state; an unreadable one is
    /// an error and stays where it is (for `show-artifact`, which changes nothing).
    pub fn peek(&self) -> Result<State, Error> {
        let path = self.path();
        let bad = |err: String| Error::adapter("state file", format!("{}: {err}", path.display()));
        match std::fs::read(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(err) => Err(bad(err.to_string())),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| bad(err.to_string())),
        }
    }
}

impl StateStore for StateFile {
    fn load(&mut self) -> Result<Loaded, Error> {
        let path = self.path();
        let problem = match std::fs::metadata(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    state: State::default(),
                    recovered_from: None,
                });
            }
            Err(err) => {
                return Err(Error::adapter(
                    "state file",
                    format!("{}: {err}", path.display()),
                ));
            }
            Ok(meta) if meta.len() > MAX_STATE_LEN => format!("{} bytes is too large", meta.len()),
            Ok(_) => {
                let bytes = std::fs::read(&path).map_err(|err| {
                    Error::adapter("state file", format!("{}: {err}", path.display()))
                })?;
                match serde_json::from_slice::<State>(&bytes) {
                    Ok(state) if state.format == STATE_FORMAT => {
                        return Ok(Loaded {
                            state,
                            recovered_from: None,
                        });
                    }
                    Ok(state) => format!("unknown state format {}", state.format),
                    Err(err) => err.to_string(),
                }
            }
        };
        let aside = self.dir.join(format!("{STATE_FILE}.corrupt"));
        std::fs::rename(&path, &aside).map_err(|err| {
            Error::adapter(
                "state file",
                format!("moving {} aside: {err}", path.display()),
            )
        })?;
        let why = format!(
            "{}: {problem}; moved to {}",
            path.display(),
            aside.display()
        );
        log::error!("corrupt state file {why}");
        Ok(Loaded {
            state: State::default(),
            recovered_from: Some(why),
        })
    }

    fn store(&mut self, state: &State) -> Result<(), Error> {
        let path = self.path();
        std::fs::create_dir_all(&self.dir).map_err(|err| {
            Error::adapter("state file", format!("{}: {err}", self.dir.display()))
        })?;
        let bytes =
            serde_json::to_vec_pretty(state).map_err(|err| Error::adapter("state file", err))?;
        replace_file(&path, &bytes, "state").map_err(|err| {
            Error::adapter("state file", format!("writing {}: {err}", path.display()))
        })
    }
}
