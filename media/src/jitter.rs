//! Jitter buffer for incoming Opus RTP packets: reorders, detects loss, tells the decoder when
//! to use FEC or concealment, and keeps its delay adaptive and its depth bounded.
//!
//! Sans-IO: [`JitterBuffer::push`] takes a packet and its arrival `Instant`;
//! [`JitterBuffer::pop`] is called once per 20 ms by the caller's playout clock and says what
//! to play: a packet, a recovery from the next packet's FEC, concealment, or nothing yet.
//! Packet storage is a fixed ring of `capacity` slots allocated up front; nothing is allocated
//! per packet.
//!
//! Sequence numbers are 16-bit and wrap; they are extended to 64 bits relative to the highest
//! seen, so reordering across the wrap is handled. The target delay follows the RFC 3550
//! interarrival jitter estimate (three times the jitter, in whole frames, between the
//! configured minimum and maximum) and grows by a frame after each underrun, giving that frame
//! back after 5 s without one. When the buffer holds more than three frames beyond its target
//! (a burst after a stall), one frame is discarded per pop; its 20 ms then show as a step in
//! the frames' media time.

use std::time::{Duration, Instant};

use crate::codec::MAX_PACKET;
use crate::error::{MediaError, Result};
use crate::time::MediaTime;

/// Jitter buffer settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JitterConfig {
    /// Packets held at most (bounded memory: `capacity * 1275` bytes). Default 50 (one second).
    pub capacity: usize,
    /// Smallest target delay in 20 ms frames. Default 2 (40 ms).
    pub min_delay_frames: u32,
    /// Largest target delay in frames. Default 10 (200 ms).
    pub max_delay_frames: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            capacity: 50,
            min_delay_frames: 2,
            max_delay_frames: 10,
        }
    }
}

/// Counters and gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Packets that arrived after their turn to play had passed (dropped).
    pub late: u64,
    /// Packets received twice (dropped).
    pub duplicates: u64,
    /// Packets rejected as malformed (empty or oversized).
    pub malformed: u64,
    /// Frames whose packet was missing at playout time.
    pub lost: u64,
    /// Of those, frames recoverable from the next packet's FEC.
    pub fec_recoverable: u64,
    /// Frames played while the buffer was empty (underruns).
    pub underruns: u64,
    /// Packets discarded to keep the delay near its target or because they were too far ahead.
    pub discarded: u64,
    /// Packets held now.
    pub depth: u32,
    /// Current target delay in frames.
    pub target_frames: u32,
    /// RFC 3550 interarrival jitter estimate, in milliseconds.
    pub jitter_ms: f64,
}

/// What to play for the next 20 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// Still filling up to the target delay at the start of the stream: play nothing yet.
    Buffering,
    /// Decode this packet.
    Packet {
        /// The Opus payload.
        payload: &'a [u8],
        /// Media time of the frame.
        time: MediaTime,
    },
    /// The packet is lost, but the next one is here: decode its FEC data
    /// (`OpusDecoder::decode_fec`).
    Recover {
        /// The following packet, whose FEC data rebuilds the lost frame.
        next_payload: &'a [u8],
        /// Media time of the lost frame.
        time: MediaTime,
    },
    /// The packet is lost and nothing follows it yet: conceal (`OpusDecoder::conceal`).
    Conceal {
        /// Media time of the lost frame.
        time: MediaTime,
    },
}

struct Slot {
    seq: u64,
    occupied: bool,
    len: usize,
    data: [u8; MAX_PACKET],
}

/// Reorders Opus RTP packets and paces them out one per 20 ms.
pub struct JitterBuffer {
    config: JitterConfig,
    slots: Box<[Slot]>,
    highest: Option<u64>,
    next: Option<u64>,
    first_seq: u64,
    held: u32,
    target: u32,
    underrun_bonus: u32,
    frames_since_underrun: u32,
    last_arrival: Option<(Instant, u32)>,
    jitter_ticks: f64,
    stats: JitterStats,
}

impl std::fmt::Debug for JitterBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitterBuffer")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

const FRAME_TICKS: u64 = 960;
/// Frames without an underrun after which one frame of underrun-driven delay is given back.
const UNDERRUN_FORGET_FRAMES: u32 = 250;

impl JitterBuffer {
    /// An empty buffer; all packet storage is allocated here.
    pub fn new(config: JitterConfig) -> Result<Self> {
        if !(4..=1000).contains(&config.capacity) {
            return Err(MediaError::InvalidConfig {
                key: "capacity",
                reason: "must be 4..=1000 packets",
            });
        }
        if config.min_delay_frames == 0 || config.min_delay_frames > config.max_delay_frames {
            return Err(MediaError::InvalidConfig {
                key: "min_delay_frames",
                reason: "must be at least 1 and at most max_delay_frames",
            });
        }
        if config.max_delay_frames as usize >= config.capacity {
            return Err(MediaError::InvalidConfig {
                key: "max_delay_frames",
                reason: "must be below capacity",
            });
        }
        let slots = (0..config.capacity)
            .map(|_| Slot {
                seq: 0,
                occupied: false,
                len: 0,
                data: [0; MAX_PACKET],
            })
            .collect();
        Ok(Self {
            target: config.min_delay_frames,
            config,
            slots,
            highest: None,
            next: None,
            first_seq: 0,
            held: 0,
            underrun_bonus: 0,
            frames_since_underrun: 0,
            last_arrival: None,
            jitter_ticks: 0.0,
            stats: JitterStats::default(),
        })
    }

    /// Counters and gauges now.
    #[must_use]
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            depth: self.held,
            target_frames: self.target,
            jitter_ms: self.jitter_ticks / 48.0,
            ..self.stats
        }
    }

    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            None => u64::from(seq) + (1 << 32), // headroom so early reordering stays positive
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                h.wrapping_add_signed(delta)
            }
        }
    }

    fn index(&self, seq: u64) -> usize {
        (seq % self.slots.len() as u64) as usize
    }

    /// Stores an arriving packet. Malformed packets are counted and rejected with an error; late
    /// and duplicate packets are counted and dropped.
    pub fn push(
        &mut self,
        seq: u16,
        rtp_timestamp: u32,
        payload: &[u8],
        now: Instant,
    ) -> Result<()> {
        if payload.is_empty() || payload.len() > MAX_PACKET {
            self.stats.malformed += 1;
            return Err(MediaError::MalformedPacket { len: payload.len() });
        }
        let ext = self.extend(seq);
        self.update_jitter(now, rtp_timestamp);
        if let Some(next) = self.next
            && ext < next
        {
            self.stats.late += 1;
            return Ok(());
        }
        let capacity = self.slots.len() as u64;
        if let Some(next) = self.next
            && ext >= next + capacity
        {
            // Too far ahead to hold: jump the playout point forward, dropping what is skipped.
            let new_next = ext + 1 - capacity;
            for s in next..new_next.min(next + capacity) {
                let i = self.index(s);
                if self.slots[i].occupied && self.slots[i].seq == s {
                    self.slots[i].occupied = false;
                    self.held -= 1;
                    self.stats.discarded += 1;
                }
            }
            self.next = Some(new_next);
        }
        let i = self.index(ext);
        let slot = &mut self.slots[i];
        if slot.occupied {
            if slot.seq == ext {
                self.stats.duplicates += 1;
                return Ok(());
            }
            // An older packet still in this slot (only before playout starts): replace it.
            self.held -= 1;
            self.stats.discarded += 1;
        }
        slot.seq = ext;
        slot.occupied = true;
        slot.len = payload.len();
        slot.data[..payload.len()].copy_from_slice(payload);
        self.held += 1;
        self.stats.received += 1;
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        Ok(())
    }

    fn update_jitter(&mut self, now: Instant, ts: u32) {
        if let Some((prev_at, prev_ts)) = self.last_arrival {
            let arrival = now.saturating_duration_since(prev_at).as_secs_f64() * 48_000.0
                - prev_at.saturating_duration_since(now).as_secs_f64() * 48_000.0;
            let sent = f64::from(ts.wrapping_sub(prev_ts) as i32);
            let d = (arrival - sent).abs();
            self.jitter_ticks += (d - self.jitter_ticks) / 16.0;
        }
        self.last_arrival = Some((now, ts));
        let from_jitter = (3.0 * self.jitter_ticks / FRAME_TICKS as f64).ceil() as u32;
        self.target = (from_jitter.max(self.config.min_delay_frames) + self.underrun_bonus)
            .min(self.config.max_delay_frames);
    }

    fn lowest_held(&self) -> Option<u64> {
        let h = self.highest?;
        let lo = h.saturating_sub(self.slots.len() as u64 - 1);
        (lo..=h).find(|s| {
            let slot = &self.slots[self.index(*s)];
            slot.occupied && slot.seq == *s
        })
    }

    fn take(&mut self, seq: u64) -> bool {
        let i = self.index(seq);
        let slot = &mut self.slots[i];
        if slot.occupied && slot.seq == seq {
            slot.occupied = false;
            self.held -= 1;
            true
        } else {
            false
        }
    }

    fn held_at(&self, seq: u64) -> Option<&[u8]> {
        let slot = &self.slots[self.index(seq)];
        (slot.occupied && slot.seq == seq).then(|| &slot.data[..slot.len])
    }

    /// What to play for the next 20 ms; call once per frame from the playout clock.
    pub fn pop(&mut self) -> Playout<'_> {
        let next = match self.next {
            Some(next) => next,
            None => {
                if self.held < self.target {
                    return Playout::Buffering;
                }
                let Some(lowest) = self.lowest_held() else {
                    return Playout::Buffering;
                };
                self.first_seq = lowest;
                lowest
            }
        };
        // Held well beyond the target (the network sped up after a stall): skip a frame to
        // bring the delay back down.
        let mut next = next;
        if self.held > self.target + 3 && self.take(next) {
            self.stats.discarded += 1;
            next += 1;
        }
        self.next = Some(next + 1);
        // A calm network earns the extra delay back: one frame per 5 s without an underrun.
        self.frames_since_underrun = self.frames_since_underrun.saturating_add(1);
        if self.frames_since_underrun >= UNDERRUN_FORGET_FRAMES && self.underrun_bonus > 0 {
            self.underrun_bonus -= 1;
            self.frames_since_underrun = 0;
        }
        let time = MediaTime((next - self.first_seq) * FRAME_TICKS);
        if self.take(next) {
            let slot = &self.slots[self.index(next)];
            return Playout::Packet {
                payload: &slot.data[..slot.len],
                time,
            };
        }
        self.stats.lost += 1;
        if self.held == 0 {
            self.stats.underruns += 1;
            self.underrun_bonus = (self.underrun_bonus + 1).min(self.config.max_delay_frames);
            self.frames_since_underrun = 0;
        }
        if self.held_at(next + 1).is_some() {
            self.stats.fec_recoverable += 1;
            let slot = &self.slots[self.index(next + 1)];
            return Playout::Recover {
                next_payload: &slot.data[..slot.len],
                time,
            };
        }
        Playout::Conceal { time }
    }

    /// Frames of audio the buffer holds now, as a duration.
    #[must_use]
    pub fn buffered(&self) -> Duration {
        Duration::from_millis(u64::from(self.held) * 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer() -> JitterBuffer {
        JitterBuffer::new(JitterConfig {
            capacity: 8,
            min_delay_frames: 2,
            max_delay_frames: 4,
        })
        .expect("valid")
    }

    fn seq_of(p: Playout<'_>) -> Option<u8> {
        match p {
            Playout::Packet { payload, .. } => Some(payload[0]),
            _ => None,
        }
    }

    #[test]
    fn reorders_across_the_sequence_wrap() {
        let mut jb = buffer();
        let now = Instant::now();
        for (seq, tag) in [(65_535u16, 1u8), (1, 3), (0, 2), (2, 4)] {
            jb.push(seq, u32::from(tag) * 960, &[tag], now)
                .expect("push");
        }
        let order: Vec<_> = (0..4).map(|_| seq_of(jb.pop())).collect();
        assert_eq!(order, [Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn a_gap_asks_for_fec_then_concealment_and_late_packets_are_dropped() {
        let mut jb = buffer();
        let now = Instant::now();
        jb.push(10, 0, &[10], now).expect("push");
        jb.push(12, 1920, &[12], now).expect("push");
        assert_eq!(seq_of(jb.pop()), Some(10));
        assert!(matches!(
            jb.pop(),
            Playout::Recover {
                next_payload: [12],
                ..
            }
        ));
        assert_eq!(seq_of(jb.pop()), Some(12));
        assert!(matches!(jb.pop(), Playout::Conceal { .. }));
        jb.push(11, 960, &[11], now)
            .expect("a late packet is not an error");
        jb.push(12, 1920, &[12], now).expect("push");
        let stats = jb.stats();
        assert_eq!(
            (
                stats.lost,
                stats.late,
                stats.fec_recoverable,
                stats.underruns
            ),
            (2, 2, 1, 1)
        );
    }

    #[test]
    fn depth_stays_bounded_when_a_sender_races_ahead() {
        let mut jb = buffer();
        let now = Instant::now();
        for seq in 0..100u16 {
            jb.push(seq, u32::from(seq) * 960, &[1], now).expect("push");
            if seq == 3 {
                let _ = jb.pop();
            }
        }
        assert!(jb.stats().depth <= 8);
        assert!(jb.stats().discarded > 0);
    }

    #[test]
    fn the_target_delay_follows_network_jitter() {
        let config = JitterConfig::default();
        let start = Instant::now();
        let mut calm = JitterBuffer::new(config.clone()).expect("valid");
        let mut rough = JitterBuffer::new(config).expect("valid");
        for i in 0..200u16 {
            let sent = u32::from(i) * 960;
            calm.push(
                i,
                sent,
                &[1],
                start + Duration::from_millis(u64::from(i) * 20),
            )
            .expect("push");
            // Up to 60 ms of extra delay, alternating.
            let extra = if i % 2 == 0 { 0 } else { 60 };
            rough
                .push(
                    i,
                    sent,
                    &[1],
                    start + Duration::from_millis(u64::from(i) * 20 + extra),
                )
                .expect("push");
        }
        assert_eq!(calm.stats().target_frames, 2, "{:?}", calm.stats());
        assert!(rough.stats().target_frames > 4, "{:?}", rough.stats());
        assert!(rough.stats().target_frames <= 10);
    }

    #[test]
    fn duplicates_are_counted_once() {
        let mut jb = buffer();
        let now = Instant::now();
        jb.push(5, 0, &[5], now).expect("push");
        jb.push(5, 0, &[5], now).expect("push");
        assert_eq!((jb.stats().received, jb.stats().duplicates), (1, 1));
    }
}
