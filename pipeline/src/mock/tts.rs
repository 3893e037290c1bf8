//! Mock OpenAI speech and ElevenLabs stream-with-timestamps endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::fault::{self, Fault};
use super::llm::{Vendor, check_auth, error_response, pre_body_fault};
use super::paced::{self, Paced};
use super::voice::{SECONDS_PER_CHAR, synthesize};
use super::{Endpoint, MockState};
use crate::pcm::{samples_to_bytes, wav_header};

/// Byte ranges of the audio, one per chunk, with the pacing and fault applied.
fn schedule(
    state: &MockState,
    arrived: tokio::time::Instant,
    total_bytes: usize,
    chunk_bytes: usize,
    fault: Fault,
    mut frame: impl FnMut(usize, usize) -> Bytes,
) -> Vec<Paced> {
    let limit = fault.items_before().unwrap_or(usize::MAX);
    let mut steps = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while start < total_bytes {
        let wait = if i == 0 {
            fault::ms(state.config.tts_ttfb_ms)
        } else {
            fault::ms(state.config.tts_chunk_interval_ms)
        };
        if i >= limit {
            steps.push(match fault {
                Fault::StallAfter(_) => Paced::Stall(wait, fault::ms(state.config.hang_ms)),
                _ => Paced::Cut(wait),
            });
            return steps;
        }
        let end = (start + chunk_bytes).min(total_bytes);
        steps.push(if i == 0 {
            Paced::DataAt(arrived + wait, frame(start, end))
        } else {
            Paced::Data(wait, frame(start, end))
        });
        start = end;
        i += 1;
    }
    steps
}

fn streaming(content_type: &str, steps: Vec<Paced>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(paced::body(steps))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `POST /v1/audio/speech`
pub(crate) async fn openai_speech(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let arrived = tokio::time::Instant::now();
    state.count(Endpoint::Speech);
    if let Some(r) = check_auth(&state, &headers, "authorization", Vendor::OpenAi) {
        return r;
    }
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    let fault = match pre_body_fault(&state, &headers, Some(&model), Vendor::OpenAi).await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let Some(text) = body["input"].as_str().filter(|t| !t.trim().is_empty()) else {
        return error_response(Vendor::OpenAi, 400, "'input' is required");
    };
    if body["voice"].as_str().is_none() {
        return error_response(Vendor::OpenAi, 400, "'voice' is required");
    }
    let format = body["response_format"].as_str().unwrap_or("mp3");
    let pcm = samples_to_bytes(&synthesize(text, 24_000));
    let audio = match format {
        "pcm" => pcm,
        "wav" => {
            let mut file = wav_header(24_000, pcm.len() as u32).to_vec();
            file.extend_from_slice(&pcm);
            Bytes::from(file)
        }
        other => {
            return error_response(
                Vendor::OpenAi,
                400,
                &format!("mock supports pcm and wav, not {other}"),
            );
        }
    };
    // An odd chunk size, so clients must cope with samples split across network chunks.
    let chunk_bytes = (state.config.tts_chunk_ms as usize * 24 * 2).max(2) + 1;
    let steps = schedule(&state, arrived, audio.len(), chunk_bytes, fault, |a, b| {
        audio.slice(a..b)
    });
    streaming(
        if format == "pcm" {
            "audio/pcm"
        } else {
            "audio/wav"
        },
        steps,
    )
}

/// `POST /v1/text-to-speech/{voice_id}/stream/with-timestamps?output_format=pcm_24000`
pub(crate) async fn elevenlabs_stream(
    State(state): State<Arc<MockState>>,
    Path(_voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let arrived = tokio::time::Instant::now();
    state.count(Endpoint::ElevenLabs);
    if let Some(r) = check_auth(&state, &headers, "xi-api-key", Vendor::ElevenLabs) {
        return r;
    }
    let model = body["model_id"]
        .as_str()
        .unwrap_or("eleven_mock")
        .to_owned();
    let fault = match pre_body_fault(&state, &headers, Some(&model), Vendor::ElevenLabs).await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let format = query
        .get("output_format")
        .map_or("mp3_44100_128", String::as_str);
    let supported = |r: &u32| matches!(r, 16_000 | 22_050 | 24_000 | 44_100);
    let Some(rate) = format
        .strip_prefix("pcm_")
        .and_then(|r| r.parse::<u32>().ok())
        .filter(supported)
    else {
        return error_response(
            Vendor::ElevenLabs,
            422,
            &format!("mock supports pcm_16000/22050/24000/44100, not {format}"),
        );
    };
    let Some(text) = body["text"].as_str().filter(|t| !t.trim().is_empty()) else {
        return error_response(Vendor::ElevenLabs, 422, "text is required");
    };
    let chars: Vec<char> = text.chars().collect();
    let audio = samples_to_bytes(&synthesize(text, rate));
    let chunk_samples = (u64::from(rate) * state.config.tts_chunk_ms / 1000).max(1) as usize;
    let seconds_of = |byte: usize| byte as f64 / (2.0 * f64::from(rate));
    let steps = schedule(
        &state,
        arrived,
        audio.len(),
        chunk_samples * 2,
        fault,
        |a, b| {
            // Characters whose slot starts inside this chunk's time span.
            let (t0, t1) = (seconds_of(a), seconds_of(b));
            let first = (t0 / SECONDS_PER_CHAR).ceil() as usize;
            let last = if b == audio.len() {
                chars.len()
            } else {
                ((t1 / SECONDS_PER_CHAR).ceil() as usize).min(chars.len())
            };
            let range = first.min(last)..last;
            let alignment = json!({
                "characters": chars[range.clone()].iter().map(char::to_string).collect::<Vec<_>>(),
                "character_start_times_seconds": range.clone().map(|i| round3(i as f64 * SECONDS_PER_CHAR)).collect::<Vec<_>>(),
                "character_end_times_seconds": range.map(|i| round3((i + 1) as f64 * SECONDS_PER_CHAR)).collect::<Vec<_>>(),
            });
            let line = json!({
                "audio_base64": base64::engine::general_purpose::STANDARD.encode(&audio[a..b]),
                "alignment": alignment,
                "normalized_alignment": alignment,
            });
            Bytes::from(format!("{line}\n"))
        },
    );
    streaming("application/json", steps)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Audio duration the mock produces for `text`.
pub fn mock_speech_duration(text: &str) -> Duration {
    Duration::from_secs_f64(text.chars().count() as f64 * SECONDS_PER_CHAR)
}
