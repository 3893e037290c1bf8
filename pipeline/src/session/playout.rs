//! The playout clock: which 20 ms output frame goes out when (sans-IO).
//!
//! Reply audio is queued at 48 kHz as it arrives from TTS. Frames are released in real time:
//! the first the moment it exists (no pre-buffering), each later one when its 20 ms slot
//! starts, so at most one frame is ever in flight towards the transport and a barge-in stops
//! the audio within one frame. If TTS falls behind (an underrun), the next frame is released
//! as soon as it exists and the clock restarts from there. Frames are stamped on the session's
//! output media clock, which follows wall time since the session started, so a gap between
//! replies is a gap on the clock too.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use media::{Frame48, MediaTime};

const FRAME: usize = 960;
const FRAME_TIME: Duration = Duration::from_millis(20);

/// One reply's audio on its way out.
#[derive(Debug)]
pub(crate) struct Playout {
    queue: VecDeque<f32>,
    /// Samples of this reply released so far.
    played: u64,
    /// No more audio will be queued for this reply.
    finished: bool,
    /// Wall time and frame count of the current pacing run.
    anchor: Option<(Instant, u32)>,
    /// Media time the next frame gets.
    next_time: MediaTime,
    /// A frame was due but none was queued.
    starved: bool,
}

impl Playout {
    /// An empty playout whose first frame is stamped no earlier than `not_before`.
    pub(crate) fn new(capacity_samples: usize, not_before: MediaTime) -> Self {
        Self {
            queue: VecDeque::with_capacity(capacity_samples),
            played: 0,
            finished: false,
            anchor: None,
            next_time: not_before,
            starved: false,
        }
    }

    /// Queues 48 kHz samples.
    pub(crate) fn push(&mut self, samples: &[f32]) {
        self.queue.extend(samples.iter().copied());
    }

    /// Samples queued and not yet released.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// No more audio will come; a last partial frame is padded with silence.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    /// Every sample was released and no more will come.
    pub(crate) fn done(&self) -> bool {
        self.finished && self.queue.is_empty()
    }

    /// Samples of the reply released so far.
    pub(crate) fn played(&self) -> u64 {
        self.played
    }

    /// Media time just after the last released frame (where playback stands).
    pub(crate) fn position(&self) -> MediaTime {
        self.next_time
    }

    fn frame_ready(&self) -> bool {
        self.queue.len() >= FRAME || (self.finished && !self.queue.is_empty())
    }

    /// When the next frame is due, if one is queued and waiting for its slot.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if !self.frame_ready() {
            return None;
        }
        match self.anchor {
            Some((t0, n)) if !self.starved => Some(t0 + FRAME_TIME * n),
            _ => None, // due at once: the caller releases right after queueing
        }
    }

    /// The next frame if its slot has started at `now`. `clock` is the session's media time
    /// at `now`, used to restart the stamps after an idle gap or an underrun.
    pub(crate) fn pop_due(&mut self, now: Instant, clock: MediaTime) -> Option<Frame48> {
        if !self.frame_ready() {
            if let Some((t0, n)) = self.anchor
                && t0 + FRAME_TIME * n <= now
            {
                self.starved = true;
            }
            return None;
        }
        match self.anchor {
            Some((t0, n)) if !self.starved => {
                if t0 + FRAME_TIME * n > now {
                    return None;
                }
                self.anchor = Some((t0, n + 1));
            }
            _ => {
                self.starved = false;
                self.anchor = Some((now, 1));
                self.next_time = self.next_time.max(clock);
            }
        }
        let mut frame = Frame48::silence(self.next_time);
        let n = self.queue.len().min(FRAME);
        for (out, s) in frame.samples_mut().iter_mut().zip(self.queue.drain(..n)) {
            *out = s;
        }
        self.played += n as u64;
        self.next_time = frame.end_time();
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_frame_goes_at_once_and_later_ones_in_their_slots() {
        let t0 = Instant::now();
        let mut p = Playout::new(4_800, MediaTime(480_000));
        assert!(
            p.pop_due(t0, MediaTime(480_000)).is_none(),
            "nothing queued"
        );
        p.push(&[0.1; 2_000]);
        let first = p.pop_due(t0, MediaTime(480_000)).expect("released at once");
        assert_eq!(first.time(), MediaTime(480_000));
        assert!(
            p.pop_due(t0, MediaTime(480_000)).is_none(),
            "slot not started"
        );
        assert_eq!(p.next_due(), Some(t0 + FRAME_TIME));
        let second = p.pop_due(t0 + FRAME_TIME, MediaTime(481_000)).unwrap();
        assert_eq!(second.time(), MediaTime(480_960));
        // 80 samples left: held until the reply is finished, then padded.
        assert!(p.pop_due(t0 + FRAME_TIME * 2, MediaTime(0)).is_none());
        p.finish();
        let last = p.pop_due(t0 + FRAME_TIME * 3, MediaTime(0)).unwrap();
        assert_eq!(last.samples()[79], 0.1);
        assert_eq!(last.samples()[80], 0.0);
        assert!(p.done());
        assert_eq!(p.played(), 2_000);
    }
}
