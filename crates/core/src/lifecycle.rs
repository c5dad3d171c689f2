//! What the current boot means, from the persisted state, the bootloader environment and the slot
//! the kernel says it booted. Pure: every case of a power cut between two durable writes maps to a
//! situation from which the [`Updater`](crate::Updater) converges.

use crate::BootEnv;
use crate::SlotId;
use crate::state::{Pending, Stage, State};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Situation {
    /// No update in progress.
    Idle,
    /// A new slot is armed; the device has not rebooted into it yet.
    AwaitingReboot { pending: Pending },
    /// Booted into the new slot on trial: run health checks, then commit or roll back.
    Trial { pending: Pending },
    /// Booted into the new slot, trial flag already cleared (power cut during commit): finish it.
    CommitInterrupted { pending: Pending },
    /// The client decided to roll back and the device is back on the old slot: record it.
    RolledBack { pending: Pending, reason: String },
    /// The new slot was armed but the old slot runs: the bootloader fell back on its own.
    FellBack { pending: Pending },
    /// An install stopped before the new slot was armed (error or power cut): the old slot runs.
    InstallInterrupted { pending: Pending },
    /// The environment says the booted slot is on trial but the state knows nothing about it
    /// (state lost or corrupt): health checks decide, as for a known trial.
    UnknownTrial,
    /// The environment selects another slot without a trial and nothing is pending: someone
    /// switched slots outside the client. Reboot to apply it.
    ForeignSwitch,
}

pub fn classify(state: &State, env: &BootEnv, booted: SlotId) -> Situation {
    let Some(pending) = state.pending.clone() else {
        return if env.upgrade_available && env.slot == booted {
            Situation::UnknownTrial
        } else if env.slot != booted && !env.upgrade_available {
            Situation::ForeignSwitch
        } else {
            // Includes "trial armed for the other slot by someone else": nothing for us to do.
            Situation::Idle
        };
    };
    let target = pending.release.slot;
    let armed = env.slot == target && env.upgrade_available;
    if let Stage::RollingBack { reason } = &pending.stage {
        if booted != target {
            return Situation::RolledBack {
                reason: reason.clone(),
                pending,
            };
        }
        // Power cut before the environment switch took effect: still on the bad slot, roll back.
        return Situation::Trial { pending };
    }
    if booted == target {
        // Stage Writing/Written cannot boot the target unless the env was switched by us, which
        // happens only after Written, so any stage here means the image is complete and verified.
        return if env.upgrade_available {
            Situation::Trial { pending }
        } else {
            Situation::CommitInterrupted { pending }
        };
    }
    if armed {
        return Situation::AwaitingReboot { pending };
    }
    match pending.stage {
        Stage::Activated => Situation::FellBack { pending },
        _ => Situation::InstallInterrupted { pending },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Release;

    fn pending(stage: Stage) -> State {
        State {
            pending: Some(Pending {
                transaction: "1".into(),
                release: Release {
                    slot: SlotId::B,
                    name: "n".into(),
                    version: "2".into(),
                    security_version: None,
                    sha256: String::new(),
                },
                stage,
            }),
            ..State::default()
        }
    }

    #[test]
    fn every_combination_is_classified() {
        let a = SlotId::A;
        let b = SlotId::B;
        let idle = BootEnv::committed(a, 3);
        assert_eq!(classify(&State::default(), &idle, a), Situation::Idle);
        assert_eq!(
            classify(&State::default(), &BootEnv::trial(a, 3), a),
            Situation::UnknownTrial
        );
        assert_eq!(
            classify(&State::default(), &BootEnv::committed(b, 3), a),
            Situation::ForeignSwitch
        );

        let activated = pending(Stage::Activated);
        assert!(matches!(
            classify(&activated, &BootEnv::trial(b, 3), a),
            Situation::AwaitingReboot { .. }
        ));
        assert!(matches!(
            classify(&activated, &BootEnv::trial(b, 3), b),
            Situation::Trial { .. }
        ));
        assert!(matches!(
            classify(&activated, &BootEnv::committed(b, 3), b),
            Situation::CommitInterrupted { .. }
        ));
        assert!(matches!(
            classify(&activated, &idle, a),
            Situation::FellBack { .. }
        ));

        // Power cut after the env switch but before the state said so.
        let written = pending(Stage::Written);
        assert!(matches!(
            classify(&written, &BootEnv::trial(b, 3), a),
            Situation::AwaitingReboot { .. }
        ));
        assert!(matches!(
            classify(&written, &BootEnv::trial(b, 3), b),
            Situation::Trial { .. }
        ));
        assert!(matches!(
            classify(&written, &idle, a),
            Situation::InstallInterrupted { .. }
        ));
        assert!(matches!(
            classify(&pending(Stage::Writing), &idle, a),
            Situation::InstallInterrupted { .. }
        ));

        let rolling = pending(Stage::RollingBack {
            reason: "health".into(),
        });
        assert!(matches!(
            classify(&rolling, &idle, a),
            Situation::RolledBack { .. }
        ));
        assert!(matches!(
            classify(&rolling, &BootEnv::trial(b, 3), b),
            Situation::Trial { .. }
        ));
    }
}
