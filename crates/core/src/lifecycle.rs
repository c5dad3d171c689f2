//! What the current boot means, from the persisted state, the bootloader environment and the slot
//! the kernel says it booted. Pure: every case of a power cut between two durable writes maps to a
//! situation from which the [`Updater`](crate::Updater) converges. It decides nothing about what to
//! do next and touches no seam: the updater acts on the situation.

use crate::BootEnv;
use crate::SlotId;
use crate::state::{Pending, Stage, State};
use serde::Serialize;
use std::fmt;

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

/// The name of a [`Situation`], the same in text and JSON (`rustupdate status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SituationKind {
    Idle,
    AwaitingReboot,
    Trial,
    CommitInterrupted,
    RolledBack,
    FellBack,
    InstallInterrupted,
    UnknownTrial,
    ForeignSwitch,
}

impl SituationKind {
    pub const ALL: [SituationKind; 9] = [
        SituationKind::Idle,
        SituationKind::AwaitingReboot,
        SituationKind::Trial,
        SituationKind::CommitInterrupted,
        SituationKind::RolledBack,
        SituationKind::FellBack,
        SituationKind::InstallInterrupted,
        SituationKind::UnknownTrial,
        SituationKind::ForeignSwitch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SituationKind::Idle => "idle",
            SituationKind::AwaitingReboot => "awaiting-reboot",
            SituationKind::Trial => "trial",
            SituationKind::CommitInterrupted => "commit-interrupted",
            SituationKind::RolledBack => "rolled-back",
            SituationKind::FellBack => "fell-back",
            SituationKind::InstallInterrupted => "install-interrupted",
            SituationKind::UnknownTrial => "unknown-trial",
            SituationKind::ForeignSwitch => "foreign-switch",
        }
    }
}

impl fmt::Display for SituationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Situation {
    pub fn kind(&self) -> SituationKind {
        match self {
            Situation::Idle => SituationKind::Idle,
            Situation::AwaitingReboot { .. } => SituationKind::AwaitingReboot,
            Situation::Trial { .. } => SituationKind::Trial,
            Situation::CommitInterrupted { .. } => SituationKind::CommitInterrupted,
            Situation::RolledBack { .. } => SituationKind::RolledBack,
            Situation::FellBack { .. } => SituationKind::FellBack,
            Situation::InstallInterrupted { .. } => SituationKind::InstallInterrupted,
            Situation::UnknownTrial => SituationKind::UnknownTrial,
            Situation::ForeignSwitch => SituationKind::ForeignSwitch,
        }
    }
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
                action: None,
                checkpoint: None,
            }),
            ..State::default()
        }
    }

    /// All 40 combinations: no pending update or one of the four stages (target slot B), four
    /// environments, two booted slots.
    #[test]
    fn every_combination_is_classified() {
        use SituationKind::*;
        let (a, b) = (SlotId::A, SlotId::B);
        let envs = [
            BootEnv::committed(a, 3),
            BootEnv::committed(b, 3),
            BootEnv::trial(a, 3),
            BootEnv::trial(b, 3),
        ];
        let rolling = Stage::RollingBack {
            reason: "health".into(),
        };
        // Per state: the expected kind for each env (in the order above), booted A then booted B.
        let table: [(State, [[SituationKind; 2]; 4]); 5] = [
            (
                State::default(),
                [
                    [Idle, ForeignSwitch],
                    [ForeignSwitch, Idle],
                    [UnknownTrial, Idle],
                    [Idle, UnknownTrial],
                ],
            ),
            (
                pending(Stage::Writing),
                [
                    [InstallInterrupted, CommitInterrupted],
                    [InstallInterrupted, CommitInterrupted],
                    [InstallInterrupted, Trial],
                    [AwaitingReboot, Trial],
                ],
            ),
            (
                pending(Stage::Written),
                [
                    [InstallInterrupted, CommitInterrupted],
                    [InstallInterrupted, CommitInterrupted],
                    [InstallInterrupted, Trial],
                    [AwaitingReboot, Trial],
                ],
            ),
            (
                pending(Stage::Activated),
                [
                    [FellBack, CommitInterrupted],
                    [FellBack, CommitInterrupted],
                    [FellBack, Trial],
                    [AwaitingReboot, Trial],
                ],
            ),
            (
                pending(rolling),
                [
                    [RolledBack, Trial],
                    [RolledBack, Trial],
                    [RolledBack, Trial],
                    [RolledBack, Trial],
                ],
            ),
        ];
        let mut checked = 0;
        for (state, rows) in &table {
            for (env, expected) in envs.iter().zip(rows) {
                for (booted, kind) in [a, b].into_iter().zip(expected) {
                    assert_eq!(
                        classify(state, env, booted).kind(),
                        *kind,
                        "state {:?}, env {env:?}, booted {booted}",
                        state.pending.as_ref().map(|p| &p.stage)
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 40);
    }

    #[test]
    fn text_and_json_names_agree() {
        for kind in SituationKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.name())
            );
            assert_eq!(kind.to_string(), kind.name());
        }
    }
}
