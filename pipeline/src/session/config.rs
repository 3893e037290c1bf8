//! Settings of one voice session.

use media::{TurnConfig, VadConfig};
use serde::{Deserialize, Serialize};

/// How a session listens, remembers and speaks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// The companion's persona: the system prompt in front of every request.
    /// Default: a short, friendly, spoken-style persona.
    pub persona: String,
    /// End-of-turn detection (media's defaults: 200 ms minimum speech, 550 ms end silence).
    pub turn: TurnConfig,
    /// Voice activity detection (media's defaults: -50 dBFS energy gate in front of Silero).
    pub vad: VadConfig,
    /// Most user + assistant messages kept in the conversation memory; the oldest go first.
    /// Default 40.
    pub max_history_messages: usize,
    /// Synthesised audio held ahead of playout before TTS streams stop being read
    /// (backpressure on long answers; TTS runs many times faster than real time, so a few
    /// seconds ahead never starve playout). Default 4000 ms.
    pub max_buffered_audio_ms: u32,
    /// Capacity of the output channel (audio frames, visemes, events) the transport drains.
    /// Default 64.
    pub output_capacity: usize,
    /// Capacity of the inbound frame channel. Default 32 (640 ms).
    pub input_capacity: usize,
    /// 16 kHz frames queued towards speech recognition before frames are dropped (a stalled
    /// STT connection must not grow memory). Default 500 (10 s).
    pub stt_queue_frames: usize,
    /// Whether viseme frames are produced. Default true.
    pub visemes: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            persona: "You are a warm, curious companion in a voice call. Answer in short, \
                      natural spoken sentences."
                .into(),
            turn: TurnConfig::default(),
            vad: VadConfig::default(),
            max_history_messages: 40,
            max_buffered_audio_ms: 4_000,
            output_capacity: 64,
            input_capacity: 32,
            stt_queue_frames: 500,
            visemes: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_config_keeps_the_defaults_and_a_typo_is_named() {
        let c: SessionConfig = toml::from_str(
            "persona = \"You are Ada, a patient tutor.\"\n[turn]\nmin_silence_ms = 700\n",
        )
        .expect("valid config");
        assert_eq!(c.persona, "You are Ada, a patient tutor.");
        assert_eq!(c.turn.min_silence_ms, 700);
        assert_eq!(c.turn.min_speech_ms, 200);
        assert_eq!(c.max_history_messages, 40);
        let err = toml::from_str::<SessionConfig>("persona_prompt = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("persona_prompt"), "{err}");
    }
}
