//! Pacing: the token bucket the sender thread takes bytes from, sized for each frame from the
//! encoder's bitrate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How the sender paces: `multiple` × the encoder's bitrate, read for every frame.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Multiple of the bitrate the bucket refills at.
    pub multiple: f64,
    /// The encoder's bitrate in kbit/s (adaptive bitrate updates it); 0: unknown.
    pub bitrate_kbps: Arc<AtomicU32>,
    /// One frame's duration.
    pub frame_interval: Duration,
}

/// Bytes allowed out now: refills at `rate` per second up to `capacity`.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    capacity: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket of 64 KiB that refills at 1 GB/s until configured.
    pub fn new() -> Self {
        Self {
            tokens: 64.0 * 1024.0,
            rate: 1e9,
            capacity: 64.0 * 1024.0,
            refilled: Instant::now(),
        }
    }

    /// Sets the refill rate (bytes/s) and capacity (bytes).
    pub fn configure(&mut self, rate: f64, capacity: f64) {
        self.refill();
        self.rate = rate.max(1.0);
        self.capacity = capacity.max(1.0);
        self.tokens = self.tokens.min(self.capacity);
    }

    /// Sets rate and capacity for a frame of `frame_bytes` under `pacing`: the bitrate times
    /// the multiple, but at least fast enough to send the frame within one frame interval;
    /// room for two average frames, so ordinary frames leave at once and big ones are paced.
    pub fn pace_frame(&mut self, frame_bytes: usize, pacing: &Pacing) {
        let bitrate_bytes = f64::from(pacing.bitrate_kbps.load(Ordering::Relaxed)) * 125.0;
        let interval = pacing.frame_interval.as_secs_f64().max(1e-3);
        if bitrate_bytes > 0.0 {
            let rate = (bitrate_bytes * pacing.multiple).max(frame_bytes as f64 / interval);
            let capacity = (bitrate_bytes * interval * 2.0).max(64.0 * 1024.0);
            self.configure(rate, capacity);
        } else {
            // Unknown bitrate: spread only what one frame interval allows at 1 GB/s.
            self.configure(1e9, 1e9 * interval);
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
    }

    /// Takes `bytes`, first sleeping until the bucket holds them (it may go below zero for a
    /// batch larger than the capacity; the next take waits for that).
    pub fn take(&mut self, bytes: usize) {
        self.refill();
        let bytes = bytes as f64;
        let wanted = bytes.min(self.capacity);
        if self.tokens < wanted {
            std::thread::sleep(Duration::from_secs_f64((wanted - self.tokens) / self.rate));
            self.refill();
        }
        self.tokens -= bytes;
    }
}

impl Default for TokenBucket {
    fn default() -> Self {
        Self::new()
    }
}
