//! End of turn: a state machine over VAD probabilities and media time.
//!
//! ```text
//!            p >= speech_threshold           speech lasted min_speech
//!   Idle ──────────────────────────▶ Candidate ─────────────────────▶ Speaking  (SpeechStart)
//!     ▲   p < silence_threshold (a cough,  │                              │  ▲
//!     └──────────── "mm": no event) ◀──────┘        p < silence_threshold │  │ p >= speech_threshold
//!     │                                                                   ▼  │ (SpeechResume if a
//!     └──────── silence lasted min_silence (TurnEnd) ◀──────────────── Paused   SpeechStop was sent)
//!                                           silence lasted speech_stop (SpeechStop)
//! ```
//!
//! Every event carries media times taken from the frames (so they are sample-accurate on the
//! call's media clock and already corrected for the resampler's delay). A sound shorter than
//! `min_speech` never leaves `Candidate`, so it neither starts a turn nor, for the session
//! above, interrupts the companion.

use std::time::Duration;

use crate::error::{MediaError, Result};
use crate::time::MediaTime;

/// Turn detector settings. Defaults were tuned on the recordings in `media/testdata`
/// (`tests/turns.rs`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// A frame whose VAD probability is at least this is speech. Default 0.5 (Silero's own).
    pub speech_threshold: f32,
    /// A frame whose probability is below this is silence; between the two thresholds the
    /// previous state holds (hysteresis). Default 0.35.
    pub silence_threshold: f32,
    /// Speech must last this long before it counts (shorter sounds are ignored). Default 200 ms:
    /// longer than a cough or an "mm", shorter than a word like "stop".
    pub min_speech_ms: u32,
    /// Silence after speech that emits `SpeechStop` (a pause; a good point to start speculative
    /// work). Default 200 ms.
    pub speech_stop_ms: u32,
    /// Silence after speech that ends the turn. Default 550 ms: longer than the pauses inside
    /// the test utterances (up to 0.37 s), so a breath after "Hello!" does not end the turn.
    pub min_silence_ms: u32,
    /// Audio kept before the detected start and handed to speech recognition with the turn
    /// (the detector notices speech slightly after its first phoneme). Default 300 ms.
    pub pre_roll_ms: u32,
    /// How far the VAD's speech decision lags the first phoneme; subtracted from start times.
    /// Default 60 ms (measured on the test recordings: the model needs about two 32 ms
    /// windows of speech to pass the threshold).
    pub start_latency_ms: u32,
    /// How far the VAD's silence decision lags the last phoneme; subtracted from end times.
    /// Default 30 ms (measured on the test recordings: about one model window).
    pub end_latency_ms: u32,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            speech_threshold: 0.5,
            silence_threshold: 0.35,
            min_speech_ms: 200,
            speech_stop_ms: 200,
            min_silence_ms: 550,
            pre_roll_ms: 300,
            start_latency_ms: 60,
            end_latency_ms: 30,
        }
    }
}

impl TurnConfig {
    /// Checks the values fit together.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.speech_threshold) {
            return Err(MediaError::InvalidConfig {
                key: "speech_threshold",
                reason: "must be within 0..=1",
            });
        }
        if !(0.0..=self.speech_threshold).contains(&self.silence_threshold) {
            return Err(MediaError::InvalidConfig {
                key: "silence_threshold",
                reason: "must be within 0..=speech_threshold",
            });
        }
        if self.speech_stop_ms >= self.min_silence_ms {
            return Err(MediaError::InvalidConfig {
                key: "speech_stop_ms",
                reason: "must be less than min_silence_ms",
            });
        }
        Ok(())
    }
}

/// What the detector noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEvent {
    /// The user started a turn (speech lasted `min_speech`).
    SpeechStart {
        /// Where speech began.
        at: MediaTime,
        /// Where the audio for speech recognition should begin (`at` minus the pre-roll).
        audio_from: MediaTime,
    },
    /// The user paused (silence lasted `speech_stop`); the turn may still continue.
    SpeechStop {
        /// Where the silence began.
        at: MediaTime,
    },
    /// The user spoke again after a `SpeechStop`, in the same turn.
    SpeechResume {
        /// Where speech began again.
        at: MediaTime,
    },
    /// The turn is over (silence lasted `min_silence`).
    TurnEnd {
        /// Where the turn's speech began.
        start: MediaTime,
        /// Where its speech ended.
        end: MediaTime,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Candidate {
        onset: MediaTime,
    },
    Speaking {
        start: MediaTime,
    },
    Paused {
        start: MediaTime,
        silence_from: MediaTime,
        stop_sent: bool,
    },
}

/// One call's end-of-turn detector.
#[derive(Debug, Clone)]
pub struct TurnDetector {
    config: TurnConfig,
    state: State,
    min_speech: u64,
    speech_stop: u64,
    min_silence: u64,
    pre_roll: Duration,
    start_latency: Duration,
    end_latency: Duration,
}

fn ms_ticks(ms: u32) -> u64 {
    u64::from(ms) * u64::from(crate::time::CLOCK_RATE) / 1000
}

impl TurnDetector {
    /// A detector in the idle state.
    pub fn new(config: TurnConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            min_speech: ms_ticks(config.min_speech_ms),
            speech_stop: ms_ticks(config.speech_stop_ms),
            min_silence: ms_ticks(config.min_silence_ms),
            pre_roll: Duration::from_millis(config.pre_roll_ms.into()),
            start_latency: Duration::from_millis(config.start_latency_ms.into()),
            end_latency: Duration::from_millis(config.end_latency_ms.into()),
            config,
            state: State::Idle,
        })
    }

    /// Whether the user is in a turn (speaking or pausing within it).
    #[must_use]
    pub const fn in_turn(&self) -> bool {
        matches!(self.state, State::Speaking { .. } | State::Paused { .. })
    }

    /// Feeds the VAD probability for the frame `[start, end)` of the media clock.
    pub fn on_frame(
        &mut self,
        probability: f32,
        start: MediaTime,
        end: MediaTime,
    ) -> Option<TurnEvent> {
        let speech = probability >= self.config.speech_threshold;
        // NaN counts as silence.
        let silence = probability.is_nan() || probability < self.config.silence_threshold;
        match self.state {
            State::Idle => {
                if speech {
                    let onset = start.saturating_sub(self.start_latency);
                    self.state = State::Candidate { onset };
                    return self.confirm(onset, end);
                }
                None
            }
            State::Candidate { onset } => {
                if silence {
                    self.state = State::Idle;
                    return None;
                }
                self.confirm(onset, end)
            }
            State::Speaking { start: turn_start } => {
                if silence {
                    let silence_from = start.saturating_sub(self.end_latency);
                    self.state = State::Paused {
                        start: turn_start,
                        silence_from,
                        stop_sent: false,
                    };
                }
                None
            }
            State::Paused {
                start: turn_start,
                silence_from,
                stop_sent,
            } => {
                if speech {
                    self.state = State::Speaking { start: turn_start };
                    let at = start.saturating_sub(self.start_latency);
                    return stop_sent.then_some(TurnEvent::SpeechResume { at });
                }
                let quiet = end.0.saturating_sub(silence_from.0);
                if quiet >= self.min_silence {
                    self.state = State::Idle;
                    return Some(TurnEvent::TurnEnd {
                        start: turn_start,
                        end: silence_from,
                    });
                }
                if !stop_sent && quiet >= self.speech_stop {
                    self.state = State::Paused {
                        start: turn_start,
                        silence_from,
                        stop_sent: true,
                    };
                    return Some(TurnEvent::SpeechStop { at: silence_from });
                }
                None
            }
        }
    }

    fn confirm(&mut self, onset: MediaTime, end: MediaTime) -> Option<TurnEvent> {
        if end.0.saturating_sub(onset.0) >= self.min_speech {
            self.state = State::Speaking { start: onset };
            return Some(TurnEvent::SpeechStart {
                at: onset,
                audio_from: onset.saturating_sub(self.pre_roll),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds one probability per 20 ms frame and returns the events with their frame index.
    fn run(probabilities: &[f32]) -> Vec<(usize, TurnEvent)> {
        let config = TurnConfig {
            start_latency_ms: 0,
            end_latency_ms: 0,
            ..TurnConfig::default()
        };
        let mut detector = TurnDetector::new(config).expect("valid");
        probabilities
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let start = MediaTime(i as u64 * 960);
                detector
                    .on_frame(*p, start, MediaTime(start.0 + 960))
                    .map(|e| (i, e))
            })
            .collect()
    }

    #[test]
    fn a_short_sound_starts_nothing() {
        let mut p = vec![0.0; 10];
        p.extend([0.9; 5]); // 100 ms: a cough
        p.extend([0.0; 50]);
        assert!(run(&p).is_empty());
    }

    #[test]
    fn a_turn_with_a_pause_inside_is_one_turn() {
        let mut p = vec![0.0; 5];
        p.extend([0.9; 30]); // 600 ms speech from frame 5
        p.extend([0.1; 15]); // 300 ms pause: SpeechStop, not TurnEnd
        p.extend([0.9; 20]); // speech again from frame 50
        p.extend([0.0; 40]); // silence from frame 70
        let events = run(&p);
        let at = |i: u64| MediaTime(i * 960);
        assert_eq!(
            events.iter().map(|e| e.1).collect::<Vec<_>>(),
            vec![
                TurnEvent::SpeechStart {
                    at: at(5),
                    audio_from: at(5).saturating_sub(Duration::from_millis(300))
                },
                TurnEvent::SpeechStop { at: at(35) },
                TurnEvent::SpeechResume { at: at(50) },
                TurnEvent::SpeechStop { at: at(70) },
                TurnEvent::TurnEnd {
                    start: at(5),
                    end: at(70)
                },
            ]
        );
        // SpeechStart is confirmed once min_speech (200 ms = 10 frames) has passed.
        assert_eq!(events[0].0, 14);
    }

    #[test]
    fn bad_configs_name_their_key() {
        let bad = TurnConfig {
            speech_stop_ms: 900,
            ..TurnConfig::default()
        };
        assert!(matches!(
            TurnDetector::new(bad),
            Err(MediaError::InvalidConfig {
                key: "speech_stop_ms",
                ..
            })
        ));
        let parsed: std::result::Result<TurnConfig, _> =
            serde_json::from_str(r#"{"min_silence_ms": 700}"#);
        assert_eq!(parsed.expect("partial config parses").min_silence_ms, 700);
        assert!(serde_json::from_str::<TurnConfig>(r#"{"min_silense_ms": 700}"#).is_err());
    }
}
