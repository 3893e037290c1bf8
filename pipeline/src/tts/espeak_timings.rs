//! Turns espeak-ng's synthesis events into [`TtsChunk`]s carrying phoneme and word timings.
//!
//! Sans-IO: [`EspeakChunker::push`] takes each [`SynthEvent`] in the order the engine sends
//! it and returns the chunk to hand on, if any. espeak-ng reports when a phoneme or word
//! *starts*; a [`Timing`] also needs its end, which is known only when the next one starts.
//! So the chunker holds back the newest audio chunk until the next one (or the end)
//! arrives and attaches every timing whose end is known by then. The engine runs about a
//! thousand times faster than real time, so holding one 20 ms chunk delays audio by
//! microseconds, while every timing reaches the caller no later than the chunk after the
//! one its phoneme starts in, and the last ones with the final chunk.

use std::time::Duration;

use local_voice::espeak::{SAMPLE_RATE_HZ, SynthEvent};

use crate::pcm::samples_to_bytes;
use crate::provider::{Timing, TimingUnit, TtsChunk};

/// A phoneme or word whose start is known and whose end is not yet.
#[derive(Debug)]
struct Open {
    text: String,
    start_ms: u32,
}

/// Assembles one request's chunks and timings.
#[derive(Debug)]
pub(crate) struct EspeakChunker {
    text: String,
    held: Option<Vec<i16>>,
    phoneme: Option<Open>,
    word: Option<Open>,
    ready: Vec<Timing>,
    chunks_out: usize,
}

impl EspeakChunker {
    /// A chunker for the synthesis of `text` (word timings quote from it).
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            held: None,
            phoneme: None,
            word: None,
            ready: Vec::new(),
            chunks_out: 0,
        }
    }

    /// How many chunks have been returned so far.
    pub(crate) fn chunks_out(&self) -> usize {
        self.chunks_out
    }

    /// Takes the next engine event; returns a chunk when one is complete.
    pub(crate) fn push(&mut self, event: SynthEvent) -> Option<TtsChunk> {
        match event {
            SynthEvent::Audio(samples) if samples.is_empty() => None,
            SynthEvent::Audio(samples) => {
                let previous = self.held.replace(samples);
                previous.map(|pcm| self.chunk(&pcm))
            }
            SynthEvent::Phoneme { mnemonic, start_ms } => {
                let next = Open {
                    text: mnemonic,
                    start_ms,
                };
                if let Some(done) = self.phoneme.replace(next) {
                    self.close(done, TimingUnit::Phoneme, start_ms);
                }
                None
            }
            SynthEvent::Word {
                text_offset,
                text_len,
                start_ms,
            } => {
                let word = self
                    .text
                    .get(text_offset..text_offset.saturating_add(text_len))
                    .unwrap_or_default()
                    .to_owned();
                let next = Open {
                    text: word,
                    start_ms,
                };
                if let Some(done) = self.word.replace(next) {
                    self.close(done, TimingUnit::Word, start_ms);
                }
                None
            }
            SynthEvent::SentenceEnd { start_ms } => {
                // The pause after a sentence belongs to no word; its phoneme (`_:`) keeps
                // its own timing.
                if let Some(done) = self.word.take() {
                    self.close(done, TimingUnit::Word, start_ms);
                }
                None
            }
            SynthEvent::Finished { samples } => {
                let end_ms =
                    u32::try_from(samples * 1000 / u64::from(SAMPLE_RATE_HZ)).unwrap_or(u32::MAX);
                if let Some(done) = self.phoneme.take() {
                    self.close(done, TimingUnit::Phoneme, end_ms);
                }
                if let Some(done) = self.word.take() {
                    self.close(done, TimingUnit::Word, end_ms);
                }
                let last = self.held.take()?;
                Some(self.chunk(&last))
            }
        }
    }

    fn close(&mut self, open: Open, unit: TimingUnit, end_ms: u32) {
        self.ready.push(Timing {
            text: open.text,
            unit,
            start: Duration::from_millis(open.start_ms.into()),
            end: Duration::from_millis(end_ms.max(open.start_ms).into()),
        });
    }

    fn chunk(&mut self, pcm: &[i16]) -> TtsChunk {
        self.chunks_out += 1;
        TtsChunk {
            pcm: samples_to_bytes(pcm),
            sample_rate: SAMPLE_RATE_HZ,
            timings: std::mem::take(&mut self.ready),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phoneme(m: &str, start_ms: u32) -> SynthEvent {
        SynthEvent::Phoneme {
            mnemonic: m.into(),
            start_ms,
        }
    }

    #[test]
    fn each_timing_rides_on_the_first_chunk_after_its_end_is_known() {
        let mut c = EspeakChunker::new("hi yo");
        let events = vec![
            SynthEvent::Word {
                text_offset: 0,
                text_len: 2,
                start_ms: 0,
            },
            phoneme("h", 0),
            SynthEvent::Audio(vec![1; 441]), // 0-20 ms
            phoneme("aI", 15),
            SynthEvent::Audio(vec![2; 441]), // 20-40 ms
            SynthEvent::Word {
                text_offset: 3,
                text_len: 2,
                start_ms: 30,
            },
            phoneme("j", 30),
            SynthEvent::Audio(vec![3; 441]), // 40-60 ms
            SynthEvent::Finished { samples: 1323 },
        ];
        let chunks: Vec<TtsChunk> = events.into_iter().filter_map(|e| c.push(e)).collect();

        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.sample_rate == 22_050));
        let texts = |i: usize| -> Vec<(&str, u64, u64)> {
            chunks[i]
                .timings
                .iter()
                .map(|t| {
                    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap();
                    (t.text.as_str(), ms(t.start), ms(t.end))
                })
                .collect()
        };
        assert_eq!(texts(0), [("h", 0, 15)], "h ended when aI started");
        assert_eq!(texts(1), [("hi", 0, 30), ("aI", 15, 30)]);
        assert_eq!(texts(2), [("j", 30, 60), ("yo", 30, 60)]);
        assert_eq!(c.chunks_out(), 3);
    }

    #[test]
    fn a_synthesis_without_audio_gives_no_chunk() {
        let mut c = EspeakChunker::new("");
        assert!(c.push(SynthEvent::Audio(Vec::new())).is_none());
        assert!(c.push(SynthEvent::Finished { samples: 0 }).is_none());
        assert_eq!(c.chunks_out(), 0);
    }
}
