//! An OpenAI client talks to the product's `/v1/chat/completions`: its answer comes from the
//! configured LLM chain (the mock here), each completion spends one message of the caller's
//! daily quota, and everything a client can get wrong is an OpenAI-shaped error.

mod openai_support;

use openai_support::{Options, Stack, expect_error};
use pipeline::mock::{Fault, reply_for};
use serde_json::{Value, json};

fn hello() -> Value {
    json!({
        "model": "any-model-name",
        "messages": [
            {"role": "system", "content": "You are a friendly companion."},
            {"role": "user", "content": [{"type": "text", "text": "what is the weather like today"}]},
        ],
    })
}

/// The `data:` payloads of an SSE body, in order.
fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.trim().strip_prefix("data: ").map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_answers_from_the_llm_chain_and_spends_one_message() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("chat").await;

    let response = stack.post_json(&token, "chat/completions", &hello()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["model"], "any-model-name",
        "the requested name is echoed"
    );
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"].as_str().unwrap().trim(),
        reply_for("what is the weather like today").trim()
    );
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    assert_eq!(stack.settled_usage(&token, "messages").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_completion_is_role_deltas_finish_usage_and_done() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("stream").await;

    let mut request = hello();
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let response = stack.post_json(&token, "chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks.windows(2).all(|w| w[0]["id"] == w[1]["id"]),
        "one id per answer"
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text.trim(),
        reply_for("what is the weather like today").trim()
    );
    assert!(chunks.len() > 4, "the answer arrives in several deltas");
    let (finish, usage) = (&chunks[chunks.len() - 2], &chunks[chunks.len() - 1]);
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(stack.settled_usage(&token, "messages").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_midway_stops_the_stream_and_still_pays_its_message() {
    let mock = pipeline::mock::MockConfig {
        token_interval_ms: 200,
        ..Default::default()
    };
    let stack = Stack::start(Options {
        mock: Some(mock),
        ..Options::default()
    })
    .await;
    let token = stack.signup("leaver").await;
    let mut request = hello();
    request["stream"] = json!(true);
    let mut response = stack.post_json(&token, "chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    drop(response);
    // Delivered text makes the message spent; the settlement runs after the disconnect.
    assert_eq!(stack.settled_usage(&token, "messages").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors_and_spend_nothing() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("bad").await;
    let url = format!("{}/v1/chat/completions", stack.gateway);

    // Who: no key, a wrong key.
    let none = stack.http.post(&url).json(&hello()).send().await.unwrap();
    assert!(none.headers().contains_key("www-authenticate"));
    expect_error(none, 401, "invalid_api_key").await;
    let wrong = stack
        .post_json("not-a-token", "chat/completions", &hello())
        .await;
    expect_error(wrong, 401, "invalid_api_key").await;

    // What: not JSON, broken JSON, wrong shapes.
    let form = stack
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    expect_error(form, 415, "unsupported_media_type").await;
    let broken = stack
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"model\": \"m\", \"messages\": [")
        .send()
        .await
        .unwrap();
    let error = expect_error(broken, 400, "invalid_json").await;
    assert!(
        error["message"].as_str().unwrap().contains("line 1"),
        "{error}"
    );

    let cases = [
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}),
            "messages.[0].role",
        ),
        (
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
            "n",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            "messages.[0].content.[0].type",
        ),
    ];
    for (body, param) in cases {
        let response = stack.post_json(&token, "chat/completions", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["param"], param, "{error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }

    // Too big: 413 before anything is parsed.
    let huge =
        json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(1_100_000)}]});
    let response = stack.post_json(&token, "chat/completions", &huge).await;
    expect_error(response, 413, "request_too_large").await;

    assert_eq!(
        stack.usage(&token, "messages").await,
        (0, 0),
        "nothing was spent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_quota_is_429_insufficient_quota_with_retry_after() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("spender").await;
    // Spend the free tier's 50 messages directly at the control plane, as a gateway would.
    stack.spend(&token, "messages", 50).await;

    let response = stack.post_json(&token, "chat/completions", &hello()).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=86_400).contains(&retry_after),
        "until UTC midnight: {retry_after}"
    );
    let error = expect_error(response, 429, "insufficient_quota").await;
    assert_eq!(error["type"], "insufficient_quota");
    assert_eq!(
        stack
            .mock
            .requests(pipeline::mock::Endpoint::ChatCompletions),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_request_limit_is_429_rate_limit_exceeded_with_retry_after() {
    // Each completion reserves and settles: two requests to /api/quota.
    let stack = Stack::start(Options {
        quota_requests_per_hour: Some(2),
        ..Options::default()
    })
    .await;
    let token = stack.signup("busy").await;
    let first = stack.post_json(&token, "chat/completions", &hello()).await;
    assert_eq!(first.status(), 200);
    let second = stack.post_json(&token, "chat/completions", &hello()).await;
    assert!(
        second.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let error = expect_error(second, 429, "rate_limit_exceeded").await;
    assert_eq!(error["type"], "requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_outage_is_503_and_the_message_is_given_back() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("outage").await;
    stack.mock.set_fault(Fault::Status(500));
    let response = stack.post_json(&token, "chat/completions", &hello()).await;
    let error = expect_error(response, 503, "provider_unavailable").await;
    assert_eq!(error["type"], "server_error");
    assert_eq!(stack.settled_usage(&token, "messages").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_over_the_tiers_size_is_refused_before_spending_anything() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("rambler").await;
    // The free tier allows 16,000 characters of prompt.
    let request = json!({
        "model": "any",
        "messages": [{"role": "user", "content": "a".repeat(16_001)}],
    });
    let error = expect_error(
        stack.post_json(&token, "chat/completions", &request).await,
        400,
        "context_length_exceeded",
    )
    .await;
    assert_eq!(error["param"], "messages");
    assert_eq!(stack.usage(&token, "messages").await, (0, 0));
    assert_eq!(
        stack
            .mock
            .requests(pipeline::mock::Endpoint::ChatCompletions),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_past_the_chat_rate_are_refused_with_retry_after() {
    let stack = Stack::start(Options {
        chat_requests_per_window: Some(2),
        ..Options::default()
    })
    .await;
    let token = stack.signup("chatterbox").await;
    for _ in 0..2 {
        let response = stack.post_json(&token, "chat/completions", &hello()).await;
        assert_eq!(response.status(), 200);
    }
    let response = stack.post_json(&token, "chat/completions", &hello()).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    expect_error(response, 429, "rate_limit_exceeded").await;
    assert_eq!(stack.settled_usage(&token, "messages").await, 2);
    // Another caller has their own allowance.
    let other = stack.signup("quiet").await;
    let response = stack.post_json(&other, "chat/completions", &hello()).await;
    assert_eq!(response.status(), 200);
}
