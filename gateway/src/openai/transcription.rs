//! `POST /v1/audio/transcriptions`: a multipart upload (`file`, `model`, optional `language`,
//! `prompt`, `response_format`, `temperature`) transcribed by the STT chain.
//!
//! The file must be 16-bit PCM WAV (any rate that is a multiple of 50 Hz, any channel count);
//! it is mixed to mono, resampled to the recognisers' 16 kHz and streamed to the chain in
//! 100 ms chunks. `language` and `prompt` are accepted and not used: the configured
//! recogniser's language applies.

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

use super::{
    OpenAi,
    error::OpenAiError,
    quota::QuotaKind,
    resample::resample_all,
    settle::Settlement,
    wav::{self, WavError},
};

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
    let decoded = wav::decode(file).map_err(|e| match e {
        WavError::Malformed(_) => {
            OpenAiError::invalid("invalid_audio", e.to_string()).with_param("file")
        }
        _ => OpenAiError::unsupported_media(format!("{e}: send 16-bit PCM WAV")).with_param("file"),
    })?;
    if decoded.samples.is_empty() {
        return Err(
            OpenAiError::invalid("invalid_audio", "the audio file holds no samples")
                .with_param("file"),
        );
    }
    let duration = decoded.samples.len() as f64 / f64::from(decoded.rate);
    let pcm = resample_all(&decoded.samples, decoded.rate, STT_SAMPLE_RATE)
        .map_err(|e| OpenAiError::unsupported_media(e.to_string()).with_param("file"))?;
    let stt = api.providers()?.stt.clone();
    let secs = duration.ceil() as u64;
    let reservation = api
        .quota
        .reserve(&who.token, QuotaKind::VoiceSeconds, secs)
        .await?;
    let mut settlement = Settlement::new(api.quota.clone(), who.token, reservation);
    tracing::info!(user = %who.caller.user_id, duration, "openai transcription");

    // 100 ms per chunk: streaming recognisers get audio at a steady grain, batch ones
    // concatenate it.
    let chunks: Vec<Bytes> = pcm
        .chunks(STT_SAMPLE_RATE as usize / 10)
        .map(|c| {
            c.iter()
                .flat_map(|s| s.to_le_bytes())
                .collect::<Vec<u8>>()
                .into()
        })
        .collect();
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
