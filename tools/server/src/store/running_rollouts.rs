//! The running rollouts, read once a second instead of at every poll. Every idle poll of a typed
//! device asks which rollouts may target it; at 100,000 devices every 60 s that was a statement
//! per poll for a list that changes a few times a day. A change made through this process's
//! store is seen at once (the cache is dropped); one made by another server instance within
//! [`RUNNING_ROLLOUTS_TTL`]. Staleness cannot hand out work a rollout no longer gives:
//! `Store::ensure_action` checks the rollout's state and phase in the same statement.

use super::rollout_row::RolloutRow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a read of the running rollouts is reused.
pub const RUNNING_ROLLOUTS_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct RunningRollouts {
    cached: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    /// Counts local changes: a read that began before one is not kept.
    generation: u64,
    rows: Option<(Instant, Arc<Vec<RolloutRow>>)>,
}

impl RunningRollouts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached rows if fresh at `now`, else the generation a new read starts at.
    pub(super) fn fresh(&self, now: Instant) -> Result<Arc<Vec<RolloutRow>>, u64> {
        let cached = self.lock();
        match &cached.rows {
            Some((at, rows)) if now.duration_since(*at) < RUNNING_ROLLOUTS_TTL => Ok(rows.clone()),
            _ => Err(cached.generation),
        }
    }

    pub(super) fn keep(&self, generation: u64, at: Instant, rows: Arc<Vec<RolloutRow>>) {
        let mut cached = self.lock();
        if cached.generation == generation {
            cached.rows = Some((at, rows));
        }
    }

    /// Drops the cache after a change of any rollout through this store.
    pub(super) fn forget(&self) {
        let mut cached = self.lock();
        cached.generation += 1;
        cached.rows = None;
    }
}
