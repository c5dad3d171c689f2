//! Reboot through the configured command (`/sbin/reboot` by default).

use rustupdate_core::Error;
use rustupdate_core::seams::Reboot;

#[derive(Debug)]
pub struct CommandReboot {
    pub command: Vec<String>,
}

impl Reboot for CommandReboot {
    fn reboot(&mut self) -> Result<(), Error> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(Error::adapter("reboot", "system.reboot-command is empty"));
        };
        log::warn!("rebooting: {}", self.command.join(" "));
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .map_err(|err| Error::adapter("reboot", format!("{program}: {err}")))?;
        if !status.success() {
            return Err(Error::adapter(
                "reboot",
                format!("{} exited with {status}", self.command.join(" ")),
            ));
        }
        Ok(())
    }
}
