//! Per-turn latency records and their Prometheus histograms.
//!
//! A [`TurnLatency`] collects the instants a turn passes through (sans-IO: the caller passes
//! each `Instant` in). [`LatencyMetrics`] turns finished records into one histogram family,
//! `pipeline_turn_stage_seconds{stage=...}`, using the `prometheus-client` crate (chosen over
//! `metrics` + exporter: no global recorder, the registry is an explicit value the server
//! owns and encodes on `/metrics`).

use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A point a turn passes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// The user stopped speaking (VAD trailing edge, before the silence window).
    SpeechEnd,
    /// End of turn was decided.
    EndOfTurn,
    /// STT delivered the final transcript.
    SttFinal,
    /// The language model's first token arrived.
    LlmFirstToken,
    /// The first speakable chunk was handed to TTS.
    FirstSentence,
    /// TTS returned its first audio.
    TtsFirstAudio,
    /// The first audio frame left for the caller.
    FirstAudioOut,
}

impl Mark {
    /// All marks in turn order.
    pub const ALL: [Mark; 7] = [
        Mark::SpeechEnd,
        Mark::EndOfTurn,
        Mark::SttFinal,
        Mark::LlmFirstToken,
        Mark::FirstSentence,
        Mark::TtsFirstAudio,
        Mark::FirstAudioOut,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// The instants one turn passed through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnLatency {
    marks: [Option<Instant>; 7],
}

impl TurnLatency {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `mark` at `at`. The first record of a mark wins (later chunks of the same
    /// turn do not move "first audio").
    pub fn mark(&mut self, mark: Mark, at: Instant) {
        self.marks[mark.index()].get_or_insert(at);
    }

    /// When `mark` happened, if it did.
    pub fn at(&self, mark: Mark) -> Option<Instant> {
        self.marks[mark.index()]
    }

    /// Time from `from` to `to`, if both happened (zero if recorded out of order).
    pub fn between(&self, from: Mark, to: Mark) -> Option<Duration> {
        Some(self.at(to)?.saturating_duration_since(self.at(from)?))
    }

    /// Offset of each recorded mark from speech end (or from the earliest mark).
    pub fn offsets(&self) -> Vec<(Mark, Duration)> {
        let Some(origin) = self
            .at(Mark::SpeechEnd)
            .or_else(|| self.marks.iter().flatten().min().copied())
        else {
            return Vec::new();
        };
        Mark::ALL
            .iter()
            .filter_map(|&m| Some((m, self.at(m)?.saturating_duration_since(origin))))
            .collect()
    }
}

/// A stage of the turn, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Stage {
    /// Speech end -> end-of-turn decision.
    EndOfTurn,
    /// End of turn -> final transcript.
    Stt,
    /// Final transcript -> first LLM token.
    LlmFirstToken,
    /// First token -> first speakable chunk.
    FirstSentence,
    /// First chunk -> first TTS audio.
    TtsFirstAudio,
    /// First TTS audio -> first audio frame out.
    Output,
    /// Speech end -> first audio frame out: what the caller experiences.
    VoiceToVoice,
}

/// The label set of the stage histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StageLabels {
    /// Which stage.
    pub stage: Stage,
}

const STAGES: [(Stage, Mark, Mark); 7] = [
    (Stage::EndOfTurn, Mark::SpeechEnd, Mark::EndOfTurn),
    (Stage::Stt, Mark::EndOfTurn, Mark::SttFinal),
    (Stage::LlmFirstToken, Mark::SttFinal, Mark::LlmFirstToken),
    (
        Stage::FirstSentence,
        Mark::LlmFirstToken,
        Mark::FirstSentence,
    ),
    (
        Stage::TtsFirstAudio,
        Mark::FirstSentence,
        Mark::TtsFirstAudio,
    ),
    (Stage::Output, Mark::TtsFirstAudio, Mark::FirstAudioOut),
    (Stage::VoiceToVoice, Mark::SpeechEnd, Mark::FirstAudioOut),
];

fn stage_histogram() -> Histogram {
    // 2 ms .. ~10 s in 20 steps.
    Histogram::new(exponential_buckets(0.002, 1.55, 20))
}

/// Histograms of turn stages.
#[derive(Debug, Clone)]
pub struct LatencyMetrics {
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
}

impl Default for LatencyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyMetrics {
    /// Empty histograms.
    pub fn new() -> Self {
        Self {
            stages: Family::new_with_constructor(stage_histogram as fn() -> Histogram),
        }
    }

    /// Adds the histograms to `registry` (as `pipeline_turn_stage_seconds`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pipeline_turn_stage_seconds",
            "Duration of each stage of a voice turn, and speech end to first audio out",
            self.stages.clone(),
        );
    }

    /// Records every stage of `turn` whose two ends were marked.
    pub fn observe(&self, turn: &TurnLatency) {
        for (stage, from, to) in STAGES {
            if let Some(d) = turn.between(from, to) {
                self.stages
                    .get_or_create(&StageLabels { stage })
                    .observe(d.as_secs_f64());
            }
        }
    }
}

/// Prometheus text exposition of `registry`.
pub fn encode_text(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_recorded_and_exported_per_stage() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut turn = TurnLatency::new();
        turn.mark(Mark::SpeechEnd, t0);
        turn.mark(Mark::EndOfTurn, ms(200));
        turn.mark(Mark::SttFinal, ms(260));
        turn.mark(Mark::LlmFirstToken, ms(560));
        turn.mark(Mark::FirstSentence, ms(640));
        turn.mark(Mark::TtsFirstAudio, ms(800));
        turn.mark(Mark::TtsFirstAudio, ms(900)); // a later chunk does not move it
        turn.mark(Mark::FirstAudioOut, ms(805));

        assert_eq!(
            turn.between(Mark::SpeechEnd, Mark::FirstAudioOut),
            Some(Duration::from_millis(805))
        );
        assert_eq!(
            turn.offsets()[5],
            (Mark::TtsFirstAudio, Duration::from_millis(800))
        );

        let metrics = LatencyMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.observe(&turn);
        let text = encode_text(&registry);
        assert!(
            text.contains("pipeline_turn_stage_seconds_count{stage=\"VoiceToVoice\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pipeline_turn_stage_seconds_sum{stage=\"LlmFirstToken\"} 0.3"),
            "{text}"
        );
    }

    #[test]
    fn a_turn_without_audio_records_only_what_happened() {
        let t0 = Instant::now();
        let mut turn = TurnLatency::new();
        turn.mark(Mark::SttFinal, t0);
        assert_eq!(turn.between(Mark::SpeechEnd, Mark::SttFinal), None);
        assert_eq!(turn.offsets(), [(Mark::SttFinal, Duration::ZERO)]);
    }
}
