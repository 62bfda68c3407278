//! The one retry policy of the workspace: exponential backoff with a cap.

use std::time::Duration;

/// Delays that double from `first` and stop growing at `cap`: attempt 1 waits `first`, attempt 2
/// twice that, and so on. Used for queue redeliveries (on SQS and in the embedded queues) and for
/// retried DynamoDB writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub const fn exponential(first: Duration, cap: Duration) -> Self {
        Self { first, cap }
    }

    /// The delay before retry number `attempt` (1-based; 0 is treated as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        // 2^20 × any first delay used here is far past every cap: no overflow, same answer.
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.first.saturating_mul(factor).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_first_and_stop_at_the_cap() {
        let b = Backoff::exponential(Duration::from_secs(5), Duration::from_secs(900));
        let secs: Vec<u64> = (0..=10).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [5, 5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(900));
    }
}
