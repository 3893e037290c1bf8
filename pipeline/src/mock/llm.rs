//! Mock OpenAI chat completions and Anthropic Messages endpoints.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::fault::{self, Fault};
use super::paced::{self, Paced};
use super::reply::{continuation, tokenize};
use super::{Endpoint, MockState};
use crate::llm::CONTINUE_INSTRUCTION;

/// The vendor flavour of error bodies.
#[derive(Clone, Copy)]
pub(crate) enum Vendor {
    OpenAi,
    Anthropic,
    ElevenLabs,
}

/// An error response in the vendor's JSON shape.
pub(crate) fn error_response(vendor: Vendor, status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match vendor {
        Vendor::OpenAi => {
            json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}})
        }
        Vendor::Anthropic => {
            let kind = match status.as_u16() {
                401 => "authentication_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400..=499 => "invalid_request_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        Vendor::ElevenLabs => json!({"detail": {"status": "error", "message": message}}),
    };
    (status, Json(body)).into_response()
}

/// Picks this request's fault (the `x-mock-fault` header, then the model name, then the
/// server's setting) and applies it if it happens before any response body: `Err` is the
/// response to send, `Ok` the fault left for the body to act on.
pub(crate) async fn pre_body_fault(
    state: &MockState,
    headers: &HeaderMap,
    model: Option<&str>,
    vendor: Vendor,
) -> Result<Fault, Response> {
    let fault = fault::select(
        header_str(headers, "x-mock-fault"),
        model,
        state.server_fault(),
    );
    match fault {
        Fault::Status(code) => Err(error_response(vendor, code, "mock: injected failure")),
        Fault::RateLimited { retry_after_secs } => {
            let mut r = error_response(vendor, 429, "mock: rate limited");
            if let Ok(v) = retry_after_secs.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Err(r)
        }
        Fault::Hang => {
            tokio::time::sleep(fault::ms(state.config.hang_ms)).await;
            Err(error_response(vendor, 504, "mock: hung request gave up"))
        }
        other => Ok(other),
    }
}

/// 401 unless the request carries a key in `header_name` (when the server requires auth).
pub(crate) fn check_auth(
    state: &MockState,
    headers: &HeaderMap,
    header_name: &str,
    vendor: Vendor,
) -> Option<Response> {
    if !state.config.require_auth {
        return None;
    }
    let present = headers
        .get(header_name)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim_start_matches("Bearer ")
                .trim_start_matches("Token ")
                .trim()
        })
        .is_some_and(|v| !v.is_empty());
    (!present).then(|| error_response(vendor, 401, "mock: missing API key"))
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// (last user words, partial assistant answer to continue) from a message list.
fn conversation(messages: &[Value], openai_style: bool) -> (String, Option<String>) {
    let role = |m: &Value| m["role"].as_str().unwrap_or("").to_owned();
    let mut end = messages.len();
    let mut prefix = None;
    if openai_style {
        if end >= 2
            && role(&messages[end - 1]) == "user"
            && text_of(&messages[end - 1]["content"]) == CONTINUE_INSTRUCTION
            && role(&messages[end - 2]) == "assistant"
        {
            prefix = Some(text_of(&messages[end - 2]["content"]));
            end -= 2;
        }
    } else if end >= 1 && role(&messages[end - 1]) == "assistant" {
        prefix = Some(text_of(&messages[end - 1]["content"]));
        end -= 1;
    }
    let user = messages[..end]
        .iter()
        .rev()
        .find(|m| role(m) == "user")
        .map(|m| text_of(&m["content"]));
    (user.unwrap_or_default(), prefix)
}

fn prompt_tokens(messages: &[Value]) -> usize {
    messages
        .iter()
        .map(|m| text_of(&m["content"]).split_whitespace().count())
        .sum::<usize>()
        + 3
}

fn sse(event: Option<&str>, data: &Value) -> Bytes {
    match event {
        Some(name) => Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

struct Plan {
    arrived: tokio::time::Instant,
    tokens: Vec<String>,
    fault: Fault,
    ttft: Duration,
    interval: Duration,
    hang: Duration,
}

impl Plan {
    /// Token frames with pacing, then the fault (if mid-stream) or `tail` frames.
    fn steps(
        &self,
        head: Vec<Bytes>,
        token_frame: impl Fn(&str) -> Bytes,
        error_frame: Bytes,
        tail: Vec<Bytes>,
    ) -> Vec<Paced> {
        let mut steps: Vec<Paced> = head
            .into_iter()
            .map(|b| Paced::Data(Duration::ZERO, b))
            .collect();
        let limit = self.fault.items_before().unwrap_or(usize::MAX);
        for (i, token) in self.tokens.iter().enumerate() {
            let wait = if i == 0 { self.ttft } else { self.interval };
            if i >= limit {
                steps.push(match self.fault {
                    Fault::StallAfter(_) => Paced::Stall(wait, self.hang),
                    Fault::ErrorEventAfter(_) => Paced::Data(wait, error_frame),
                    _ => Paced::Cut(wait),
                });
                return steps;
            }
            // Absolute times, so the mock's own scheduling does not drift into the numbers.
            let at = self.arrived + self.ttft + self.interval * i as u32;
            steps.push(Paced::DataAt(at, token_frame(token)));
        }
        steps.extend(tail.into_iter().map(|b| Paced::Data(Duration::ZERO, b)));
        steps
    }
}

fn sse_response(steps: Vec<Paced>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(paced::body(steps))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `POST /v1/chat/completions`
pub(crate) async fn chat_completions(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.count(Endpoint::ChatCompletions);
    if let Some(r) = check_auth(&state, &headers, "authorization", Vendor::OpenAi) {
        return r;
    }
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    let fault = match pre_body_fault(&state, &headers, Some(&model), Vendor::OpenAi).await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error_response(Vendor::OpenAi, 400, "'messages' must be a non-empty array");
    };
    if body["stream"] != json!(true) {
        return error_response(Vendor::OpenAi, 400, "mock serves only stream: true");
    }
    let include_usage = body["stream_options"]["include_usage"] == json!(true);
    let (user, prefix) = conversation(messages, true);
    let plan = plan(&state, &user, prefix.as_deref(), fault);
    let id = "chatcmpl-mock";
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
               "system_fingerprint": "fp_mock", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let head = vec![sse(
        None,
        &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    )];
    let mut tail = vec![sse(None, &chunk(json!({}), json!("stop")))];
    if include_usage {
        let (p, c) = (prompt_tokens(messages), plan.tokens.len());
        tail.push(sse(None, &json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})));
    }
    tail.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let error = sse(
        None,
        &json!({"error": {"message": "mock: injected mid-stream error", "type": "server_error"}}),
    );
    sse_response(plan.steps(
        head,
        |t| sse(None, &chunk(json!({"content": t}), Value::Null)),
        error,
        tail,
    ))
}

fn plan(state: &MockState, user: &str, prefix: Option<&str>, fault: Fault) -> Plan {
    Plan {
        arrived: tokio::time::Instant::now(),
        tokens: tokenize(&continuation(user, prefix)),
        fault,
        ttft: fault::ms(state.config.ttft_ms),
        interval: fault::ms(state.config.token_interval_ms),
        hang: fault::ms(state.config.hang_ms),
    }
}

/// `POST /v1/messages`
pub(crate) async fn anthropic_messages(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.count(Endpoint::AnthropicMessages);
    if let Some(r) = check_auth(&state, &headers, "x-api-key", Vendor::Anthropic) {
        return r;
    }
    if header_str(&headers, "anthropic-version").is_none() {
        return error_response(
            Vendor::Anthropic,
            400,
            "anthropic-version header is required",
        );
    }
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    let fault = match pre_body_fault(&state, &headers, Some(&model), Vendor::Anthropic).await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error_response(Vendor::Anthropic, 400, "messages: field required");
    };
    if body["max_tokens"].as_u64().is_none() {
        return error_response(Vendor::Anthropic, 400, "max_tokens: field required");
    }
    if let Some(last) = messages.last().filter(|m| m["role"] == "assistant")
        && text_of(&last["content"]).ends_with(char::is_whitespace)
    {
        return error_response(
            Vendor::Anthropic,
            400,
            "final assistant content cannot end with trailing whitespace",
        );
    }
    let (user, prefix) = conversation(messages, false);
    let plan = plan(&state, &user, prefix.as_deref(), fault);
    let input_tokens = prompt_tokens(messages);
    let head = vec![
        sse(
            Some("message_start"),
            &json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message",
            "role": "assistant", "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ),
        sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse(Some("ping"), &json!({"type": "ping"})),
    ];
    let tail = vec![
        sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": 0}),
        ),
        sse(
            Some("message_delta"),
            &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": plan.tokens.len()}}),
        ),
        sse(Some("message_stop"), &json!({"type": "message_stop"})),
    ];
    let error = sse(
        Some("error"),
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    let delta = |t: &str| {
        sse(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
        )
    };
    sse_response(plan.steps(head, delta, error, tail))
}

/// `GET /v1/models`: a cheap request for connection warm-up.
pub(crate) async fn models() -> Response {
    Json(json!({"object": "list", "data": [{"id": "mock", "object": "model", "owned_by": "mock"}]}))
        .into_response()
}
