//! The companion service in process for chat tests: a real control plane (SQLite file or a
//! PostgreSQL schema with Redis limits), a gateway that reaches it over HTTP, the mock LLM, and
//! a WebSocket client.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use control_plane::{ControlPlane, RateLimitRule};
use futures_util::{SinkExt as _, StreamExt as _};
use gateway::{AuthError, Caller, CallerVerifier, ChatConfig, Gateway, JwksVerifier};
use pipeline::mock::{MockConfig, MockServer};
use serde_json::{Value, json};
use test_support::{
    control_plane::{Backend, Storage, service_token},
    providers, ws,
};
use tokio_tungstenite::tungstenite::{
    Message,
    client::IntoClientRequest,
    http::{HeaderValue, Response},
};

pub use test_support::ws::Ws;

/// What a test changes from the defaults.
pub struct Options {
    pub postgres: bool,
    /// `chat` rule limit per hour; `None` leaves chat unlimited.
    pub chat_limit: Option<u64>,
    pub blocked_terms: Vec<String>,
    pub chat: ChatConfig,
    pub mock: MockConfig,
    /// Kernel send buffer of the gateway's sockets (bytes); `None` keeps the system's.
    pub gateway_send_buffer: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            postgres: false,
            chat_limit: None,
            blocked_terms: Vec::new(),
            chat: ChatConfig::default(),
            mock: MockConfig {
                ttft_ms: 5,
                token_interval_ms: 1,
                ..MockConfig::default()
            },
            gateway_send_buffer: None,
        }
    }
}

/// A verifier that can be told the caller's token has expired since it was issued.
pub struct Expiring {
    pub inner: Arc<JwksVerifier>,
    pub expired: AtomicBool,
}

impl CallerVerifier for Expiring {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if self.expired.load(Ordering::SeqCst) {
            return Err(AuthError::Invalid(
                "token rejected: ExpiredSignature".into(),
            ));
        }
        self.inner.verify(token)
    }
}

pub struct Service {
    pub cp: ControlPlane,
    pub cp_url: String,
    pub ws_url: String,
    pub gateway_addr: SocketAddr,
    pub http: reqwest::Client,
    pub verifier: Arc<Expiring>,
    pub mock: MockServer,
}

async fn serve(app: axum::Router, send_buffer: Option<u32>) -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // Accepted connections inherit the listener's buffer size.
    if let Some(bytes) = send_buffer {
        socket.set_send_buffer_size(bytes).unwrap();
    }
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

impl Service {
    pub async fn start(options: Options) -> Self {
        let mut config = Storage::fresh(Backend::postgres_if(options.postgres))
            .await
            .config();
        if let Some(limit) = options.chat_limit {
            config.rate_limits.push(RateLimitRule {
                name: "chat".to_owned(),
                prefix: "/api/chat".to_owned(),
                limit,
                window_secs: 3600,
            });
        }
        config.moderation.blocked_terms = options.blocked_terms;
        let cp = ControlPlane::start(config)
            .await
            .expect("control plane starts");
        let cp_addr = serve(cp.router(), None).await;
        let cp_url = format!("http://{cp_addr}");

        let mock = MockServer::start(options.mock).await.expect("mock LLM");
        let providers = providers::chat_providers(&mock);

        let jwks = JwksVerifier::new(Default::default());
        jwks.install(cp.verifier().await.expect("keys"));
        let verifier = Arc::new(Expiring {
            inner: jwks,
            expired: AtomicBool::new(false),
        });
        let gateway_config = gateway::Config {
            control_plane_url: cp_url.clone(),
            control_plane_service_token: service_token(),
            chat: options.chat,
            ..gateway::Config::default()
        };
        let gateway = Gateway::new(gateway_config)
            .with_verifier(verifier.clone())
            .with_providers(providers);
        let gateway_addr = serve(gateway.router(), options.gateway_send_buffer).await;
        Self {
            cp,
            cp_url,
            ws_url: format!("ws://{gateway_addr}/v1/chat/ws"),
            gateway_addr,
            http: reqwest::Client::new(),
            verifier,
            mock,
        }
    }

    /// A new account's access token.
    pub async fn user(&self, email: &str) -> String {
        self.cp.dev_token(email).await.expect("dev token")
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.cp_url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.cp_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn conversation(&self, token: &str) -> String {
        let (status, body) = self
            .post("/api/conversations", token, json!({"title": "chat"}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// The stored messages of a conversation as `(role, content)`.
    pub async fn messages(&self, token: &str, conversation: &str) -> Vec<(String, String)> {
        let (status, body) = self
            .get(
                &format!("/api/conversations/{conversation}/messages"),
                token,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_owned(),
                    m["content"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Opens a chat connection with `Authorization: Bearer` and reads `hello`.
    pub async fn connect(&self, token: &str) -> Ws {
        let (mut ws, response) = ws::connect(&self.ws_url, token).await;
        assert_eq!(response.headers()["sec-websocket-protocol"], "companion.v1");
        ws::hello(&mut ws, Duration::from_secs(10)).await;
        ws
    }

    /// A handshake with these headers; the HTTP error answer when refused.
    pub async fn try_connect(&self, headers: &[(&str, &str)]) -> Result<Ws, (u16, Value)> {
        let mut request = self.ws_url.as_str().into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(http_error(&response))
            }
            Err(e) => panic!("handshake failed oddly: {e}"),
        }
    }
}

fn http_error(response: &Response<Option<Vec<u8>>>) -> (u16, Value) {
    let body = response
        .body()
        .as_ref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

/// The next JSON event (skipping pings), within 10 s.
pub async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event within 10 s")
            .expect("the connection is open")
            .expect("a message");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON event"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
}

pub async fn send(ws: &mut Ws, event: Value) {
    ws.send(Message::text(event.to_string())).await.unwrap();
}

pub fn send_message(request_id: &str, conversation: &str, content: &str) -> Value {
    json!({"type": "send_message", "requestId": request_id, "conversationId": conversation,
           "content": content})
}

/// Events of one request up to and including its last (`typing_stop`, or a lone `error`).
pub async fn reply(ws: &mut Ws) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next_event(ws).await;
        let done =
            event["type"] == "typing_stop" || (event["type"] == "error" && events.is_empty());
        events.push(event);
        if done {
            return events;
        }
    }
}

/// The close frame's code, reading past anything still queued (10 s at most).
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        match next {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}
