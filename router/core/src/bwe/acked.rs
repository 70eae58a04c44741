//! The acknowledged bitrate: what the receiver reports having received,
//! per second of its own clock, over the last [`WINDOW_US`]. The rate
//! controller decreases to a fraction of it on overuse (what got through
//! is what the link carries), and does not increase far past it.

/// The window, µs of the receiver's clock.
pub(crate) const WINDOW_US: i64 = 500_000;
/// Buckets the window is kept in (each `WINDOW_US / BUCKETS` long).
const BUCKETS: usize = 10;
const BUCKET_US: i64 = WINDOW_US / BUCKETS as i64;
/// No rate before arrivals span this much.
const MIN_SPAN_US: i64 = 150_000;

/// Received bytes over a sliding window of arrival time (fixed buckets: no allocation).
#[derive(Debug, Default)]
pub(crate) struct AckedBitrate {
    /// Bytes per bucket; bucket `i` holds arrivals in bucket number `newest - (newest_index - i)`.
    bytes: [u64; BUCKETS],
    /// The bucket number (arrival / BUCKET_US) of the newest arrival.
    newest: Option<i64>,
    /// The first arrival seen (how much of the window is covered).
    first_us: Option<i64>,
    /// The newest arrival.
    last_us: i64,
}

impl AckedBitrate {
    /// A packet of `size` bytes arrived at `arrival_us` (receiver clock).
    pub fn on_arrival(&mut self, arrival_us: i64, size: u32) {
        let bucket = arrival_us.div_euclid(BUCKET_US);
        self.first_us.get_or_insert(arrival_us);
        self.last_us = self.last_us.max(arrival_us);
        match self.newest {
            None => {
                self.newest = Some(bucket);
                self.last_us = arrival_us;
            }
            Some(n) if bucket > n => {
                // Empty the buckets the window slid past.
                for b in (n + 1)..=(bucket.min(n + BUCKETS as i64)) {
                    self.bytes[b.rem_euclid(BUCKETS as i64) as usize] = 0;
                }
                self.newest = Some(bucket);
            }
            Some(n) if n - bucket >= BUCKETS as i64 => return, // older than the window
            Some(_) => {}
        }
        self.bytes[bucket.rem_euclid(BUCKETS as i64) as usize] += u64::from(size);
    }

    /// Bits/s over the window (over what of it arrivals covered, at first);
    /// `None` before arrivals span [`MIN_SPAN_US`].
    pub fn bps(&self) -> Option<u64> {
        let (newest, first) = (self.newest?, self.first_us?);
        // From the window's start (or the first arrival) to the newest arrival.
        let start = ((newest + 1) * BUCKET_US - WINDOW_US).max(first);
        let span = self.last_us - start;
        if span < MIN_SPAN_US {
            return None;
        }
        let total: u64 = self.bytes.iter().sum();
        Some(total * 8 * 1_000_000 / span as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_flow_reads_as_its_rate() {
        let mut a = AckedBitrate::default();
        // 1000 bytes every 10 ms: 800 kbit/s, for 2 s.
        for i in 0..200 {
            a.on_arrival(1_000_000 + i * 10_000, 1000);
            if i == 5 {
                assert_eq!(a.bps(), None, "too short yet");
            }
        }
        let r = a.bps().unwrap();
        assert!((780_000..=820_000).contains(&r), "{r}");
        // The flow halves: within a window the rate follows.
        for i in 200..300 {
            a.on_arrival(1_000_000 + i * 10_000, 500);
        }
        let r = a.bps().unwrap();
        assert!((380_000..=420_000).contains(&r), "{r}");
        // A gap longer than the window empties it.
        a.on_arrival(10_000_000, 1000);
        assert!(a.bps().unwrap() < 20_000);
        // Far in the past: ignored.
        a.on_arrival(0, 1_000_000);
        assert!(a.bps().unwrap() < 20_000);
    }
}
