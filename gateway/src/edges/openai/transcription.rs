//! `POST /v1/audio/transcriptions`: a multipart upload (`file`, `model`, optional `language`,
//! `prompt`, `response_format`, `temperature`) transcribed by the STT chain.
//!
//! The file must be 16-bit PCM WAV at 8-48 kHz (a multiple of 50 Hz), any channel count, at
//! most `gateway.openai.max_transcription_secs` long. Its header is checked and the caller's
//! voice seconds are reserved (by the duration of the bytes that arrived) before anything is
//! decoded; then it is mixed to mono and resampled to the recognisers' 16 kHz in fixed pieces
//! on a blocking thread (at most `gateway.openai.transcription_workers` at once) and streamed
//! to the chain in 100 ms chunks. `language` and `prompt` are accepted and not used: the
//! configured recogniser's language applies.

use axum::{
    Json,
    extract::{
        Multipart, State,
        multipart::{MultipartError, MultipartRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use pipeline::{SttEvent, provider::STT_SAMPLE_RATE};
use serde_json::json;

use crate::core::control_plane::quota::QuotaKind;

use super::{
    OpenAi,
    error::OpenAiError,
    resample::resample_wav,
    settle::Settlement,
    wav::{self, WavError},
};

/// Lowest sample rate accepted: telephone audio.
const MIN_RATE: u32 = 8_000;
/// Highest sample rate accepted. Anything beyond it only costs resampling work.
const MAX_RATE: u32 = 48_000;

/// What the client may ask the answer to look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    VerboseJson,
}

/// The fields of the upload that matter.
#[derive(Debug, Default)]
struct Upload {
    file: Option<Bytes>,
    model: Option<String>,
    language: Option<String>,
    response_format: Option<String>,
    stream: Option<String>,
}

fn multipart_error(e: &MultipartError) -> OpenAiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        OpenAiError::too_large(format!("the upload is too large: {}", e.body_text()))
    } else {
        OpenAiError::invalid(
            "invalid_multipart",
            format!("malformed multipart body: {}", e.body_text()),
        )
    }
}

async fn read_upload(mut form: Multipart) -> Result<Upload, OpenAiError> {
    let mut upload = Upload::default();
    while let Some(field) = form.next_field().await.map_err(|e| multipart_error(&e))? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "file" => upload.file = Some(field.bytes().await.map_err(|e| multipart_error(&e))?),
            "model" | "language" | "response_format" | "stream" => {
                let text = field.text().await.map_err(|e| multipart_error(&e))?;
                let slot = match name.as_str() {
                    "model" => &mut upload.model,
                    "language" => &mut upload.language,
                    "response_format" => &mut upload.response_format,
                    _ => &mut upload.stream,
                };
                *slot = Some(text);
            }
            // prompt, temperature, timestamp_granularities[], include[], ...: hints that the
            // chain cannot use; read and dropped.
            _ => {
                field.bytes().await.map_err(|e| multipart_error(&e))?;
            }
        }
    }
    Ok(upload)
}

fn format_of(upload: &Upload) -> Result<Format, OpenAiError> {
    match upload.response_format.as_deref().map(str::trim) {
        None | Some("" | "json") => Ok(Format::Json),
        Some("text") => Ok(Format::Text),
        Some("verbose_json") => Ok(Format::VerboseJson),
        Some(other) => Err(OpenAiError::invalid(
            "unsupported_response_format",
            format!("response_format `{other}` is not supported; use json, text or verbose_json"),
        )
        .with_param("response_format")),
    }
}

pub(crate) async fn create(
    State(api): State<OpenAi>,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, OpenAiError> {
    let who = api.authenticate(&headers)?;
    let form = form.map_err(|e| {
        OpenAiError::unsupported_media(format!(
            "expected a multipart/form-data body with `file` and `model`: {}",
            e.body_text()
        ))
    })?;
    let upload = read_upload(form).await?;
    let format = format_of(&upload)?;
    if upload.stream.as_deref().is_some_and(|s| s.trim() == "true") {
        return Err(OpenAiError::invalid(
            "unsupported_parameter",
            "streamed transcriptions are not supported",
        )
        .with_param("stream"));
    }
    if upload.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
        return Err(OpenAiError::invalid_param("model", "model is required"));
    }
    let file = upload
        .file
        .as_ref()
        .ok_or_else(|| OpenAiError::invalid_param("file", "file is required"))?;
    // Everything up to the reservation reads only the header and the upload's length: a
    // hostile header can make this request cheap to refuse, never expensive to serve.
    let audio = wav::parse(file).map_err(|e| match e {
        WavError::Malformed(_) => {
            OpenAiError::invalid("invalid_audio", e.to_string()).with_param("file")
        }
        _ => OpenAiError::unsupported_media(format!("{e}: send 16-bit PCM WAV")).with_param("file"),
    })?;
    if !(MIN_RATE..=MAX_RATE).contains(&audio.rate) || !audio.rate.is_multiple_of(50) {
        return Err(OpenAiError::invalid(
            "unsupported_sample_rate",
            format!(
                "the WAV file says {} Hz; send 8,000 to 48,000 Hz audio (a multiple of 50 Hz)",
                audio.rate
            ),
        )
        .with_param("file"));
    }
    if audio.frames() == 0 {
        return Err(
            OpenAiError::invalid("invalid_audio", "the audio file holds no samples")
                .with_param("file"),
        );
    }
    let duration = audio.duration_secs();
    let max_secs = api.config.max_transcription_secs;
    if duration > max_secs as f64 {
        return Err(OpenAiError::invalid(
            "audio_too_long",
            format!("the audio lasts {duration:.1} s; at most {max_secs} s can be transcribed"),
        )
        .with_param("file"));
    }
    let stt = api.providers()?.stt.clone();
    let secs = duration.ceil() as u64;
    let reservation =
        super::reserve::reserve(&api.quota, &who.token, QuotaKind::VoiceSeconds, secs).await?;
    let mut settlement = Settlement::new(api.quota.clone(), who.token, reservation);
    tracing::info!(user = %who.caller.user_id, duration, "openai transcription");

    // Decoding and resampling are CPU work: on a blocking thread, a bounded number at once.
    let permit = api
        .decoders
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| OpenAiError::internal("transcription workers", e))?;
    let bytes = file.clone();
    // 100 ms per chunk: streaming recognisers get audio at a steady grain, batch ones
    // concatenate it.
    let chunk = STT_SAMPLE_RATE as usize / 10;
    let converted = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let audio = wav::parse(&bytes).map_err(|e| e.to_string())?;
        resample_wav(&audio, STT_SAMPLE_RATE, chunk).map_err(|e| e.to_string())
    })
    .await;
    let chunks = match converted {
        Ok(Ok(chunks)) => chunks,
        Ok(Err(reason)) => {
            settlement.finish(0).await;
            return Err(OpenAiError::unsupported_media(reason).with_param("file"));
        }
        Err(e) => {
            settlement.finish(0).await;
            return Err(OpenAiError::internal("decoding the upload", e));
        }
    };
    let mut events = stt.transcribe(stream::iter(chunks).boxed());
    let mut finals = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(SttEvent::Final(text)) => finals.push(text.trim().to_owned()),
            Ok(SttEvent::Partial(_)) => {}
            Err(e) => {
                settlement.finish(0).await;
                return Err(OpenAiError::from_pipeline("stt", &e));
            }
        }
    }
    settlement.finish(secs).await;
    let text = finals
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(match format {
        Format::Json => Json(json!({ "text": text })).into_response(),
        Format::VerboseJson => Json(json!({
            "task": "transcribe",
            "language": upload.language.as_deref().unwrap_or("unknown"),
            "duration": duration,
            "text": text,
        }))
        .into_response(),
        Format::Text => {
            let mut r = format!("{text}\n").into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
    })
}
