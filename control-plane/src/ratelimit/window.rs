//! Sliding-window counter arithmetic (sans-IO).
//!
//! Time is cut into fixed windows; the estimate for "the last `window`" is the current window's
//! count plus the previous window's count weighted by how much of it still overlaps. A request
//! is admitted while the estimate is below the limit. Memory is two counters per caller.

/// A limit of `limit` requests per `window_ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindow {
    /// Requests admitted per window.
    pub limit: u64,
    /// Window length in milliseconds (at least 1).
    pub window_ms: u64,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted (and was counted).
    pub allowed: bool,
    /// Requests still admitted after this one.
    pub remaining: u64,
    /// Seconds until a request would be admitted again (when refused), or until the window
    /// frees up fully (when admitted).
    pub reset_secs: u64,
}

impl SlidingWindow {
    /// The fixed window `now_ms` falls in, and how far into it `now_ms` is.
    pub fn position(self, now_ms: u64) -> (u64, u64) {
        let w = self.window_ms.max(1);
        (now_ms / w, now_ms % w)
    }

    /// The weighted estimate of requests in the last window. Redis runs the same formula in
    /// Lua (`redis.rs`); keep the two in step.
    pub fn estimate(self, previous: u64, current: u64, elapsed_ms: u64) -> u64 {
        let w = u128::from(self.window_ms.max(1));
        let overlap = w - u128::from(elapsed_ms).min(w);
        (u128::from(previous) * overlap / w) as u64 + current
    }

    /// Decides a request given the counts *before* it and the offset into the current window.
    pub fn decide(self, previous: u64, current: u64, elapsed_ms: u64) -> Decision {
        let w = self.window_ms.max(1);
        let estimate = self.estimate(previous, current, elapsed_ms);
        if estimate < self.limit {
            return Decision {
                allowed: true,
                remaining: self.limit - estimate - 1,
                reset_secs: (w - elapsed_ms.min(w)).div_ceil(1000),
            };
        }
        // Refused: wait until the previous window's weight has shrunk enough, or, if the current
        // window alone is full, until it becomes the previous one and starts to fade.
        let wait_ms = if current >= self.limit || previous == 0 {
            w - elapsed_ms.min(w) + self.fade_ms(current)
        } else {
            let room = u128::from(self.limit - current);
            // previous * (w - e) / w < room  <=>  e > w - room * w / previous
            let threshold =
                u128::from(w).saturating_sub(room * u128::from(w) / u128::from(previous));
            (threshold as u64 + 1).saturating_sub(elapsed_ms)
        };
        Decision {
            allowed: false,
            remaining: 0,
            reset_secs: wait_ms.div_ceil(1000).max(1),
        }
    }

    /// Once `count` requests are in the previous window, how far into the next window the
    /// estimate drops below the limit.
    fn fade_ms(self, count: u64) -> u64 {
        if count < self.limit {
            return 0;
        }
        let w = u128::from(self.window_ms.max(1));
        let room = u128::from(self.limit);
        (w.saturating_sub(room * w / u128::from(count)) + 1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: SlidingWindow = SlidingWindow {
        limit: 100,
        window_ms: 3_600_000,
    };

    #[test]
    fn a_fresh_caller_gets_exactly_the_limit() {
        let mut current = 0;
        let mut admitted = 0;
        for _ in 0..150 {
            let d = HOUR.decide(0, current, 10_000);
            if d.allowed {
                current += 1;
                admitted += 1;
            }
        }
        assert_eq!(admitted, 100);
        let refused = HOUR.decide(0, current, 10_000);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!(refused.reset_secs > 3_500, "{refused:?}");
    }

    #[test]
    fn the_previous_window_fades_out_as_time_passes() {
        // A full previous window blocks the start of the next one...
        assert!(!HOUR.decide(100, 0, 0).allowed);
        // ...halfway through, half of it still counts...
        let half = HOUR.decide(100, 0, 1_800_000);
        assert!(half.allowed);
        assert_eq!(half.remaining, 49);
        // ...and the refusal says when room appears.
        let blocked = HOUR.decide(100, 50, 1_800_000);
        assert!(!blocked.allowed);
        let retry_ms = blocked.reset_secs * 1000;
        assert!(HOUR.decide(100, 50, 1_800_000 + retry_ms).allowed);
    }

    #[test]
    fn positions_split_time_into_windows() {
        assert_eq!(HOUR.position(3_600_000 * 5 + 7), (5, 7));
    }
}
