//! `POST /v1/chat/completions`, the sans-IO half: the OpenAI request read into an
//! [`LlmRequest`] (or a typed 400 naming the field), and the response objects and SSE chunks
//! written in exactly the shapes the official SDKs parse.

use pipeline::{ChatMessage, LlmRequest, Role, Usage};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::OpenAiError;

/// Request fields that would change the answer in ways the provider chain cannot honour:
/// refused rather than silently ignored.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("tools", "tool calling is not supported"),
    ("tool_choice", "tool calling is not supported"),
    ("functions", "function calling is not supported"),
    ("function_call", "function calling is not supported"),
    ("stop", "stop sequences are not supported"),
    (
        "audio",
        "audio output is not supported here; use /v1/audio/speech",
    ),
    ("prediction", "predicted outputs are not supported"),
];

/// The OpenAI request body. Fields not named here (`top_p`, `seed`, `presence_penalty`,
/// `metadata`, ...) only tune sampling or bookkeeping; they are accepted and ignored.
#[derive(Debug, Deserialize)]
struct RawRequest {
    model: String,
    messages: Vec<RawMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    modalities: Option<Vec<String>>,
    #[serde(default)]
    #[allow(dead_code)] // Accepted for compatibility; callers are identified by their token.
    user: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
}

/// A validated chat request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChatRequest {
    /// The model name the client asked for, echoed in the answer.
    pub(crate) model: String,
    pub(crate) llm: LlmRequest,
    pub(crate) stream: bool,
    /// `stream_options.include_usage`: a last chunk with empty `choices` carries the usage.
    pub(crate) include_usage: bool,
}

/// Reads and checks a request body. Malformed JSON gets serde's own message (it names the line,
/// column and field).
pub(crate) fn parse(body: &[u8]) -> Result<ChatRequest, OpenAiError> {
    let raw: RawRequest = serde_json::from_slice(body).map_err(|e| {
        OpenAiError::invalid(
            "invalid_json",
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    validate(raw)
}

fn validate(raw: RawRequest) -> Result<ChatRequest, OpenAiError> {
    for (field, why) in UNSUPPORTED {
        if raw.other.get(*field).is_some_and(|v| !v.is_null()) {
            return Err(OpenAiError::invalid("unsupported_parameter", *why).with_param(field));
        }
    }
    if raw.model.trim().is_empty() {
        return Err(OpenAiError::invalid_param(
            "model",
            "model must not be empty",
        ));
    }
    if raw.n.is_some_and(|n| n != 1) {
        return Err(OpenAiError::invalid_param(
            "n",
            "only n=1 is supported: one answer per request",
        ));
    }
    if raw.logprobs == Some(true) {
        return Err(
            OpenAiError::invalid("unsupported_parameter", "logprobs are not supported")
                .with_param("logprobs"),
        );
    }
    if let Some(format) = &raw.response_format
        && !format.is_null()
        && format.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(OpenAiError::invalid(
            "unsupported_parameter",
            "only response_format {\"type\": \"text\"} is supported",
        )
        .with_param("response_format"));
    }
    if let Some(modalities) = &raw.modalities
        && modalities.iter().any(|m| m != "text")
    {
        return Err(OpenAiError::invalid(
            "unsupported_parameter",
            "only the text modality is supported",
        )
        .with_param("modalities"));
    }
    if let Some(t) = raw.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(OpenAiError::invalid_param(
            "temperature",
            format!("temperature must be between 0 and 2, got {t}"),
        ));
    }
    let max_tokens = raw.max_completion_tokens.or(raw.max_tokens);
    if max_tokens == Some(0) {
        let param = if raw.max_completion_tokens.is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        return Err(OpenAiError::invalid_param(param, "must be at least 1"));
    }
    let stream = raw.stream.unwrap_or(false);
    if raw.stream_options.is_some() && !stream {
        return Err(OpenAiError::invalid_param(
            "stream_options",
            "stream_options is only allowed when stream is true",
        ));
    }
    if raw.messages.is_empty() {
        return Err(OpenAiError::invalid_param(
            "messages",
            "messages must hold at least one message",
        ));
    }
    let messages = raw
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChatRequest {
        model: raw.model,
        llm: LlmRequest {
            messages,
            max_tokens,
            temperature: raw.temperature,
            assistant_prefix: None,
        },
        stream,
        include_usage: raw
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    })
}

fn message(i: usize, m: RawMessage) -> Result<ChatMessage, OpenAiError> {
    let role = match m.role.as_str() {
        // `developer` is the newer name of `system` for reasoning models.
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" | "function" => {
            return Err(OpenAiError::invalid_param(
                &format!("messages.[{i}].role"),
                format!(
                    "role `{}` is not supported: there is no tool calling",
                    m.role
                ),
            ));
        }
        other => {
            return Err(OpenAiError::invalid_param(
                &format!("messages.[{i}].role"),
                format!("unknown role `{other}`: expected system, developer, user or assistant"),
            ));
        }
    };
    let param = format!("messages.[{i}].content");
    let content = match m.content {
        Some(Value::String(text)) => text,
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(text))) => texts.push(text.as_str()),
                    (Some("text"), _) => {
                        return Err(OpenAiError::invalid_param(
                            &format!("{param}.[{j}].text"),
                            "a text part needs a string `text`",
                        ));
                    }
                    (Some(kind), _) => {
                        return Err(OpenAiError::invalid_param(
                            &format!("{param}.[{j}].type"),
                            format!(
                                "content parts of type `{kind}` are not supported; only `text`"
                            ),
                        ));
                    }
                    (None, _) => {
                        return Err(OpenAiError::invalid_param(
                            &format!("{param}.[{j}].type"),
                            "each content part needs a `type`",
                        ));
                    }
                }
            }
            texts.join("\n")
        }
        None | Some(Value::Null) => {
            return Err(OpenAiError::invalid_param(&param, "content is required"));
        }
        Some(_) => {
            return Err(OpenAiError::invalid_param(
                &param,
                "content must be a string or an array of text parts",
            ));
        }
    };
    Ok(ChatMessage::new(role, content))
}

/// OpenAI's `finish_reason` for a provider's stop reason.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("length" | "max_tokens") => "length",
        Some("content_filter") => "content_filter",
        _ => "stop",
    }
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    })
}

/// Identity shared by every object of one answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
}

impl Answer {
    /// The non-streaming `chat.completion` object. `usage` is left out when the provider did
    /// not report it (rather than invented).
    pub(crate) fn completion(
        &self,
        text: &str,
        stop_reason: Option<&str>,
        usage: Option<Usage>,
    ) -> Value {
        let mut object = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text, "refusal": null },
                "logprobs": null,
                "finish_reason": finish_reason(stop_reason),
            }],
        });
        if let Some(usage) = usage {
            object["usage"] = usage_json(usage);
        }
        object
    }
}

/// Writes one streamed answer as `chat.completion.chunk` SSE events: a first chunk with the
/// role, one chunk per content delta, a last chunk with `finish_reason`, the usage chunk when
/// asked for, then `data: [DONE]`.
#[derive(Debug, Clone)]
pub(crate) struct ChunkWriter {
    answer: Answer,
    include_usage: bool,
}

impl ChunkWriter {
    pub(crate) fn new(answer: Answer, include_usage: bool) -> Self {
        Self {
            answer,
            include_usage,
        }
    }

    fn chunk(&self, delta: &Value, finish: Option<&str>) -> String {
        let mut object = json!({
            "id": self.answer.id,
            "object": "chat.completion.chunk",
            "created": self.answer.created,
            "model": self.answer.model,
            "system_fingerprint": null,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        if self.include_usage {
            object["usage"] = Value::Null;
        }
        event(&object)
    }

    /// The first event: the assistant role with empty content.
    pub(crate) fn role(&self) -> String {
        self.chunk(&json!({ "role": "assistant", "content": "" }), None)
    }

    pub(crate) fn content(&self, text: &str) -> String {
        self.chunk(&json!({ "content": text }), None)
    }

    /// The closing events. The usage chunk is sent only when asked for and reported.
    pub(crate) fn finish(&self, stop_reason: Option<&str>, usage: Option<Usage>) -> String {
        let mut out = self.chunk(&json!({}), Some(finish_reason(stop_reason)));
        if self.include_usage
            && let Some(usage) = usage
        {
            out.push_str(&event(&json!({
                "id": self.answer.id,
                "object": "chat.completion.chunk",
                "created": self.answer.created,
                "model": self.answer.model,
                "system_fingerprint": null,
                "choices": [],
                "usage": usage_json(usage),
            })));
        }
        out.push_str("data: [DONE]\n\n");
        out
    }

    /// A failure after the stream began: the SDKs raise an `APIError` for a `data:` event
    /// holding `error`. No `[DONE]` follows.
    pub(crate) fn error(&self, err: &OpenAiError) -> String {
        event(&err.body())
    }
}

fn event(object: &Value) -> String {
    format!("data: {object}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(body: &Value) -> ChatRequest {
        parse(body.to_string().as_bytes()).expect("valid request")
    }

    fn parse_err(body: &str) -> OpenAiError {
        parse(body.as_bytes()).expect_err("refused")
    }

    #[test]
    fn text_parts_developer_role_and_limits_become_an_llm_request() {
        let request = parse_ok(&json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
            ],
            "max_tokens": 10, "max_completion_tokens": 20, "temperature": 0.5,
            "stream": true, "stream_options": {"include_usage": true}, "top_p": 0.9, "user": "u1",
        }));
        assert_eq!(
            request.llm.messages[0],
            ChatMessage::new(Role::System, "Be brief.")
        );
        assert_eq!(
            request.llm.messages[1],
            ChatMessage::new(Role::User, "Hello\nthere")
        );
        assert_eq!(
            request.llm.max_tokens,
            Some(20),
            "max_completion_tokens wins"
        );
        assert!(request.stream && request.include_usage);
    }

    #[test]
    fn every_malformed_request_is_a_typed_400_naming_the_field() {
        let cases = [
            ("{", "invalid_json", None),
            (r#"{"model":"m"}"#, "invalid_json", None),
            (
                r#"{"model":"m","messages":[]}"#,
                "invalid_value",
                Some("messages"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
                "invalid_value",
                Some("messages.[0].role"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
                "invalid_value",
                Some("messages.[0].role"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}]}"#,
                "invalid_value",
                Some("messages.[0].content"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                "invalid_value",
                Some("messages.[0].content.[0].type"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#,
                "invalid_value",
                Some("n"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#,
                "invalid_value",
                Some("temperature"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[]}"#,
                "unsupported_parameter",
                Some("tools"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{}}"#,
                "invalid_value",
                Some("stream_options"),
            ),
            (
                r#"{"model":"","messages":[{"role":"user","content":"x"}]}"#,
                "invalid_value",
                Some("model"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "invalid_value",
                Some("max_tokens"),
            ),
        ];
        for (body, code, param) in cases {
            let err = parse_err(body);
            assert_eq!(err.status, 400, "{body}");
            assert_eq!(err.code, code, "{body}: {}", err.message);
            assert_eq!(err.param.as_deref(), param, "{body}");
        }
        assert!(parse_err("{").message.contains("line 1"), "serde's message");
    }

    #[test]
    fn a_stream_is_role_then_deltas_then_finish_then_usage_then_done() {
        let writer = ChunkWriter::new(
            Answer {
                id: "chatcmpl-1".into(),
                created: 7,
                model: "m".into(),
            },
            true,
        );
        let usage = Usage {
            input_tokens: 3,
            output_tokens: 2,
        };
        let text = [
            writer.role(),
            writer.content("Hi"),
            writer.finish(Some("end_turn"), Some(usage)),
        ]
        .concat();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 5, "{text}");
        assert_eq!(events[4], "data: [DONE]");
        let json =
            |e: &str| -> Value { serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap() };
        assert_eq!(json(events[0])["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(json(events[1])["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(json(events[2])["choices"][0]["finish_reason"], "stop");
        assert_eq!(json(events[3])["choices"], json!([]));
        assert_eq!(json(events[3])["usage"]["total_tokens"], 5);
        assert_eq!(json(events[1])["object"], "chat.completion.chunk");
    }
}
