//! Turns a call's timeline (when the caller spoke, when reply packets arrived) into per-turn
//! measurements (sans-IO: plain data in, numbers out).
//!
//! All times are offsets from the moment the caller's first microphone frame was due, so the
//! recording's turn times and packet arrival times share one clock.

use std::time::Duration;

use crate::script::Turn;

/// Reply packets further apart than this belong to different answers. The gateway sends
/// nothing between answers, and inside one it paces 20 ms frames, so a 300 ms hole means the
/// answer stopped.
pub const BURST_GAP: Duration = Duration::from_millis(300);

/// One reply RTP packet as the caller received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rx {
    /// Arrival.
    pub at: Duration,
    /// Whether it decoded to more than near-silence.
    pub audible: bool,
}

/// What one turn of one call measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TurnResult {
    /// Speech end -> first audible reply packet of an answer that began after it.
    pub first_audio: Option<Duration>,
    /// When the caller began this turn while an answer was playing: speech start -> last packet
    /// of that answer.
    pub barge_in_stop: Option<Duration>,
    /// Whether an answer was playing when this turn began (a barge-in attempt).
    pub barged_in: bool,
    /// Why `first_audio` is missing, if it is.
    pub missing: Option<Missing>,
}

/// Why a turn got no latency figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// No reply audio at all after the turn ended (within the call).
    NoReply,
    /// An answer that began before the turn ended was still playing through it, and no new one
    /// began after it.
    OldAnswerStillPlaying,
}

/// A run of reply packets with no gap of [`BURST_GAP`] or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Burst {
    first: Duration,
    last: Duration,
}

fn bursts(packets: &[Rx]) -> Vec<Burst> {
    let mut out: Vec<Burst> = Vec::new();
    for p in packets {
        match out.last_mut() {
            Some(b) if p.at.saturating_sub(b.last) < BURST_GAP => b.last = p.at,
            _ => out.push(Burst {
                first: p.at,
                last: p.at,
            }),
        }
    }
    out
}

/// Measures every turn of one call. `packets` must be in arrival order.
#[must_use]
pub fn analyse(turns: &[Turn], packets: &[Rx]) -> Vec<TurnResult> {
    let bursts = bursts(packets);
    turns
        .iter()
        .enumerate()
        .map(|(i, turn)| {
            let mut r = TurnResult::default();
            // An answer playing when the caller started: a barge-in.
            if let Some(b) = bursts
                .iter()
                .find(|b| b.first <= turn.start && b.last >= turn.start)
            {
                r.barged_in = true;
                r.barge_in_stop = Some(b.last - turn.start);
            }
            // The reply to this turn: the first answer that begins after the speech ended
            // (and before the next turn ends, so a late reply is not credited to the wrong
            // turn).
            let limit = turns.get(i + 1).map_or(Duration::MAX, |next| next.end);
            let fresh = packets.iter().find(|p| {
                p.audible
                    && p.at > turn.end
                    && p.at < limit
                    && bursts
                        .iter()
                        .any(|b| b.first > turn.end && b.first <= p.at && p.at <= b.last)
            });
            match fresh {
                Some(p) => r.first_audio = Some(p.at - turn.end),
                None => {
                    let playing = bursts
                        .iter()
                        .any(|b| b.first <= turn.end && b.last > turn.end);
                    r.missing = Some(if playing {
                        Missing::OldAnswerStillPlaying
                    } else {
                        Missing::NoReply
                    });
                }
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn turn(start: u64, end: u64) -> Turn {
        Turn {
            start: ms(start),
            end: ms(end),
        }
    }

    /// Packets every 20 ms in `[from, to)`, audible unless `quiet`.
    fn answer(from: u64, to: u64, quiet: u64) -> Vec<Rx> {
        (from..to)
            .step_by(20)
            .map(|t| Rx {
                at: ms(t),
                audible: t >= from + quiet,
            })
            .collect()
    }

    #[test]
    fn two_turns_each_answered_after_it_ends() {
        let turns = [turn(500, 3000), turn(5800, 8200)];
        let mut packets = answer(3900, 5200, 40);
        packets.extend(answer(9000, 10_000, 0));
        let r = analyse(&turns, &packets);
        // The first answer's first two packets decode to silence: latency counts audible audio.
        assert_eq!(r[0].first_audio, Some(ms(940)));
        assert_eq!(r[1].first_audio, Some(ms(800)));
        assert!(!r[0].barged_in && !r[1].barged_in);
        assert_eq!(r[1].barge_in_stop, None);
    }

    #[test]
    fn a_barge_in_measures_how_long_the_old_answer_kept_playing() {
        let turns = [turn(500, 3800), turn(5400, 8000)];
        // The first answer runs from 4.6 s and is cut at 5.78 s; the second begins at 8.9 s.
        let mut packets = answer(4600, 5800, 0);
        packets.extend(answer(8900, 9500, 0));
        let r = analyse(&turns, &packets);
        assert!(r[1].barged_in);
        assert_eq!(r[1].barge_in_stop, Some(ms(380)));
        assert_eq!(r[1].first_audio, Some(ms(900)));
        assert_eq!(r[0].first_audio, Some(ms(800)));
    }

    #[test]
    fn an_answer_that_never_stops_is_not_credited_as_the_next_reply() {
        let turns = [turn(500, 3800), turn(5400, 8000)];
        let packets = answer(4600, 9800, 0);
        let r = analyse(&turns, &packets);
        assert_eq!(r[1].barge_in_stop, Some(ms(9780 - 5400)));
        assert_eq!(r[1].first_audio, None);
        assert_eq!(r[1].missing, Some(Missing::OldAnswerStillPlaying));
    }

    #[test]
    fn silence_only_or_no_packets_is_no_reply() {
        let turns = [turn(500, 3000)];
        assert_eq!(analyse(&turns, &[])[0].missing, Some(Missing::NoReply));
        let quiet = answer(3500, 4000, 10_000);
        assert_eq!(analyse(&turns, &quiet)[0].missing, Some(Missing::NoReply));
    }

    #[test]
    fn bursts_split_at_the_gap() {
        let mut p = answer(0, 100, 0);
        p.extend(answer(390, 500, 0));
        p.extend(answer(600, 700, 0));
        let b = bursts(&p);
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!((b[1].first, b[1].last), (ms(390), ms(680)));
    }
}
