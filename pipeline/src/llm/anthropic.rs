//! Anthropic Messages API with SSE streaming.
//!
//! Wire format: `POST {base}/v1/messages` with `x-api-key`, `anthropic-version` and
//! `stream: true`. Events: `message_start` (input usage), `content_block_start`, `ping`,
//! `content_block_delta` (`text_delta`), `content_block_stop`, `message_delta` (stop reason,
//! output usage), `message_stop`, and `error` (e.g. `overloaded_error`) at any point.
//! Resuming a cut answer uses assistant prefill: the partial answer is the last message.

use std::collections::VecDeque;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use crate::PipelineError;
use crate::config::{AnthropicConfig, HttpConfig, Secret};
use crate::http::{self, SseDecoder};
use crate::provider::{LlmEvent, LlmProvider, LlmRequest, LlmStream, Role, ServedModel, Usage};
use crate::sse::SseEvent;

/// The Anthropic Messages provider.
#[derive(Debug, Clone)]
pub struct AnthropicChat {
    name: String,
    client: reqwest::Client,
    base_url: String,
    model: String,
    key: Secret,
    api_version: String,
    max_tokens: u32,
}

impl AnthropicChat {
    /// A provider from its config section and a resolved key.
    pub fn new(
        name: impl Into<String>,
        config: &AnthropicConfig,
        key: Secret,
        http_config: &HttpConfig,
    ) -> Self {
        Self {
            name: name.into(),
            client: http::build_client(http_config),
            base_url: config.base_url.clone(),
            model: config.model.clone(),
            key,
            api_version: config.api_version.clone(),
            max_tokens: config.max_tokens,
        }
    }

    fn body(&self, request: &LlmRequest) -> serde_json::Value {
        let mut system = String::new();
        let mut messages = Vec::new();
        for m in &request.messages {
            match m.role {
                Role::System => {
                    if !system.is_empty() {
                        system.push_str("\n\n");
                    }
                    system.push_str(&m.content);
                }
                Role::User => messages.push(json!({"role": "user", "content": m.content})),
                Role::Assistant => {
                    messages.push(json!({"role": "assistant", "content": m.content}));
                }
            }
        }
        // Prefill must not end in whitespace (the API rejects it); the continuation then
        // starts with the space itself.
        if let Some(prefix) = request
            .assistant_prefix
            .as_deref()
            .map(str::trim_end)
            .filter(|p| !p.is_empty())
        {
            messages.push(json!({"role": "assistant", "content": prefix}));
        }
        let mut body = json!({
            "model": self.model,
            "max_tokens": request.max_tokens.unwrap_or(self.max_tokens),
            "stream": true,
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = json!(system);
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        body
    }
}

impl LlmProvider for AnthropicChat {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> Vec<ServedModel> {
        vec![ServedModel::new(&self.model, &self.name)]
    }

    fn stream(&self, request: LlmRequest) -> LlmStream {
        let builder = self
            .client
            .post(http::join_url(&self.base_url, "v1/messages"))
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", &self.api_version)
            .json(&self.body(&request));
        let name = self.name.clone();
        let open = async move { http::send(&name, builder).await };
        http::sse_stream(
            self.name.clone(),
            open,
            AnthropicDecoder::new(self.name.clone()),
        )
    }

    fn warm_up(&self) -> BoxFuture<'_, Result<(), PipelineError>> {
        let builder = self
            .client
            .get(http::join_url(&self.base_url, "v1/models"))
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", &self.api_version);
        Box::pin(async move { http::warm_up(&self.name, builder).await })
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        usage: Option<OutputUsage>,
    },
    MessageStop,
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<InputUsage>,
}

#[derive(Deserialize)]
struct InputUsage {
    #[serde(default)]
    input_tokens: u32,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct OutputUsage {
    #[serde(default)]
    output_tokens: u32,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

/// Decodes Anthropic Messages stream events.
pub(crate) struct AnthropicDecoder {
    provider: String,
    usage: Usage,
    stop_reason: Option<String>,
}

impl AnthropicDecoder {
    pub(crate) fn new(provider: String) -> Self {
        Self {
            provider,
            usage: Usage::default(),
            stop_reason: None,
        }
    }
}

impl SseDecoder for AnthropicDecoder {
    type Item = LlmEvent;

    fn on_event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<LlmEvent>,
    ) -> Result<bool, PipelineError> {
        let parsed: Event =
            serde_json::from_str(&event.data).map_err(|e| PipelineError::Protocol {
                provider: self.provider.clone(),
                streamed: false,
                message: format!("bad {} event: {e}", event.event),
            })?;
        match parsed {
            Event::MessageStart { message } => {
                if let Some(u) = message.usage {
                    self.usage.input_tokens = u.input_tokens;
                }
            }
            Event::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
            } if !text.is_empty() => {
                out.push_back(LlmEvent::Token(text));
            }
            Event::MessageDelta { delta, usage } => {
                self.stop_reason = delta.stop_reason.or(self.stop_reason.take());
                if let Some(u) = usage {
                    self.usage.output_tokens = u.output_tokens;
                }
            }
            Event::MessageStop => {
                out.push_back(LlmEvent::Finished {
                    usage: Some(self.usage),
                    stop_reason: self.stop_reason.take(),
                });
                return Ok(true);
            }
            Event::Error { error } => {
                return Err(PipelineError::ProviderReported {
                    provider: self.provider.clone(),
                    streamed: false,
                    kind: error.kind,
                    message: error.message,
                });
            }
            Event::ContentBlockDelta { .. } | Event::Other => {}
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
    use crate::provider::ChatMessage;

    fn run(events: &[(&str, &str)]) -> Result<Vec<LlmEvent>, PipelineError> {
        let mut d = AnthropicDecoder::new("anthropic".into());
        let mut out = VecDeque::new();
        for (name, data) in events {
            d.on_event(
                SseEvent {
                    event: (*name).into(),
                    data: (*data).into(),
                    id: None,
                },
                &mut out,
            )?;
        }
        Ok(out.into())
    }

    #[test]
    fn decodes_a_whole_message() {
        let events = run(&[
            ("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#),
            ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            ("ping", r#"{"type": "ping"}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#),
            ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ])
        .unwrap();
        assert_eq!(
            events,
            [
                LlmEvent::Token("Hello".into()),
                LlmEvent::Finished {
                    usage: Some(Usage {
                        input_tokens: 25,
                        output_tokens: 15
                    }),
                    stop_reason: Some("end_turn".into())
                }
            ]
        );
    }

    #[test]
    fn an_overloaded_event_is_retryable() {
        let err = run(&[(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )])
        .unwrap_err();
        assert!(err.retryable());
        assert!(err.to_string().contains("overloaded_error"));
    }

    #[test]
    fn system_messages_move_to_the_system_field_and_the_prefix_is_prefilled() {
        let p = AnthropicChat::new(
            "anthropic",
            &AnthropicConfig::default(),
            Secret::new("k"),
            &HttpConfig::default(),
        );
        let mut req = LlmRequest::new(vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "hi"),
        ]);
        req.assistant_prefix = Some("Hello there ".into());
        let body = p.body(&req);
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["messages"][1]["content"], "Hello there");
        assert_eq!(body["messages"][1]["role"], "assistant");
    }
}
