//! In-process window counts: the embedded configuration, and the per-node fallback of the rules
//! that fail closed when Redis cannot answer.
//!
//! Counts are kept per rule (and window length), each behind its own lock, so a request only
//! ever touches its own rule's table, and expired callers are dropped by [`MemoryStore::sweep`]
//! (run on a timer, see `Limiter::new`), each rule by its own window, never on the request path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::window::{Decision, SlidingWindow};

/// One caller's counts: the window index, its count, and the previous window's count.
#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u64,
    previous: u64,
    current: u64,
}

/// The counts of one rule (sans-IO: the time is an argument).
#[derive(Debug)]
pub(crate) struct RuleCounts {
    window_ms: u64,
    slots: HashMap<String, Slot>,
}

impl RuleCounts {
    pub(crate) fn new(window_ms: u64) -> Self {
        Self {
            window_ms: window_ms.max(1),
            slots: HashMap::new(),
        }
    }

    /// Counts one request by `who` (if admitted) and decides it.
    pub(crate) fn check(&mut self, who: &str, window: SlidingWindow, now_ms: u64) -> Decision {
        let (index, elapsed) = window.position(now_ms);
        let slot = match self.slots.get_mut(who) {
            Some(slot) => slot,
            None => self.slots.entry(who.to_owned()).or_insert(Slot {
                index,
                previous: 0,
                current: 0,
            }),
        };
        if slot.index != index {
            // Roll forward: the old current becomes previous only if it was the adjacent window.
            slot.previous = if slot.index + 1 == index {
                slot.current
            } else {
                0
            };
            slot.current = 0;
            slot.index = index;
        }
        let decision = window.decide(slot.previous, slot.current, elapsed);
        if decision.allowed {
            slot.current += 1;
        }
        decision
    }

    /// Drops callers whose counts can no longer affect a decision: their last request fell two
    /// or more of this rule's windows before `now_ms`. Returns how many were dropped.
    pub(crate) fn sweep(&mut self, now_ms: u64) -> usize {
        let index = now_ms / self.window_ms;
        let before = self.slots.len();
        self.slots.retain(|_, slot| slot.index + 1 >= index);
        before - self.slots.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

/// Per-rule tables, keyed by rule name and window length (two rules of one name but different
/// windows never share slots).
type Tables = HashMap<(String, u64), Arc<Mutex<RuleCounts>>>;

/// Counts per (rule, caller), shared by clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryStore {
    rules: Arc<RwLock<Tables>>,
}

impl MemoryStore {
    fn table(&self, rule: &str, window_ms: u64) -> Arc<Mutex<RuleCounts>> {
        let key = (rule.to_owned(), window_ms);
        if let Some(table) = self
            .rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return table.clone();
        }
        self.rules
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| Arc::new(Mutex::new(RuleCounts::new(window_ms))))
            .clone()
    }

    pub(crate) fn check(
        &self,
        rule: &str,
        who: &str,
        window: SlidingWindow,
        now_ms: u64,
    ) -> Decision {
        let table = self.table(rule, window.window_ms);
        let mut counts = table.lock().unwrap_or_else(PoisonError::into_inner);
        counts.check(who, window, now_ms)
    }

    /// Sweeps every rule by its own window; returns how many callers were dropped. Each rule's
    /// lock is held only while that rule is swept.
    pub(crate) fn sweep(&self, now_ms: u64) -> usize {
        let tables: Vec<_> = self
            .rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        tables
            .iter()
            .map(|t| {
                t.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sweep(now_ms)
            })
            .sum()
    }

    /// Sweeps every `every` until the last clone of this store is dropped (the task holds only
    /// a weak reference, so it never keeps a stopped control plane's counts alive).
    pub(crate) fn spawn_sweeper(&self, every: std::time::Duration) {
        let weak = Arc::downgrade(&self.rules);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; there is nothing to sweep yet.
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(rules) = weak.upgrade() else {
                    return;
                };
                let store = Self { rules };
                let dropped = store.sweep(crate::clock::unix_now_ms());
                tracing::debug!(dropped, held = store.len(), "rate-limit windows swept");
            }
        });
    }

    /// Callers currently held, over all rules.
    pub(crate) fn len(&self) -> usize {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|t| t.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: SlidingWindow = SlidingWindow {
        limit: 100,
        window_ms: 3_600_000,
    };
    const SECOND: SlidingWindow = SlidingWindow {
        limit: 10,
        window_ms: 1_000,
    };

    #[test]
    fn many_short_window_callers_do_not_wipe_an_hourly_count() {
        let store = MemoryStore::default();
        let now = 1_700_000_000_000;
        for _ in 0..5 {
            assert!(store.check("chat", "u:victim", HOUR, now).allowed);
        }
        // An attacker fills the table from a short-window rule, from as many addresses as it
        // likes, some seconds later.
        for i in 0..10_050 {
            store.check("auth", &format!("ip:{i}"), SECOND, now + 5_000);
        }
        let d = store.check("chat", "u:victim", HOUR, now + 6_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 100 - 6, "the hourly count was wiped: {d:?}");
    }

    #[test]
    fn the_sweep_removes_only_expired_callers_per_rule() {
        let store = MemoryStore::default();
        let t0 = 1_700_000_000_000;
        store.check("chat", "u:a", HOUR, t0);
        store.check("auth", "ip:old", SECOND, t0);
        store.check("auth", "ip:previous", SECOND, t0 + 4_000);
        store.check("auth", "ip:current", SECOND, t0 + 5_000);
        assert_eq!(store.len(), 4);
        // At t0 + 5 s: `old` is five one-second windows back (expired), `previous` one window
        // back (still weighs on its next decision), `current` in this window; the hourly caller
        // is in its own current window.
        assert_eq!(store.sweep(t0 + 5_000), 1);
        assert_eq!(store.len(), 3);
        // `previous` still counts: its next decision sees last window's request.
        let d = store.check("auth", "ip:previous", SECOND, t0 + 5_000);
        assert_eq!(d.remaining, 8, "{d:?}");
        // Two hours on, everything has expired.
        assert_eq!(store.sweep(t0 + 2 * 3_600_000 + 1), 3);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_caller_is_kept_while_its_previous_window_still_counts() {
        let mut counts = RuleCounts::new(1_000);
        assert!(counts.check("x", SECOND, 10_000).allowed);
        assert_eq!(counts.sweep(11_999), 0);
        assert_eq!(counts.sweep(12_000), 1);
    }
}
