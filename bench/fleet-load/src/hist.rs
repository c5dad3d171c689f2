//! A fixed-size log-linear latency histogram in microseconds (the HdrHistogram layout with
//! 7 significant bits): values below 128 µs are exact, above that each power of two is split into
//! 64 buckets, so a reported percentile is at most 1/64 (1.6 %) above the true value. Memory is
//! fixed (`BUCKETS` counters) however many requests are recorded.
//!
//! It does not correct for coordinated omission: `--max` mode is a closed loop by design, and the
//! interval mode counts late cycles separately.

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const HALF: u64 = SUB / 2;
/// Values are clamped to 2^36 µs (19 hours), far beyond any request timeout.
const MAX_SHIFT: u64 = 36 - SUB_BITS as u64;
const BUCKETS: usize = (SUB + MAX_SHIFT * HALF) as usize;
const MAX_VALUE: u64 = (1 << 36) - 1;

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    max: u64,
    sum: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - u64::from(v.leading_zeros());
    let shift = msb - (u64::from(SUB_BITS) - 1);
    (SUB + (shift - 1) * HALF + ((v >> shift) - HALF)) as usize
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let k = i - SUB;
    let shift = k / HALF + 1;
    let m = k % HALF + HALF;
    ((m + 1) << shift) - 1
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        let v = micros.min(MAX_VALUE);
        self.counts[index(v)] += 1;
        self.count += 1;
        self.max = self.max.max(v);
        self.sum += v;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }

    /// The value at quantile `q` (0..=1): the upper edge of the bucket holding the
    /// ceil(q * count)-th smallest value, capped at the exact maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_precise() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(upper(i)), i);
            assert_eq!(index(upper(i) + 1), i + 1);
        }
        assert_eq!(upper(BUCKETS - 1), MAX_VALUE);
        for v in [128u64, 129, 1000, 12_345, 1 << 20, MAX_VALUE] {
            let u = upper(index(v));
            assert!(u >= v && (u - v) as f64 <= v as f64 / 64.0, "{v} -> {u}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.99), 0);
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1000);
        assert_eq!(h.quantile(0.0), 1);
        let p50 = h.quantile(0.5);
        assert!((500..=508).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1000);
        h.record(u64::MAX);
        assert_eq!(h.max(), MAX_VALUE);
        assert_eq!(h.count(), 1001);
    }
}
