//! The service as an OpenAI client meets it: a control-plane node and a gateway node, both
//! the real `companion::run` in this process (SQLite, in-process limits), with every provider
//! pointed at the in-tree mock server. Two nodes rather than `mode = all`, so the gateway
//! reaches the control plane's quota API over HTTP at a URL known before it starts.
#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use companion::{Config, Mode};
use pipeline::mock::{MockConfig, MockServer};
use serde_json::{Value, json};
use test_support::process::in_process;
use tokio::sync::oneshot;

/// What a test changes from the defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Limit `/api/quota` (the gateway's reserve and settle calls) to this many requests an
    /// hour per user, to reach the rate limit quickly.
    pub(crate) quota_requests_per_hour: Option<u64>,
    /// `gateway.openai.max_audio_bytes`.
    pub(crate) max_audio_bytes: Option<usize>,
    /// Recognise speech with the offline PocketSphinx engine instead of the mock.
    pub(crate) local_stt: bool,
    /// Mock timing.
    pub(crate) mock: Option<MockConfig>,
    /// `gateway.openai.chat_requests_per_window`.
    pub(crate) chat_requests_per_window: Option<u32>,
}

/// Both nodes and the mock providers; dropping it stops them.
pub(crate) struct Stack {
    /// `http://127.0.0.1:PORT` of the gateway (OpenAI base URL is this + `/v1`).
    pub(crate) gateway: String,
    /// `http://127.0.0.1:PORT` of the control plane.
    pub(crate) control_plane: String,
    /// The data plane's credential the control plane accepts (what the gateway sends).
    pub(crate) service_token: String,
    pub(crate) mock: MockServer,
    pub(crate) http: reqwest::Client,
    stops: Vec<oneshot::Sender<()>>,
}

fn scratch_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("companion-openai-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

async fn serve(config: Config) -> (String, oneshot::Sender<()>) {
    in_process(|on_url, shutdown| companion::run(config, on_url, shutdown)).await
}

impl Stack {
    pub(crate) async fn start(options: Options) -> Self {
        let mock = MockServer::start(options.mock.clone().unwrap_or_default())
            .await
            .expect("mock providers");
        let dir = scratch_dir();
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();

        let mut cp = Config::default();
        cp.server.mode = Mode::ControlPlane;
        cp.server.listen = listen;
        cp.server.shutdown_grace_secs = 1;
        cp.control_plane.database_url = format!(
            "sqlite://{}?mode=rwc",
            dir.join("control-plane.sqlite").display()
        );
        // Verification mail from sign-ups goes to the scratch folder, not the crate's ./data.
        cp.control_plane.email.outbox_dir = dir.join("outbox").display().to_string();
        if let Some(limit) = options.quota_requests_per_hour {
            cp.control_plane.rate_limits.insert(
                0,
                control_plane::RateLimitRule {
                    name: "quota".to_owned(),
                    prefix: "/api/quota".to_owned(),
                    limit,
                    window_secs: 3600,
                },
            );
        }
        let service_token = control_plane::new_service_token();
        cp.control_plane.service_tokens = vec![service_token.clone()];
        let (control_plane, cp_stop) = serve(cp).await;

        let mut gw = Config::default();
        gw.server.mode = Mode::Gateway;
        gw.server.listen = listen;
        gw.server.shutdown_grace_secs = 1;
        gw.gateway.control_plane_url = control_plane.clone();
        gw.gateway.control_plane_service_token = service_token.clone();
        if let Some(max) = options.max_audio_bytes {
            gw.gateway.openai.max_audio_bytes = max;
        }
        if let Some(limit) = options.chat_requests_per_window {
            gw.gateway.openai.chat_requests_per_window = limit;
        }
        gw.media =
            media::RuntimePaths::from_env_or(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
        let mut pipeline = mock.pipeline_config();
        pipeline.stt.order = vec![if options.local_stt { "local" } else { "openai" }.to_owned()];
        pipeline.tts.order = vec!["openai".to_owned()];
        gw.pipeline = pipeline;
        let (gateway, gw_stop) = serve(gw).await;

        Self {
            gateway,
            control_plane,
            service_token: service_token.expose().to_owned(),
            mock,
            http: reqwest::Client::new(),
            stops: vec![gw_stop, cp_stop],
        }
    }

    /// Signs up a new free-tier account and returns its access token.
    pub(crate) async fn signup(&self, name: &str) -> String {
        let response = self
            .http
            .post(format!("{}/api/auth/signup", self.control_plane))
            .json(&json!({
                "email": format!("{name}@example.com"), "password": "correct horse battery",
                "birth_year": 1990, "consent_terms": true
            }))
            .send()
            .await
            .expect("POST /api/auth/signup");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("JSON body");
        body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// Today's `(used, reserved)` of a quota kind (`messages`, `voice_seconds`).
    /// Reserves `amount` of the caller's `kind` directly at the control plane, as a gateway
    /// would (with its service credential), so the day's quota is spent.
    pub(crate) async fn spend(&self, token: &str, kind: &str, amount: u64) {
        let spent = self
            .http
            .post(format!("{}/api/quota/reserve", self.control_plane))
            .bearer_auth(token)
            .header(control_plane::SERVICE_TOKEN_HEADER, &self.service_token)
            .json(&json!({"reservations": [{"key": "all-of-it", "kind": kind, "amount": amount}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(spent.status(), 200);
    }

    pub(crate) async fn usage(&self, token: &str, kind: &str) -> (u64, u64) {
        let body: Value = self
            .http
            .get(format!("{}/api/usage", self.control_plane))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /api/usage")
            .json()
            .await
            .expect("usage JSON");
        let quota = body["quotas"]
            .as_array()
            .expect("quotas")
            .iter()
            .find(|q| q["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {body}"));
        (
            quota["used"].as_u64().unwrap(),
            quota["reserved"].as_u64().unwrap(),
        )
    }

    /// Waits (up to 10 s) until nothing of `kind` is reserved any more, and returns what is
    /// used: settlements after a client disconnect run in the background.
    pub(crate) async fn settled_usage(&self, token: &str, kind: &str) -> u64 {
        for _ in 0..200 {
            let (used, reserved) = self.usage(token, kind).await;
            if reserved == 0 {
                return used;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{kind} reservation never settled");
    }

    /// `POST /v1/<path>` with a JSON body.
    pub(crate) async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/{path}", self.gateway))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// Asserts an OpenAI-shaped error and returns its `error` object.
pub(crate) async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: Value = response.json().await.expect("JSON error body");
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["type"].is_string(), "{body}");
    assert!(
        error.get("param").is_some(),
        "param is always present: {body}"
    );
    error
}

/// A test recording (16-bit mono WAV, 48 kHz): "Hello! What is the weather like today?"
pub(crate) const HELLO_WAV: &[u8] = include_bytes!("../../../media/testdata/hello.48k.wav");
