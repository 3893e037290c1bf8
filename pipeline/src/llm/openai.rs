//! OpenAI-compatible chat completions with SSE streaming (OpenAI, Groq, llama.cpp, vLLM, Ollama).
//!
//! Wire format: `POST {base}/chat/completions` with `stream: true` and
//! `stream_options: {include_usage: true}`; the body is SSE whose `data:` lines are
//! `chat.completion.chunk` objects (`choices[0].delta.content`, `finish_reason`), then one
//! chunk with empty `choices` and `usage`, then `data: [DONE]`.

use std::collections::VecDeque;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use crate::PipelineError;
use crate::config::{HttpConfig, Secret};
use crate::http::{self, SseDecoder};
use crate::provider::{
    ChatMessage, LlmEvent, LlmProvider, LlmRequest, LlmStream, Role, ServedModel, Usage,
};
use crate::sse::SseEvent;

/// Sent as a user message after the partial answer when failover resumes an answer on an
/// OpenAI-compatible model (they have no assistant prefill).
pub const CONTINUE_INSTRUCTION: &str = "Your previous answer was cut off. Continue it exactly where it \
stopped: do not repeat anything already said and add no preamble.";

/// An OpenAI-compatible chat-completions provider.
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    name: String,
    client: reqwest::Client,
    base_url: String,
    model: String,
    key: Option<Secret>,
    max_tokens: u32,
}

impl OpenAiChat {
    /// A provider named `name` at `base_url` (up to and including `/v1`). `key` may be `None`
    /// for local servers that need none.
    pub fn new(
        name: impl Into<String>,
        base_url: impl Into<String>,
        model: impl Into<String>,
        key: Option<Secret>,
        max_tokens: u32,
        http_config: &HttpConfig,
    ) -> Self {
        Self {
            name: name.into(),
            client: http::build_client(http_config),
            base_url: base_url.into(),
            model: model.into(),
            key,
            max_tokens,
        }
    }

    fn body(&self, request: &LlmRequest) -> serde_json::Value {
        let mut messages: Vec<serde_json::Value> =
            request.messages.iter().map(message_json).collect();
        if let Some(prefix) = request
            .assistant_prefix
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            messages.push(json!({"role": "assistant", "content": prefix}));
            messages.push(json!({"role": "user", "content": CONTINUE_INSTRUCTION}));
        }
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": request.max_tokens.unwrap_or(self.max_tokens),
        });
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        body
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.post(http::join_url(&self.base_url, path));
        match &self.key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        }
    }
}

fn message_json(m: &ChatMessage) -> serde_json::Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    json!({"role": role, "content": m.content})
}

impl LlmProvider for OpenAiChat {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> Vec<ServedModel> {
        vec![ServedModel::new(&self.model, &self.name)]
    }

    fn stream(&self, request: LlmRequest) -> LlmStream {
        let builder = self.post("chat/completions").json(&self.body(&request));
        let name = self.name.clone();
        let open = async move { http::send(&name, builder).await };
        http::sse_stream(
            self.name.clone(),
            open,
            OpenAiDecoder::new(self.name.clone()),
        )
    }

    fn warm_up(&self) -> BoxFuture<'_, Result<(), PipelineError>> {
        let builder = self.client.get(http::join_url(&self.base_url, "models"));
        let builder = match &self.key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        };
        Box::pin(async move { http::warm_up(&self.name, builder).await })
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<ChunkUsage>,
    error: Option<ChunkError>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

#[derive(Deserialize)]
struct ChunkError {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: String,
}

/// Decodes `chat.completion.chunk` events.
pub(crate) struct OpenAiDecoder {
    provider: String,
    usage: Option<Usage>,
    stop_reason: Option<String>,
}

impl OpenAiDecoder {
    pub(crate) fn new(provider: String) -> Self {
        Self {
            provider,
            usage: None,
            stop_reason: None,
        }
    }
}

impl SseDecoder for OpenAiDecoder {
    type Item = LlmEvent;

    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<LlmEvent>,
    ) -> Result<bool, PipelineError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            out.push_back(LlmEvent::Finished {
                usage: self.usage,
                stop_reason: self.stop_reason.take(),
            });
            return Ok(true);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| PipelineError::Protocol {
            provider: self.provider.clone(),
            streamed: false,
            message: format!("bad chat.completion.chunk: {e}"),
        })?;
        if let Some(error) = chunk.error {
            return Err(PipelineError::ProviderReported {
                provider: self.provider.clone(),
                streamed: false,
                kind: error.kind.unwrap_or_else(|| "error".into()),
                message: error.message,
            });
        }
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                out.push_back(LlmEvent::Token(text));
            }
            if choice.finish_reason.is_some() {
                self.stop_reason = choice.finish_reason;
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(Usage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
            });
        }
        Ok(false)
    }

    fn is_content(item: &LlmEvent) -> bool {
        matches!(item, LlmEvent::Token(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(decoder: &mut OpenAiDecoder, data: &str) -> (Vec<LlmEvent>, bool) {
        let mut out = VecDeque::new();
        let done = decoder
            .on_event(
                SseEvent {
                    data: data.into(),
                    ..SseEvent::default()
                },
                &mut out,
            )
            .unwrap();
        (out.into(), done)
    }

    #[test]
    fn decodes_deltas_usage_and_done() {
        let mut d = OpenAiDecoder::new("openai".into());
        let (e, _) = feed(
            &mut d,
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        );
        assert!(e.is_empty());
        let (e, _) = feed(
            &mut d,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        );
        assert_eq!(e, [LlmEvent::Token("Hi".into())]);
        feed(
            &mut d,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        );
        feed(
            &mut d,
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#,
        );
        let (e, done) = feed(&mut d, "[DONE]");
        assert!(done);
        assert_eq!(
            e,
            [LlmEvent::Finished {
                usage: Some(Usage {
                    input_tokens: 9,
                    output_tokens: 1
                }),
                stop_reason: Some("stop".into())
            }]
        );
    }

    #[test]
    fn an_error_object_in_the_stream_is_a_provider_error() {
        let mut d = OpenAiDecoder::new("groq".into());
        let mut out = VecDeque::new();
        let err = d
            .on_event(
                SseEvent {
                    data: r#"{"error":{"message":"overloaded","type":"server_error"}}"#.into(),
                    ..SseEvent::default()
                },
                &mut out,
            )
            .unwrap_err();
        assert!(err.retryable());
        assert_eq!(err.provider(), Some("groq"));
    }

    #[test]
    fn a_resumed_answer_carries_the_partial_text_and_the_instruction() {
        let p = OpenAiChat::new(
            "openai",
            "http://x/v1",
            "m",
            None,
            100,
            &HttpConfig::default(),
        );
        let mut req = LlmRequest::new(vec![ChatMessage::new(Role::User, "hi")]);
        req.assistant_prefix = Some("Hello the".into());
        let body = p.body(&req);
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs[1]["content"], "Hello the");
        assert_eq!(msgs[2]["content"], CONTINUE_INSTRUCTION);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }
}
