//! Counters added up in memory and written at most once per interval per key: the webhook's
//! per-account counters, the outbound sender's monthly message counts. On AWS a counter item
//! takes about 1,000 writes a second and each costs a write unit, so an instance writes a key's
//! counts at most every [`COUNTER_FLUSH`]; what an instance holds when it stops is not written
//! (best effort, as the counters say). An interval of zero writes every addition.

use std::collections::HashMap;
use std::ops::AddAssign;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How often an AWS function instance writes one key's counters.
pub const COUNTER_FLUSH: Duration = Duration::from_secs(10);

/// Counts not yet written, per key.
pub(crate) struct CounterBuffer<C> {
    pending: Mutex<HashMap<String, Pending<C>>>,
    /// Milliseconds between two writes of one key by this instance.
    flush_ms: i64,
}

#[derive(Default)]
struct Pending<C> {
    counts: C,
    last_at: i64,
    /// When they were last written (epoch milliseconds; 0: never).
    written_at: i64,
}

impl<C> Default for CounterBuffer<C> {
    fn default() -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            flush_ms: 0,
        }
    }
}

impl<C: Default + AddAssign + Copy> CounterBuffer<C> {
    /// Writes a key's counts at most once per `every` (by the clock the caller passes).
    pub(crate) fn set_flush(&mut self, every: Duration) {
        self.flush_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    }

    /// Adds `counts` to `key`'s; returns them (and the latest time), emptied, when they are due
    /// for a write at `at`.
    pub(crate) fn add(&self, key: &str, counts: C, at: i64) -> Option<(C, i64)> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let p = pending.entry(key.to_owned()).or_default();
        p.counts += counts;
        p.last_at = p.last_at.max(at);
        if p.written_at != 0 && at.saturating_sub(p.written_at) < self.flush_ms {
            return None;
        }
        p.written_at = at.max(1);
        Some((std::mem::take(&mut p.counts), p.last_at))
    }

    /// Puts back counts whose write failed, for the next write.
    pub(crate) fn keep(&self, key: &str, counts: C, at: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let p = pending.entry(key.to_owned()).or_default();
        p.counts += counts;
        p.last_at = p.last_at.max(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_leave_at_most_once_per_interval() {
        let mut buffer: CounterBuffer<u64> = CounterBuffer::default();
        buffer.set_flush(Duration::from_secs(10));
        assert_eq!(buffer.add("a", 1, 1_000), Some((1, 1_000)), "the first is written");
        assert_eq!(buffer.add("a", 2, 5_000), None);
        assert_eq!(buffer.add("b", 7, 5_000), Some((7, 5_000)), "per key");
        assert_eq!(buffer.add("a", 3, 10_999), None);
        assert_eq!(buffer.add("a", 4, 11_000), Some((9, 11_000)));
        // A failed write is kept for the next one.
        buffer.keep("a", 9, 11_000);
        assert_eq!(buffer.add("a", 1, 21_000), Some((10, 21_000)));

        let every: CounterBuffer<u64> = CounterBuffer::default();
        assert_eq!(every.add("a", 1, 1), Some((1, 1)));
        assert_eq!(every.add("a", 1, 1), Some((1, 1)), "zero interval: every addition");
    }
}
