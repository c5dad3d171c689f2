//! Who is in which phase. When a rollout starts, the server lists the devices that match its
//! target filter and [`assign`] puts each in a phase; devices that start matching later join the
//! phase running at that moment ([`late_joiner_phase`]). Pure: the caller lists the devices and
//! stores the assignment; nothing here reads the database or draws random numbers (the order is a
//! hash, so the same inputs always give the same plan, on every server and in every test).

use crate::spec::{ALL_PERCENT, Phases};
use sha2::{Digest, Sha256};

/// Members per phase for a rollout that starts with `devices` matching devices.
///
/// Phase `i` brings the running total to `ceil(devices × percent_i / 100)`; its size is the
/// increase over the phase before. So:
/// - the sizes add up to `devices` (the last phase is 100%);
/// - the first phase has at least one device whenever there is one (the rounding is up);
/// - with few devices some phases are empty (3 devices over `1,10,50,100` give `[1, 0, 1, 1]`);
///   [`crate::rollout::decide`] lets an empty phase pass at once.
pub fn phase_sizes(phases: &Phases, devices: u32) -> Vec<u32> {
    let mut sizes = Vec::with_capacity(phases.as_slice().len());
    let mut before: u64 = 0;
    for &percent in phases.as_slice() {
        let total = (u64::from(devices) * u64::from(percent)).div_ceil(u64::from(ALL_PERCENT));
        // total <= devices as percent <= 100, and totals never shrink as percents increase.
        sizes.push(u32::try_from(total - before).unwrap_or(u32::MAX));
        before = total;
    }
    sizes
}

/// The phase (from 0) of each device: `(controller id, phase)`, in rollout order (phase 0 first).
///
/// Devices are ordered by `sha256("{rollout_id}/{controller_id}")`, then phases are filled in that
/// order with [`phase_sizes`]. The order is deterministic for one rollout and different between
/// rollouts, so the same devices are not always the first to try a release. Ids are expected to be
/// unique; a repeated id is kept and counted twice.
pub fn assign(rollout_id: i64, controller_ids: &[String], phases: &Phases) -> Vec<(String, u32)> {
    let mut ordered: Vec<([u8; 32], &String)> = controller_ids
        .iter()
        .map(|id| (order_key(rollout_id, id), id))
        .collect();
    // Ties (only for repeated ids) are broken by the id, so the result never depends on input order.
    ordered.sort_unstable();

    let devices = u32::try_from(ordered.len()).unwrap_or(u32::MAX);
    let mut phase_of = phase_sizes(phases, devices)
        .into_iter()
        .enumerate()
        .flat_map(|(phase, size)| std::iter::repeat_n(phase as u32, size as usize));
    let last = phases.count().saturating_sub(1);
    ordered
        .into_iter()
        // More than u32::MAX devices is not a real fleet; should it happen, the rest go last.
        .map(|(_, id)| (id.clone(), phase_of.next().unwrap_or(last)))
        .collect()
}

/// The position of a device in a rollout's order.
fn order_key(rollout_id: i64, controller_id: &str) -> [u8; 32] {
    Sha256::digest(format!("{rollout_id}/{controller_id}")).into()
}

/// The phase of a device that starts matching a rollout's target after the rollout started: the
/// phase running now.
///
/// It gets the release as soon as the rollout has reached that confidence, like the devices that
/// were there from the start, and no sooner: it never jumps ahead of a paused rollout, because a
/// paused rollout hands out nothing ([`crate::rollout::is_handing_out`]). It does not enlarge the
/// sizes of the phases already run; it counts as a member of the current phase from now on. A
/// finished or canceled rollout takes no late joiners.
pub fn late_joiner_phase(current_phase: u32) -> u32 {
    current_phase
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn standard() -> Phases {
        Phases::parse("1,10,50,100").unwrap()
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("device-{i:04}")).collect()
    }

    #[test]
    fn phase_sizes_for_small_and_large_fleets() {
        let p = standard();
        assert_eq!(phase_sizes(&p, 0), [0, 0, 0, 0]);
        assert_eq!(phase_sizes(&p, 1), [1, 0, 0, 0]);
        assert_eq!(phase_sizes(&p, 3), [1, 0, 1, 1]);
        assert_eq!(phase_sizes(&p, 10), [1, 0, 4, 5]);
        assert_eq!(phase_sizes(&p, 1000), [10, 90, 400, 500]);
        assert_eq!(phase_sizes(&p, 1001), [11, 90, 400, 500]);
        assert_eq!(phase_sizes(&Phases::parse("100").unwrap(), 7), [7]);
    }

    #[test]
    fn phase_sizes_add_up_and_start_with_a_device() {
        let p = standard();
        for devices in [0, 1, 2, 3, 7, 99, 100, 101, 12345, u32::MAX] {
            let sizes = phase_sizes(&p, devices);
            assert_eq!(sizes.len(), 4);
            assert_eq!(
                sizes.iter().map(|&s| u64::from(s)).sum::<u64>(),
                u64::from(devices)
            );
            assert_eq!(sizes[0] > 0, devices > 0, "{devices}");
        }
    }

    #[test]
    fn assign_fills_phases_by_size() {
        let p = standard();
        let plan = assign(7, &ids(1000), &p);
        let mut per_phase = [0u32; 4];
        for (_, phase) in &plan {
            per_phase[*phase as usize] += 1;
        }
        assert_eq!(per_phase, [10, 90, 400, 500]);
        // In rollout order: phases never go back.
        assert!(plan.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn assign_is_a_deterministic_permutation() {
        let p = standard();
        let devices = ids(200);
        let plan = assign(42, &devices, &p);
        assert_eq!(plan, assign(42, &devices, &p));
        let mut reversed = devices.clone();
        reversed.reverse();
        assert_eq!(plan, assign(42, &reversed, &p));
        let seen: BTreeSet<&String> = plan.iter().map(|(id, _)| id).collect();
        assert_eq!(seen, devices.iter().collect::<BTreeSet<_>>());
        assert_eq!(plan.len(), devices.len());
    }

    #[test]
    fn assign_differs_between_rollouts() {
        let p = standard();
        let devices = ids(200);
        let first = |rollout| -> Vec<String> {
            assign(rollout, &devices, &p)
                .into_iter()
                .filter(|(_, phase)| *phase == 0)
                .map(|(id, _)| id)
                .collect()
        };
        assert_eq!(first(1).len(), 2);
        assert_ne!(first(1), first(2));
        assert_ne!(
            assign(1, &devices, &p)
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>(),
            assign(-1, &devices, &p)
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn assign_order_is_the_documented_hash() {
        // Pins the key format: another server version must place the same devices the same way.
        let devices = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let mut expected = devices.clone();
        expected.sort_by_key(|id| order_key(5, id));
        let got: Vec<String> = assign(5, &devices, &Phases::parse("100").unwrap())
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, expected);
        let key: [u8; 32] = Sha256::digest(b"5/a").into();
        assert_eq!(order_key(5, "a"), key);
    }

    #[test]
    fn assign_of_nobody_is_empty() {
        assert!(assign(1, &[], &standard()).is_empty());
    }

    #[test]
    fn late_joiners_join_the_running_phase() {
        assert_eq!(late_joiner_phase(0), 0);
        assert_eq!(late_joiner_phase(2), 2);
    }
}
