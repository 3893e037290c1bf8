//! `POST /v1/audio/speech`: text in, audio out, streamed as the TTS chain produces it.
//!
//! Output is 24 kHz mono 16-bit (OpenAI's rate) in `wav` or raw `pcm`; MP3, Opus, AAC and FLAC
//! are refused with a 400 naming what is supported. When `response_format` is left out, the
//! answer is WAV (OpenAI's default is MP3, which this server cannot encode).

use axum::{
    body::{Body, Bytes},
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use futures_util::{StreamExt, stream};
use pipeline::{TtsChunk, TtsRequest, TtsStream};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::core::control_plane::quota::QuotaKind;

use super::{
    OpenAi, error::OpenAiError, require_json, resample::Resample, settle::Settlement, wav,
};

/// The rate of every answer, as OpenAI's `pcm` format promises.
pub(crate) const OUT_RATE: u32 = 24_000;

/// The audio container asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// RIFF/WAVE header (sizes unknown while streaming), then samples.
    Wav,
    /// Raw 24 kHz s16le samples.
    Pcm,
}

#[derive(Debug, Deserialize)]
struct RawSpeech {
    model: String,
    input: String,
    voice: Value,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f64>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    stream_format: Option<String>,
    #[serde(flatten)]
    #[allow(dead_code)] // Unknown fields are accepted and ignored, as for chat.
    other: Map<String, Value>,
}

/// A validated speech request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpeechRequest {
    pub(crate) input: String,
    pub(crate) format: Format,
}

/// Reads and checks a request body.
pub(crate) fn parse(body: &[u8], max_input_chars: usize) -> Result<SpeechRequest, OpenAiError> {
    let raw: RawSpeech = serde_json::from_slice(body).map_err(|e| {
        OpenAiError::invalid(
            "invalid_json",
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    if raw.model.trim().is_empty() {
        return Err(OpenAiError::invalid_param(
            "model",
            "model must not be empty",
        ));
    }
    let chars = raw.input.chars().count();
    if raw.input.trim().is_empty() {
        return Err(OpenAiError::invalid_param(
            "input",
            "input must not be empty",
        ));
    }
    if chars > max_input_chars {
        return Err(OpenAiError::invalid_param(
            "input",
            format!("input is {chars} characters; at most {max_input_chars} are accepted"),
        ));
    }
    // The voice is accepted (clients must send one) but the configured companion voice
    // speaks: vendor voice names mean nothing to the other providers of the chain.
    let voice_ok = match &raw.voice {
        Value::String(s) => !s.trim().is_empty(),
        Value::Object(o) => o.get("id").is_some_and(Value::is_string),
        _ => false,
    };
    if !voice_ok {
        return Err(OpenAiError::invalid_param(
            "voice",
            "voice must be a voice name (it is accepted; the configured voice speaks)",
        ));
    }
    let format = match raw.response_format.as_deref() {
        None | Some("wav") => Format::Wav,
        Some("pcm") => Format::Pcm,
        Some(other @ ("mp3" | "opus" | "aac" | "flac")) => {
            return Err(OpenAiError::invalid(
                "unsupported_response_format",
                format!(
                    "response_format `{other}` is not supported by this server; use `wav` or \
                     `pcm` (24 kHz mono 16-bit)"
                ),
            )
            .with_param("response_format"));
        }
        Some(other) => {
            return Err(OpenAiError::invalid_param(
                "response_format",
                format!("unknown response_format `{other}`; use `wav` or `pcm`"),
            ));
        }
    };
    if let Some(speed) = raw.speed
        && (speed - 1.0).abs() > 1e-6
    {
        return Err(OpenAiError::invalid(
            "unsupported_parameter",
            format!("speed {speed} is not supported; only 1.0"),
        )
        .with_param("speed"));
    }
    if raw
        .instructions
        .as_deref()
        .is_some_and(|i| !i.trim().is_empty())
    {
        return Err(OpenAiError::invalid(
            "unsupported_parameter",
            "voice instructions are not supported",
        )
        .with_param("instructions"));
    }
    if raw.stream_format.as_deref().is_some_and(|f| f != "audio") {
        return Err(OpenAiError::invalid(
            "unsupported_parameter",
            "only stream_format `audio` is supported",
        )
        .with_param("stream_format"));
    }
    Ok(SpeechRequest {
        input: raw.input,
        format,
    })
}

/// Voice seconds reserved for `chars` characters of text: an upper bound (10 characters per
/// second is slow speech; the voices here speak 15 to 17), settled down to what was spoken.
pub(crate) fn reserve_secs(chars: usize) -> u64 {
    chars.div_ceil(10) as u64 + 1
}

pub(crate) async fn create(
    State(api): State<OpenAi>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let who = api.authenticate(&headers)?;
    require_json(&headers)?;
    let request = parse(&super::body_bytes(body)?, api.config.max_speech_input_chars)?;
    let tts = api.providers()?.tts.clone();
    let reserve = reserve_secs(request.input.chars().count());
    let reservation =
        super::reserve::reserve(&api.quota, &who.token, QuotaKind::VoiceSeconds, reserve).await?;
    let granted = reservation.granted;
    let mut settlement = Settlement::new(api.quota.clone(), who.token, reservation);
    tracing::info!(user = %who.caller.user_id, chars = request.input.chars().count(), "openai speech");

    let mut audio = tts.synthesize(TtsRequest::new(request.input));
    // The first chunk decides between a clean error status and a 200 audio stream.
    let first = settlement
        .first_or_refund(&mut audio, "tts", "the speech provider returned no audio")
        .await?;
    let encoder = Encoder::new(request.format, u64::from(OUT_RATE) * granted);
    let state = Speaking {
        encoder,
        first: Some(first),
        audio: Some(audio),
        settlement,
    };
    let body = stream::unfold(state, |mut s| async move {
        let item = s.next_bytes().await?;
        Some((item, s))
    });
    let mut response = Body::from_stream(body).into_response();
    let content_type = match request.format {
        Format::Wav => "audio/wav",
        Format::Pcm => "audio/pcm",
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// Turns TTS chunks at any rate into the answer's bytes (sans-IO).
pub(crate) struct Encoder {
    format: Format,
    resample: Option<Resample>,
    header_sent: bool,
    /// Samples written so far, and the most the grant allows.
    written: u64,
    limit: u64,
}

impl Encoder {
    pub(crate) fn new(format: Format, limit_samples: u64) -> Self {
        Self {
            format,
            resample: None,
            header_sent: false,
            written: 0,
            limit: limit_samples,
        }
    }

    /// Samples of 24 kHz audio written so far.
    pub(crate) fn samples(&self) -> u64 {
        self.written
    }

    fn bytes(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        if !self.header_sent {
            self.header_sent = true;
            if self.format == Format::Wav {
                out.extend_from_slice(&wav::streaming_header(OUT_RATE));
            }
        }
        let room = usize::try_from(self.limit.saturating_sub(self.written)).unwrap_or(usize::MAX);
        let take = &samples[..samples.len().min(room)];
        if take.len() < samples.len() {
            tracing::warn!("speech cut at the granted voice seconds");
        }
        self.written += take.len() as u64;
        out.reserve(take.len() * 2);
        for s in take {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }

    /// Encodes one chunk. A chunk at a new rate (failover to another provider) flushes the
    /// old converter first.
    pub(crate) fn chunk(&mut self, chunk: &TtsChunk) -> Result<Vec<u8>, OpenAiError> {
        let mut samples = Vec::new();
        if self
            .resample
            .as_ref()
            .is_none_or(|r| r.input_rate() != chunk.sample_rate)
        {
            if let Some(old) = self.resample.as_mut() {
                old.finish(&mut samples);
            }
            self.resample = Some(
                Resample::new(chunk.sample_rate, OUT_RATE)
                    .map_err(|e| OpenAiError::internal("speech audio", e))?,
            );
        }
        let input: Vec<i16> = chunk.samples().collect();
        if let Some(r) = self.resample.as_mut() {
            r.push(&input, &mut samples);
        }
        let mut out = Vec::new();
        self.bytes(&samples, &mut out);
        Ok(out)
    }

    /// The audio still inside the converter (and the header, for an empty answer).
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut samples = Vec::new();
        if let Some(r) = self.resample.as_mut() {
            r.finish(&mut samples);
        }
        let mut out = Vec::new();
        self.bytes(&samples, &mut out);
        out
    }
}

struct Speaking {
    encoder: Encoder,
    first: Option<TtsChunk>,
    audio: Option<TtsStream>,
    settlement: Settlement,
}

impl Speaking {
    fn used_secs(&self) -> u64 {
        self.encoder.samples().div_ceil(u64::from(OUT_RATE))
    }

    async fn next_bytes(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            let chunk = match self.first.take() {
                Some(chunk) => chunk,
                None => {
                    let audio = self.audio.as_mut()?;
                    match audio.next().await {
                        Some(Ok(chunk)) => chunk,
                        Some(Err(e)) => {
                            // Audio has no in-band error: the body is cut, so the client sees an
                            // incomplete response rather than a clean end.
                            self.audio = None;
                            let used = self.used_secs();
                            self.settlement.finish(used).await;
                            tracing::warn!(error = %e, "speech stream failed midway");
                            return Some(Err(std::io::Error::other("the speech provider failed")));
                        }
                        None => {
                            self.audio = None;
                            let tail = self.encoder.finish();
                            let used = self.used_secs();
                            self.settlement.finish(used).await;
                            return (!tail.is_empty()).then(|| Ok(Bytes::from(tail)));
                        }
                    }
                }
            };
            match self.encoder.chunk(&chunk) {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => {
                    self.settlement.set_used(self.used_secs());
                    return Some(Ok(Bytes::from(bytes)));
                }
                Err(e) => {
                    self.audio = None;
                    let used = self.used_secs();
                    self.settlement.finish(used).await;
                    return Some(Err(std::io::Error::other(e.message)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_speed_and_input_are_checked() {
        let ok = parse(br#"{"model":"tts-1","input":"Hi","voice":"alloy"}"#, 100).unwrap();
        assert_eq!(ok.format, Format::Wav, "WAV when no format is named");
        let pcm = parse(br#"{"model":"tts-1","input":"Hi","voice":"alloy","response_format":"pcm","speed":1.0}"#, 100);
        assert_eq!(pcm.unwrap().format, Format::Pcm);
        for (body, param) in [
            (
                r#"{"model":"tts-1","input":"Hi","voice":"alloy","response_format":"mp3"}"#,
                "response_format",
            ),
            (
                r#"{"model":"tts-1","input":"Hi","voice":"alloy","speed":1.5}"#,
                "speed",
            ),
            (r#"{"model":"tts-1","input":"  ","voice":"alloy"}"#, "input"),
            (r#"{"model":"tts-1","input":"Hi","voice":""}"#, "voice"),
            (
                r#"{"model":"tts-1","input":"too long","voice":"alloy"}"#,
                "input",
            ),
        ] {
            let err = parse(body.as_bytes(), 5).expect_err(body);
            assert_eq!(
                (err.status.as_u16(), err.param.as_deref()),
                (400, Some(param)),
                "{body}"
            );
        }
    }

    #[test]
    fn chunks_at_any_rate_become_one_24k_stream_cut_at_the_grant() {
        let tone = |rate: u32, n: usize| TtsChunk {
            pcm: (0..n)
                .flat_map(|i| (((i % 50) as i16) * 100).to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
            sample_rate: rate,
            timings: Vec::new(),
        };
        let mut e = Encoder::new(Format::Wav, u64::MAX);
        let mut out = e.chunk(&tone(22_050, 22_050)).unwrap();
        assert_eq!(&out[..4], b"RIFF");
        out.extend(e.chunk(&tone(24_000, 2_400)).unwrap());
        out.extend(e.finish());
        assert_eq!(
            e.samples(),
            24_000 + 2_400,
            "one second at 22.05 kHz is 24,000 samples"
        );
        assert_eq!(out.len() as u64, 44 + 2 * e.samples());

        let mut capped = Encoder::new(Format::Pcm, 1_000);
        let out = capped.chunk(&tone(24_000, 2_400)).unwrap();
        assert_eq!(out.len(), 2_000, "raw PCM, cut at the granted samples");
    }
}
