//! Which part of a reply the caller actually heard (sans-IO).
//!
//! Each chunk sent to TTS becomes a segment: its byte range in the reply text and its span in
//! the reply's 48 kHz audio. Character or word timings from the provider say where inside the
//! span each piece of text ends; without timings the position is interpolated over the
//! segment's audio once its length is known. Given how many samples were played, the heard
//! text is the reply up to the last whole word whose audio was played.

use std::collections::VecDeque;
use std::time::Duration;

use crate::provider::{Timing, TimingUnit};

use super::OUT_RATE;

#[derive(Debug)]
struct Segment {
    /// Byte range of the chunk in the reply text.
    text_start: usize,
    text_end: usize,
    /// Sample span in the reply's 48 kHz audio (`end` is known once its TTS stream ended).
    audio_start: u64,
    audio_end: Option<u64>,
    /// (reply byte offset just after a piece, sample at which that piece ends), in order.
    marks: Vec<(usize, u64)>,
    /// Byte offset inside the chunk up to which timings were matched.
    cursor: usize,
}

/// The segments of one reply.
#[derive(Debug, Default)]
pub(crate) struct Spoken {
    segments: VecDeque<Segment>,
}

fn samples(d: Duration) -> u64 {
    (d.as_nanos() * u128::from(OUT_RATE) / 1_000_000_000) as u64
}

impl Spoken {
    /// A chunk covering `reply[text_start..text_end]` starts at `audio_start`.
    pub(crate) fn begin(&mut self, text_start: usize, text_end: usize, audio_start: u64) {
        self.segments.push_back(Segment {
            text_start,
            text_end,
            audio_start,
            audio_end: None,
            marks: Vec::new(),
            cursor: 0,
        });
    }

    /// Timings of the current segment (offsets from its audio start), matched to its text.
    pub(crate) fn timings(&mut self, reply: &str, timings: &[Timing]) {
        let Some(seg) = self.segments.back_mut() else {
            return;
        };
        let chunk = &reply[seg.text_start..seg.text_end];
        for t in timings {
            let found = match t.unit {
                TimingUnit::Phoneme => None,
                TimingUnit::Character | TimingUnit::Word => {
                    let rest = &chunk[seg.cursor.min(chunk.len())..];
                    let piece = t.text.as_str();
                    if piece.is_empty() {
                        None
                    } else {
                        rest.find(piece).map(|i| seg.cursor + i + piece.len())
                    }
                }
            };
            if let Some(end) = found {
                seg.cursor = end;
                seg.marks
                    .push((seg.text_start + end, seg.audio_start + samples(t.end)));
            }
        }
    }

    /// The current segment's audio ended at `audio_end`.
    pub(crate) fn end(&mut self, audio_end: u64) {
        if let Some(seg) = self.segments.back_mut() {
            seg.audio_end = Some(audio_end);
        }
    }

    /// Byte length of the part of `reply` heard once `played` samples went out, cut back to
    /// a whole word.
    pub(crate) fn heard<'a>(&self, reply: &'a str, played: u64) -> &'a str {
        let mut upto = 0;
        for seg in &self.segments {
            if played <= seg.audio_start {
                break;
            }
            if seg.audio_end.is_some_and(|end| played >= end) {
                upto = seg.text_end;
                continue;
            }
            let by_marks = seg
                .marks
                .iter()
                .take_while(|(_, at)| *at <= played)
                .last()
                .map(|(byte, _)| *byte);
            let by_time = seg.audio_end.map(|end| {
                let span = end.saturating_sub(seg.audio_start).max(1);
                let frac = (played - seg.audio_start) as f64 / span as f64;
                let len = seg.text_end - seg.text_start;
                let mut b = seg.text_start + (frac * len as f64) as usize;
                while !reply.is_char_boundary(b) {
                    b -= 1;
                }
                b
            });
            let pos = if seg.marks.is_empty() {
                by_time
            } else {
                by_marks
            };
            if let Some(pos) = pos {
                upto = whole_word(reply, seg.text_start, pos, seg.text_end);
            }
            break;
        }
        reply[..upto].trim_end()
    }
}

/// `pos` moved back to the end of the last whole word in `reply[start..end]` (or kept when a
/// word ends exactly there).
fn whole_word(reply: &str, start: usize, pos: usize, end: usize) -> usize {
    if pos >= end {
        return end;
    }
    let at_boundary = reply[pos..].starts_with(char::is_whitespace)
        || reply[..pos].ends_with(|c: char| c.is_whitespace() || c.is_ascii_punctuation());
    if at_boundary {
        return pos;
    }
    reply[start..pos]
        .rfind(char::is_whitespace)
        .map_or(start, |i| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(text: &str, per_char: Duration) -> Vec<Timing> {
        text.chars()
            .enumerate()
            .map(|(i, c)| Timing {
                text: c.to_string(),
                unit: TimingUnit::Character,
                start: per_char * i as u32,
                end: per_char * (i as u32 + 1),
            })
            .collect()
    }

    #[test]
    fn with_character_timings_the_heard_text_stops_at_the_last_whole_word_played() {
        let reply = "Hello there, friend. How are you?";
        let mut s = Spoken::default();
        let first = "Hello there, friend.";
        s.begin(0, first.len(), 0);
        s.timings(reply, &chars(first, Duration::from_millis(50)));
        s.end(samples(Duration::from_millis(50) * first.len() as u32));
        let second_start = reply.find("How").unwrap();
        s.begin(second_start, reply.len(), 48_000);
        // 8 characters in ("Hello th"): the caller heard "Hello".
        assert_eq!(s.heard(reply, 8 * 2_400), "Hello");
        assert_eq!(s.heard(reply, 0), "");
        // The whole first chunk and nothing of the second.
        assert_eq!(s.heard(reply, 48_000), "Hello there, friend.");
    }

    #[test]
    fn without_timings_the_position_is_interpolated_once_the_length_is_known() {
        let reply = "one two three four";
        let mut s = Spoken::default();
        s.begin(0, reply.len(), 0);
        assert_eq!(
            s.heard(reply, 1_000),
            "",
            "length unknown: nothing is claimed"
        );
        s.end(18_000);
        assert_eq!(s.heard(reply, 9_000), "one two");
        assert_eq!(s.heard(reply, 18_000), reply);
    }
}
