//! In-process window counts (the embedded configuration).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::window::{Decision, SlidingWindow};

/// Counts per (rule, caller): the window index and its count, plus the previous count.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryStore {
    counts: Arc<Mutex<HashMap<(String, String), Slot>>>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u64,
    previous: u64,
    current: u64,
}

/// Above this many callers, slots older than two windows are swept on insert.
const SWEEP_AT: usize = 10_000;

impl MemoryStore {
    pub(crate) fn check(
        &self,
        rule: &str,
        who: &str,
        window: SlidingWindow,
        now_ms: u64,
    ) -> Decision {
        let (index, elapsed) = window.position(now_ms);
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.len() >= SWEEP_AT {
            counts.retain(|_, slot| slot.index + 1 >= index);
        }
        let slot = counts
            .entry((rule.to_owned(), who.to_owned()))
            .or_insert(Slot {
                index,
                previous: 0,
                current: 0,
            });
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
}
