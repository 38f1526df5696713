//! How long injected input waits before the compositor thread has applied it: a histogram the
//! thread fills without locks or allocation, which the host reads as cumulative counts (so a
//! reader can take the difference of two reads for any window).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets: `[0, 1 µs]`, then doubling up to `2^(BUCKETS - 2)` µs (about 4.2 s), then
/// everything longer.
pub const BUCKETS: usize = 24;

/// Injected input's wait, from [`crate::InputSender::send`] to the end of its handling on the
/// compositor thread.
#[derive(Debug, Default)]
pub struct InputDelays {
    counts: [AtomicU64; BUCKETS],
}

impl InputDelays {
    /// Counts one event that waited `delay`.
    pub fn record(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        // ceil(log2(micros)), 0 for 0 and 1 µs.
        let bucket = (u64::BITS - micros.saturating_sub(1).leading_zeros()) as usize;
        let bucket = bucket.min(BUCKETS - 1);
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts so far, bucket by bucket (see [`bucket_upper_us`]).
    pub fn snapshot(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|bucket| self.counts[bucket].load(Ordering::Relaxed))
    }
}

/// The largest delay (µs) bucket `bucket` counts; `u64::MAX` for the last one.
pub fn bucket_upper_us(bucket: usize) -> u64 {
    if bucket + 1 >= BUCKETS {
        u64::MAX
    } else {
        1u64 << bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_land_in_their_power_of_two_bucket_and_overflow_into_the_last() {
        let delays = InputDelays::default();
        for micros in [0, 1, 2, 3, 4, 5, 1000, 1024, 1025] {
            delays.record(Duration::from_micros(micros));
        }
        delays.record(Duration::from_secs(3600));
        delays.record(Duration::MAX);
        let counts = delays.snapshot();
        assert_eq!(counts[0], 2, "0 and 1 µs");
        assert_eq!(counts[1], 1, "2 µs");
        assert_eq!(counts[2], 2, "3 and 4 µs");
        assert_eq!(counts[3], 1, "5 µs");
        assert_eq!(counts[10], 2, "1000 and 1024 µs");
        assert_eq!(counts[11], 1, "1025 µs");
        assert_eq!(counts[BUCKETS - 1], 2, "an hour and more");
        assert_eq!(counts.iter().sum::<u64>(), 11);
        assert_eq!(bucket_upper_us(10), 1024);
        assert_eq!(bucket_upper_us(BUCKETS - 1), u64::MAX);
    }
}
