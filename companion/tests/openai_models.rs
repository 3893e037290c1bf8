//! An OpenAI client lists the models behind the gateway (`GET /v1/models`) and looks one up
//! (`GET /v1/models/{model}`): the models the configured chains really run (the mock's here),
//! chat first, then speech, then transcription; an unknown id is OpenAI's 404
//! `model_not_found`, and both need the API key.

mod openai_support;

use openai_support::{Options, Stack, expect_error};
use serde_json::{Value, json};

async fn get(stack: &Stack, token: Option<&str>, path: &str) -> reqwest::Response {
    let request = stack.http.get(format!("{}/v1/{path}", stack.gateway));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_names_the_model_of_every_provider_of_every_chain() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("models").await;

    let response = get(&stack, Some(&token), "models").await;
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["object"], "list", "{list}");
    let data = list["data"].as_array().expect("data");
    let served: Vec<(&str, &str)> = data
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["owned_by"].as_str().unwrap()))
        .collect();
    // The default LLM failover order, then the TTS and STT chains the test stack configures.
    assert_eq!(
        served,
        [
            ("mock-openai", "openai"),
            ("mock-claude", "anthropic"),
            ("mock-groq", "groq"),
            ("gpt-4o-mini-tts", "openai"),
            ("gpt-4o-mini-transcribe", "openai"),
        ],
        "{list}"
    );
    for model in data {
        assert_eq!(model["object"], "model", "{model}");
        assert!(model["created"].as_u64().is_some_and(|t| t > 0), "{model}");
        assert_eq!(
            model.as_object().unwrap().len(),
            4,
            "exactly OpenAI's fields: {model}"
        );
    }

    // One model, as listed.
    let response = get(&stack, Some(&token), "models/mock-claude").await;
    assert_eq!(response.status(), 200);
    let model: Value = response.json().await.unwrap();
    assert_eq!(&model, &data[1]);

    // A listed name answers (as any name does: the chain serves them all).
    let request = json!({"model": "mock-groq", "messages": [{"role": "user", "content": "hi"}]});
    let response = stack.post_json(&token, "chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["model"], "mock-groq");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_is_a_404_and_no_key_is_a_401() {
    let stack = Stack::start(Options::default()).await;
    let token = stack.signup("nomodel").await;

    let error = expect_error(
        get(&stack, Some(&token), "models/gpt-4o").await,
        404,
        "model_not_found",
    )
    .await;
    assert_eq!(error["type"], "invalid_request_error");
    assert!(
        error["message"].as_str().unwrap().contains("`gpt-4o`"),
        "{error}"
    );
    // Ids with a slash (as some vendors name models) reach the lookup whole.
    expect_error(
        get(&stack, Some(&token), "models/vendor/mock-openai").await,
        404,
        "model_not_found",
    )
    .await;

    for path in ["models", "models/mock-openai"] {
        let missing = get(&stack, None, path).await;
        assert_eq!(missing.headers()["www-authenticate"], "Bearer");
        expect_error(missing, 401, "invalid_api_key").await;
        expect_error(
            get(&stack, Some("not-a-token"), path).await,
            401,
            "invalid_api_key",
        )
        .await;
    }
}
