//! Mock OpenAI transcription and Deepgram live-streaming endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::fault::{self, Fault};
use super::llm::{Vendor, check_auth, error_response, header_str, pre_body_fault};
use super::{Endpoint, MockState};
use crate::pcm::parse_wav;

/// The parts of a multipart/form-data body: name -> content.
fn multipart_fields<'a>(content_type: &str, body: &'a [u8]) -> Option<HashMap<String, &'a [u8]>> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut fields = HashMap::new();
    let mut rest = body;
    loop {
        let start = find(rest, delimiter.as_bytes())? + delimiter.len();
        rest = &rest[start..];
        if rest.starts_with(b"--") {
            return Some(fields);
        }
        let rest_after_crlf = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest_after_crlf, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest_after_crlf[..head_end]);
        let content = &rest_after_crlf[head_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
        let name = head
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name="))
            .map(|n| n.trim_matches('"').to_owned())?;
        fields.insert(name, &content[..end]);
        rest = &content[end + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `POST /v1/audio/transcriptions`
pub(crate) async fn transcriptions(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count(Endpoint::Transcriptions);
    if let Some(r) = check_auth(&state, &headers, "authorization", Vendor::OpenAi) {
        return r;
    }
    let content_type = header_str(&headers, "content-type").unwrap_or("");
    let Some(fields) = multipart_fields(content_type, &body) else {
        return error_response(
            Vendor::OpenAi,
            400,
            "expected multipart/form-data with 'model' and 'file'",
        );
    };
    let model = fields
        .get("model")
        .map(|m| String::from_utf8_lossy(m).into_owned());
    let Some(model) = model else {
        return error_response(Vendor::OpenAi, 400, "'model' is required");
    };
    // A batch transcription has no body to cut, so only faults before the body apply.
    if let Err(response) = pre_body_fault(&state, &headers, Some(&model), Vendor::OpenAi).await {
        return response;
    }
    let Some((_rate, pcm)) = fields.get("file").and_then(|f| parse_wav(f)) else {
        return error_response(Vendor::OpenAi, 400, "'file' must be a mono 16-bit PCM WAV");
    };
    if pcm.is_empty() {
        return error_response(Vendor::OpenAi, 400, "audio file is empty");
    }
    tokio::time::sleep(fault::ms(state.config.stt_latency_ms)).await;
    let text = header_str(&headers, "x-mock-transcript")
        .unwrap_or(&state.config.transcript)
        .to_owned();
    Json(json!({"text": text})).into_response()
}

/// `GET /v1/listen` (WebSocket upgrade)
pub(crate) async fn deepgram_listen(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    state.count(Endpoint::DeepgramListen);
    if let Some(r) = check_auth(&state, &headers, "authorization", Vendor::OpenAi) {
        return r;
    }
    if query.get("encoding").map(String::as_str) != Some("linear16") {
        return error_response(Vendor::OpenAi, 400, "mock supports encoding=linear16 only");
    }
    let Some(rate) = query.get("sample_rate").and_then(|r| r.parse::<u32>().ok()) else {
        return error_response(Vendor::OpenAi, 400, "sample_rate is required for linear16");
    };
    let fault = match pre_body_fault(
        &state,
        &headers,
        query.get("model").map(String::as_str),
        Vendor::OpenAi,
    )
    .await
    {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let transcript = header_str(&headers, "x-mock-transcript")
        .unwrap_or(&state.config.transcript)
        .to_owned();
    let interim = query.get("interim_results").is_some_and(|v| v == "true");
    upgrade.on_upgrade(move |socket| live_session(socket, state, transcript, rate, interim, fault))
}

fn results(
    words: &[&str],
    start: f64,
    duration: f64,
    is_final: bool,
    speech_final: bool,
) -> String {
    let per_word = if words.is_empty() {
        0.0
    } else {
        duration / words.len() as f64
    };
    let word_objs: Vec<_> = words
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"word": w, "start": start + i as f64 * per_word, "end": start + (i + 1) as f64 * per_word, "confidence": 0.99}))
        .collect();
    json!({
        "type": "Results", "channel_index": [0, 1], "duration": duration, "start": start,
        "is_final": is_final, "speech_final": speech_final, "from_finalize": false,
        "channel": {"alternatives": [{"transcript": words.join(" "), "confidence": 0.99, "words": word_objs}]},
        "metadata": {"request_id": "mock-request", "model_info": {"name": "mock", "version": "1", "arch": "mock"}, "model_uuid": "mock"}
    })
    .to_string()
}

/// One live session: interim results reveal a word per 250 ms of audio received; on
/// `CloseStream` the final result, then `Metadata`, then a normal close.
async fn live_session(
    mut socket: WebSocket,
    state: Arc<MockState>,
    transcript: String,
    rate: u32,
    interim: bool,
    fault: Fault,
) {
    let words: Vec<&str> = transcript.split_whitespace().collect();
    let mut bytes_received = 0usize;
    let mut revealed = 0usize;
    let mut sent_results = 0usize;
    let limit = fault.items_before().unwrap_or(usize::MAX);
    let seconds = |bytes: usize| bytes as f64 / (2.0 * f64::from(rate.max(1)));
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Binary(audio) => {
                bytes_received += audio.len();
                let due = ((seconds(bytes_received) / 0.25) as usize).min(words.len());
                if interim && due > revealed {
                    revealed = due;
                    if sent_results >= limit {
                        return; // cut: drop the socket without a close frame
                    }
                    sent_results += 1;
                    let text = results(
                        &words[..revealed],
                        0.0,
                        seconds(bytes_received),
                        false,
                        false,
                    );
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            }
            Message::Text(text) => {
                let kind = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned));
                match kind.as_deref() {
                    Some("CloseStream") => {
                        if sent_results >= limit {
                            return;
                        }
                        tokio::time::sleep(fault::ms(state.config.stt_latency_ms)).await;
                        let duration = seconds(bytes_received);
                        let final_result = results(&words, 0.0, duration, true, true);
                        let metadata = json!({"type": "Metadata", "transaction_key": "deprecated", "request_id": "mock-request",
                            "sha256": "", "created": "2026-01-01T00:00:00.000Z", "duration": duration, "channels": 1}).to_string();
                        let _ = socket.send(Message::Text(final_result.into())).await;
                        let _ = socket.send(Message::Text(metadata.into())).await;
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: 1000,
                                reason: "".into(),
                            })))
                            .await;
                        return;
                    }
                    Some("KeepAlive") => {
                        state
                            .keepalives
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Some("Finalize") => {}
                    _ => {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: 1008,
                                reason: "DATA-0000: unknown message".into(),
                            })))
                            .await;
                        return;
                    }
                }
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields_are_found() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--XyZ--\r\n";
        let f = multipart_fields("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(f["model"], b"whisper-1");
        assert_eq!(f["file"], b"RIFF");
        assert!(multipart_fields("text/plain", body).is_none());
    }
}
