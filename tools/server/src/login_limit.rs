//! Failed dashboard logins, limited per client address: after [`MAX_FAILURES`] wrong tokens
//! within [`WINDOW`], that address's logins are refused (429, even with the right token, so
//! guessing learns nothing) until the window that began with its first failure has passed. A
//! right token clears the address's count.
//!
//! Memory is bounded: at most [`CAPACITY`] addresses are tracked. When the table is full after
//! expired entries are dropped, every login is refused until entries expire: under a spread-out
//! attack the dashboard closes for a minute rather than let the table grow or forget attackers.
//! The management API (admin token) is not affected. Behind a reverse proxy every request has the
//! proxy's address, so the limit applies to all operators together.
//!
//! Pure logic: the caller passes the time, so tests need no clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    first: Instant,
    count: u32,
}

#[derive(Debug, Default)]
pub struct LoginLimit {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginLimit {
    /// `Err(wait)` when a login from `addr` is refused at `now`, with how long until it is not.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut failures = self.lock();
        if let Some(f) = failures.get(&addr) {
            let end = f.first + WINDOW;
            if now >= end {
                failures.remove(&addr);
            } else if f.count >= MAX_FAILURES {
                return Err(end - now);
            }
        }
        if failures.len() >= CAPACITY && !failures.contains_key(&addr) {
            failures.retain(|_, f| now < f.first + WINDOW);
            if failures.len() >= CAPACITY {
                let soonest = failures.values().map(|f| f.first + WINDOW).min();
                return Err(soonest.map_or(WINDOW, |end| end.saturating_duration_since(now)));
            }
        }
        Ok(())
    }

    /// Counts a wrong token from `addr` (after `check` let it through).
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        let mut failures = self.lock();
        if failures.len() >= CAPACITY && !failures.contains_key(&addr) {
            failures.retain(|_, f| now < f.first + WINDOW);
            if failures.len() >= CAPACITY {
                return; // `check` refuses everyone while the table is full
            }
        }
        let entry = failures.entry(addr).or_insert(Failures {
            first: now,
            count: 0,
        });
        if now >= entry.first + WINDOW {
            *entry = Failures {
                first: now,
                count: 0,
            };
        }
        entry.count += 1;
    }

    /// Forgets `addr`'s failures (it logged in).
    pub fn succeeded(&self, addr: IpAddr) {
        self.lock().remove(&addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        // The map stays consistent whatever panicked while it was held: keep using it.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn the_sixth_try_within_the_window_is_refused_until_it_ends() {
        let limit = LoginLimit::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            let at = t0 + Duration::from_secs(u64::from(i));
            assert_eq!(limit.check(ip(1), at), Ok(()));
            limit.failed(ip(1), at);
        }
        let at = t0 + Duration::from_secs(10);
        assert_eq!(
            limit.check(ip(1), at),
            Err(WINDOW - Duration::from_secs(10))
        );
        // Another address is not affected.
        assert_eq!(limit.check(ip(2), at), Ok(()));
        // Once the window that began with the first failure is over: allowed again.
        assert_eq!(limit.check(ip(1), t0 + WINDOW), Ok(()));
    }

    #[test]
    fn a_success_clears_the_count() {
        let limit = LoginLimit::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            limit.failed(ip(1), t0);
        }
        limit.succeeded(ip(1));
        limit.failed(ip(1), t0);
        assert_eq!(limit.check(ip(1), t0), Ok(()));
    }

    #[test]
    fn a_full_table_refuses_new_addresses_until_entries_expire() {
        let limit = LoginLimit::default();
        let t0 = Instant::now();
        for n in 0..CAPACITY as u32 {
            limit.failed(ip(n), t0);
        }
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            limit.check(ip(CAPACITY as u32), later),
            Err(WINDOW - Duration::from_secs(1))
        );
        // A tracked address below the limit may still try.
        assert_eq!(limit.check(ip(0), later), Ok(()));
        // The table never grows past its capacity.
        limit.failed(ip(CAPACITY as u32 + 1), later);
        assert_eq!(limit.lock().len(), CAPACITY);
        // Expired entries make room.
        assert_eq!(limit.check(ip(CAPACITY as u32), t0 + WINDOW), Ok(()));
    }
}
