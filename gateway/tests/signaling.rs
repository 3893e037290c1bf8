//! WHIP-style signaling as a client sees it over HTTP: every refusal has the right status and
//! a JSON reason, and a good offer gets an answer, a Location, an ETag and ICE servers.

mod common;

use std::{sync::Arc, time::Instant};

use common::{
    RecordingPeer,
    server::{TestServer, TestVerifier, serve},
};
use gateway::{Config, IceServer};
use reqwest::{Client, Response, StatusCode, header};
use serde_json::Value;

fn config() -> Config {
    Config {
        ice_servers: vec![
            IceServer {
                urls: vec!["stun:stun.example.net:3478".to_owned()],
                username: String::new(),
                credential: Default::default(),
                secret: Default::default(),
                credential_ttl_secs: 86_400,
            },
            IceServer {
                urls: vec!["turn:turn.example.net:3478?transport=udp".to_owned()],
                username: String::new(),
                credential: Default::default(),
                secret: protocol::Secret::new("shared"),
                credential_ttl_secs: 600,
            },
        ],
        max_sdp_bytes: 16 * 1024,
        ..Config::default()
    }
}

async fn server() -> TestServer {
    serve(config(), Some(Arc::new(TestVerifier))).await
}

fn offer() -> String {
    RecordingPeer::offer(Instant::now(), "10.99.0.2:50000".parse().unwrap()).1
}

async fn post(s: &TestServer, token: Option<&str>, content_type: &str, body: String) -> Response {
    let mut req = Client::new()
        .post(format!("{}/v1/calls", s.url))
        .header(header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("POST /v1/calls")
}

/// Asserts the status and the JSON error shape; returns the error object.
async fn expect_error(res: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"].clone()
}

#[tokio::test]
async fn a_call_without_a_valid_token_is_refused_with_401() {
    let s = server().await;
    let res = post(&s, None, "application/sdp", offer()).await;
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let res = post(&s, Some("forged-token"), "application/sdp", offer()).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let res = post(&s, Some("banned-token"), "application/sdp", offer()).await;
    expect_error(res, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn a_gateway_without_a_verifier_refuses_every_call_unless_dev_tokens_are_on() {
    let locked = serve(config(), None).await;
    let res = post(&locked, Some("dev:carol"), "application/sdp", offer()).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let dev = serve(
        Config {
            dev_tokens: true,
            ..config()
        },
        None,
    )
    .await;
    let res = post(&dev, Some("dev:carol"), "application/sdp", offer()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = post(&dev, Some("carol"), "application/sdp", offer()).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn an_offer_sent_as_another_content_type_is_refused_with_415() {
    let s = server().await;
    let res = post(&s, Some("alice-token"), "application/json", offer()).await;
    let err = expect_error(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
    )
    .await;
    assert!(err["message"].as_str().unwrap().contains("application/sdp"));
    // Parameters after the media type are fine.
    let res = post(
        &s,
        Some("alice-token"),
        "application/sdp; charset=utf-8",
        offer(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_malformed_offer_is_refused_with_400_and_the_reason() {
    let s = server().await;
    let res = post(
        &s,
        Some("alice-token"),
        "application/sdp",
        "hello".to_owned(),
    )
    .await;
    let err = expect_error(res, StatusCode::BAD_REQUEST, "bad_offer").await;
    assert!(err["message"].as_str().unwrap().contains("v=0"), "{err}");

    let truncated: String = offer()
        .lines()
        .take(4)
        .map(|l| format!("{l}\r\n"))
        .collect();
    let res = post(&s, Some("alice-token"), "application/sdp", truncated).await;
    expect_error(res, StatusCode::BAD_REQUEST, "bad_offer").await;

    let no_fingerprint: String = offer()
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let res = post(&s, Some("alice-token"), "application/sdp", no_fingerprint).await;
    let err = expect_error(res, StatusCode::BAD_REQUEST, "bad_offer").await;
    assert!(err["message"].as_str().unwrap().contains("DTLS"), "{err}");
}

#[tokio::test]
async fn an_offer_without_opus_is_refused_with_415() {
    let s = server().await;
    let pcmu_only = offer().replace("opus/48000/2", "PCMU/8000");
    let res = post(&s, Some("alice-token"), "application/sdp", pcmu_only).await;
    let err = expect_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "no_opus").await;
    assert!(err["message"].as_str().unwrap().contains("opus"), "{err}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let s = server().await;
    let mut huge = offer();
    while huge.len() <= 16 * 1024 {
        huge.push_str("a=x-padding:0123456789abcdef0123456789abcdef\r\n");
    }
    let res = post(&s, Some("alice-token"), "application/sdp", huge).await;
    expect_error(res, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
}

#[tokio::test]
async fn a_caller_over_their_tiers_call_limit_gets_429() {
    let s = server().await;
    let first = post(&s, Some("alice-token"), "application/sdp", offer()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = post(&s, Some("alice-token"), "application/sdp", offer()).await;
    let err = expect_error(second, StatusCode::TOO_MANY_REQUESTS, "too_many_calls").await;
    assert!(err["message"].as_str().unwrap().contains('1'), "{err}");
    // Another account is not affected.
    let bob = post(&s, Some("bob-token"), "application/sdp", offer()).await;
    assert_eq!(bob.status(), StatusCode::CREATED);

    // Hanging up frees the slot.
    let location = first.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let res = Client::new()
        .delete(format!("{}{location}", s.url))
        .bearer_auth("alice-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let again = post(&s, Some("alice-token"), "application/sdp", offer()).await;
    assert_eq!(again.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_good_offer_gets_an_answer_location_etag_and_ice_servers_then_trickle_and_hang_up() {
    let mut s = server().await;
    let res = post(&s, Some("alice-token"), "application/sdp", offer()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let h = res.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "application/sdp");
    let location = h[header::LOCATION].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/v1/calls/") && location.len() == 10 + 32,
        "{location}"
    );
    let etag = h[header::ETAG].to_str().unwrap().to_owned();
    let links: Vec<&str> = h
        .get_all(header::LINK)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(
        links[0],
        r#"<stun:stun.example.net:3478>; rel="ice-server""#
    );
    assert!(links[1].starts_with(
        r#"<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username=""#
    ));
    assert!(
        links[1].contains(r#":alice"; credential=""#),
        "{}",
        links[1]
    );
    let answer = res.text().await.unwrap();
    assert!(answer.starts_with("v=0"), "{answer}");
    assert!(answer.contains("a=fingerprint:sha-256"), "{answer}");
    assert!(answer.contains("opus/48000/2"), "{answer}");

    // The voice session got the call.
    let call = s.calls.recv().await.expect("the call handler got the call");
    assert_eq!(call.caller().user_id, "alice");
    assert_eq!(format!("/v1/calls/{}", call.id()), location);
    assert_eq!(s.gateway.active_calls(), 1);

    let url = format!("{}{location}", s.url);
    let patch = |body: &str, tag: Option<&str>, token: &str| {
        let mut req = Client::new()
            .patch(&url)
            .bearer_auth(token)
            .header(header::CONTENT_TYPE, "application/trickle-ice-sdpfrag")
            .body(body.to_owned());
        if let Some(tag) = tag {
            req = req.header(header::IF_MATCH, tag);
        }
        req.send()
    };
    let frag = "a=ice-ufrag:%UFRAG%\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                a=candidate:1 1 udp 2122260223 10.99.0.2 50001 typ host\r\n\
                a=candidate:2 1 udp 2122260223 a1b2c3.local 50002 typ host\r\n\
                a=end-of-candidates\r\n";
    let frag_without_ufrag: String = frag.lines().skip(1).map(|l| format!("{l}\r\n")).collect();

    // Trickled candidates (including an mDNS one the gateway cannot resolve) are taken.
    let res = patch(&frag_without_ufrag, Some(&etag), "alice-token")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // A stale ETag, another ICE session (restart) or bad syntax are refused.
    let res = patch(&frag_without_ufrag, Some("\"other\""), "alice-token")
        .await
        .unwrap();
    expect_error(res, StatusCode::PRECONDITION_FAILED, "etag_mismatch").await;
    let res = patch(&frag.replace("%UFRAG%", "restart"), None, "alice-token")
        .await
        .unwrap();
    expect_error(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ice_restart_unsupported",
    )
    .await;
    let res = patch("not sdp at all", None, "alice-token").await.unwrap();
    expect_error(res, StatusCode::BAD_REQUEST, "bad_fragment").await;
    // Someone else's call does not exist for them.
    let res = patch(&frag_without_ufrag, None, "bob-token").await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "no_such_call").await;
    let res = Client::new()
        .patch(&url)
        .bearer_auth("alice-token")
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(frag_without_ufrag.clone())
        .send()
        .await
        .unwrap();
    expect_error(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
    )
    .await;

    // Bob cannot hang up Alice's call; Alice can, once.
    let delete = |token: &'static str| Client::new().delete(&url).bearer_auth(token).send();
    expect_error(
        delete("bob-token").await.unwrap(),
        StatusCode::NOT_FOUND,
        "no_such_call",
    )
    .await;
    assert_eq!(
        delete("alice-token").await.unwrap().status(),
        StatusCode::OK
    );
    let sender = call.sender();
    assert_eq!(sender.closed().await, gateway::CloseReason::CallerHungUp);
    assert_eq!(s.gateway.active_calls(), 0);
    expect_error(
        delete("alice-token").await.unwrap(),
        StatusCode::NOT_FOUND,
        "no_such_call",
    )
    .await;

    // Unknown and malformed ids are simply not found.
    let res = Client::new()
        .delete(format!("{}/v1/calls/not-an-id", s.url))
        .bearer_auth("alice-token")
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "no_such_call").await;
}

#[tokio::test]
async fn a_page_can_fetch_its_ice_servers_as_json() {
    let s = server().await;
    let res = Client::new()
        .get(format!("{}/v1/ice-servers", s.url))
        .bearer_auth("bob-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let servers = body["iceServers"].as_array().expect("iceServers");
    assert_eq!(servers[0]["urls"][0], "stun:stun.example.net:3478");
    assert!(servers[0].get("username").is_none());
    assert!(servers[1]["username"].as_str().unwrap().ends_with(":bob"));
    assert_eq!(servers[1]["credential"].as_str().unwrap().len(), 28);

    let res = Client::new()
        .get(format!("{}/v1/ice-servers", s.url))
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn shutting_down_hangs_up_every_call() {
    let mut s = server().await;
    for token in ["alice-token", "bob-token"] {
        let res = post(&s, Some(token), "application/sdp", offer()).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let first = s.calls.recv().await.unwrap().sender();
    assert_eq!(s.gateway.active_calls(), 2);
    assert_eq!(s.gateway.hang_up_all().await, 2);
    assert_eq!(first.closed().await, gateway::CloseReason::Shutdown);
    assert_eq!(s.gateway.active_calls(), 0);
}

#[tokio::test]
async fn behind_a_1_to_1_nat_the_answer_advertises_the_public_address() {
    let s = serve(
        Config {
            udp_listen: vec!["127.0.0.1:0".parse().unwrap()],
            public_ip: Some("203.0.113.10".parse().unwrap()),
            ..config()
        },
        Some(Arc::new(TestVerifier)),
    )
    .await;
    let port = s.gateway.start().await.unwrap()[0].port();
    let res = post(&s, Some("alice-token"), "application/sdp", offer()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let answer = res.text().await.unwrap();
    assert!(
        answer.contains(&format!(" 203.0.113.10 {port} typ host")),
        "{answer}"
    );
    assert!(!answer.contains("127.0.0.1 "), "{answer}");
}
