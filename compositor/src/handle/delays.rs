//! How long injected input waits before the compositor thread has applied it: a histogram the
//! thread fills without locks or allocation (quarter-millisecond buckets up to 16 ms, then
//! doubling ones), which the host reads as cumulative counts (so a
//! reader can take the difference of two reads for any window).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Width of the fine buckets: a quarter of a millisecond, up to [`FINE_LIMIT_US`].
pub const FINE_US: u64 = 250;
/// Where the fine buckets end: 16 ms; past it each bucket doubles.
pub const FINE_LIMIT_US: u64 = 16_000;
/// Fine buckets, then doubling ones from 16 ms to 4.096 s, then one for everything longer.
pub const BUCKETS: usize = (FINE_LIMIT_US / FINE_US) as usize + 8 + 1;

/// Injected input's wait, from [`crate::InputSender::send`] to the end of its handling on the
/// compositor thread.
#[derive(Debug)]
pub struct InputDelays {
    counts: [AtomicU64; BUCKETS],
}

impl Default for InputDelays {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl InputDelays {
    /// Counts one event that waited `delay`.
    pub fn record(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        if let Some(count) = self.counts.get(bucket_of(micros)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts so far, bucket by bucket (see [`bucket_upper_us`]).
    pub fn snapshot(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|bucket| self.counts[bucket].load(Ordering::Relaxed))
    }
}

const FINE_BUCKETS: usize = (FINE_LIMIT_US / FINE_US) as usize;

/// The bucket a delay of `micros` falls in.
fn bucket_of(micros: u64) -> usize {
    if micros <= FINE_LIMIT_US {
        // (0, 250] in 0, (250, 500] in 1, …; 0 µs in 0.
        return (micros.saturating_sub(1) / FINE_US) as usize;
    }
    // (16 ms, 32 ms] in FINE_BUCKETS, then doubling.
    let doublings = u64::BITS - ((micros - 1) / FINE_LIMIT_US).leading_zeros();
    (FINE_BUCKETS + doublings as usize - 1).min(BUCKETS - 1)
}

/// The largest delay (µs) bucket `bucket` counts; `u64::MAX` for the last one.
pub fn bucket_upper_us(bucket: usize) -> u64 {
    if bucket + 1 >= BUCKETS {
        u64::MAX
    } else if bucket < FINE_BUCKETS {
        (bucket as u64 + 1) * FINE_US
    } else {
        FINE_LIMIT_US << (bucket - FINE_BUCKETS + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_land_in_quarter_millisecond_buckets_then_doubling_ones() {
        let delays = InputDelays::default();
        for micros in [
            0, 1, 250, 251, 4_999, 5_000, 5_001, 16_000, 16_001, 32_000, 32_001,
        ] {
            delays.record(Duration::from_micros(micros));
        }
        delays.record(Duration::from_secs(3600));
        delays.record(Duration::MAX);
        let counts = delays.snapshot();
        assert_eq!(counts[0], 3, "0, 1 and 250 µs");
        assert_eq!(counts[1], 1, "251 µs");
        assert_eq!(counts[19], 2, "4 999 and 5 000 µs: (4.75, 5] ms");
        assert_eq!(counts[20], 1, "5 001 µs");
        assert_eq!(counts[63], 1, "16 ms, the last fine bucket");
        assert_eq!(counts[64], 2, "(16, 32] ms");
        assert_eq!(counts[65], 1, "(32, 64] ms");
        assert_eq!(counts[BUCKETS - 1], 2, "an hour and more");
        assert_eq!(counts.iter().sum::<u64>(), 13);
        assert_eq!(bucket_upper_us(19), 5_000);
        assert_eq!(bucket_upper_us(63), 16_000);
        assert_eq!(bucket_upper_us(64), 32_000);
        assert_eq!(bucket_upper_us(BUCKETS - 2), 4_096_000);
        assert_eq!(bucket_upper_us(BUCKETS - 1), u64::MAX);
        for micros in [1, 250, 251, 16_000, 16_001, 4_096_000] {
            assert!(micros <= bucket_upper_us(bucket_of(micros)), "{micros} µs");
        }
    }
}
