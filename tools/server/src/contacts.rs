//! Devices' last contact, written behind. Every authenticated device request counts as contact
//! (as in hawkBit), but writing it row by row made every poll a committed write: on PostgreSQL a
//! WAL flush per poll, which bounded a 2-core server at about 1,250 polls/s (bench/fleet-load,
//! 100,000 devices need 1,667). Contacts collect here, one entry per device (so memory is bounded
//! by the fleet), and are written in batches every [`FLUSH_INTERVAL`], before a page or answer
//! that shows them, and at shutdown. A crash loses at most that long of contact times and
//! nothing else (actions and feedback are written at once).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How often pending contacts are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct Contacts {
    pending: Mutex<HashMap<i64, i64>>,
}

impl Contacts {
    /// Notes that device `id` was in contact at `at` (epoch ms); the latest time wins.
    pub fn record(&self, id: i64, at: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(id).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// The pending contacts, which are no longer pending.
    pub fn take(&self) -> Vec<(i64, i64)> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.drain().collect()
    }

    /// Puts contacts back after a failed write (unless newer ones arrived meanwhile).
    pub fn restore(&self, contacts: &[(i64, i64)]) {
        for &(id, at) in contacts {
            self.record(id, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_contact_per_device_once() {
        let contacts = Contacts::default();
        contacts.record(1, 10);
        contacts.record(1, 30);
        contacts.record(1, 20);
        contacts.record(2, 5);
        let mut taken = contacts.take();
        taken.sort();
        assert_eq!(taken, [(1, 30), (2, 5)]);
        assert!(contacts.take().is_empty());
        contacts.record(1, 40);
        contacts.restore(&[(1, 30), (3, 7)]);
        let mut taken = contacts.take();
        taken.sort();
        assert_eq!(taken, [(1, 40), (3, 7)]);
    }
}
