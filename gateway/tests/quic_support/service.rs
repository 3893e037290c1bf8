//! The real chat path in process: a control plane on SQLite, the mock LLM behind the failover
//! chain, and a gateway that reaches the control plane over HTTP and serves QUIC with its own
//! chat service (`Gateway::start_quic`).

use std::net::SocketAddr;

use control_plane::ControlPlane;
use gateway::{Gateway, JwksVerifier, quic::QuicEndpoint};
use pipeline::mock::{MockConfig, MockServer};
use serde_json::{Value, json};

use test_support::{
    control_plane::{Backend, Storage, serve, service_token},
    providers,
};

pub struct Service {
    pub cp: ControlPlane,
    pub cp_url: String,
    /// The gateway's HTTP address (page, cert-hash route).
    pub http: SocketAddr,
    pub quic: QuicEndpoint,
    pub gateway: Gateway,
    pub mock: MockServer,
    client: reqwest::Client,
}

impl Service {
    /// Starts everything; `extra` routes are served by the gateway's HTTP listener too.
    pub async fn start(mock: MockConfig, extra: axum::Router) -> Self {
        let config = Storage::fresh(Backend::Sqlite).await.config();
        let cp = ControlPlane::start(config)
            .await
            .expect("control plane starts");
        let cp_url = format!("http://{}", serve(cp.router()).await);

        let mock = MockServer::start(mock).await.expect("mock LLM");
        let providers = providers::chat_providers(&mock);
        let verifier = JwksVerifier::new(Default::default());
        verifier.install(cp.verifier().await.expect("keys"));
        let config = gateway::Config {
            control_plane_url: cp_url.clone(),
            control_plane_service_token: service_token(),
            ..gateway::Config::default()
        };
        let gateway = Gateway::new(config)
            .with_verifier(verifier)
            .with_providers(providers);
        let quic = gateway
            .start_quic()
            .await
            .expect("QUIC starts")
            .expect("QUIC is on by default");
        let http = serve(gateway.router().merge(extra)).await;
        Self {
            cp,
            cp_url,
            http,
            quic,
            gateway,
            mock,
            client: reqwest::Client::new(),
        }
    }

    /// A new account's access token.
    pub async fn user(&self, email: &str) -> String {
        self.cp.dev_token(email).await.expect("dev token")
    }

    /// A new conversation of the token's account.
    pub async fn conversation(&self, token: &str) -> String {
        let response = self
            .client
            .post(format!("{}/api/conversations", self.cp_url))
            .bearer_auth(token)
            .json(&json!({"title": "quic"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// The stored messages of a conversation as `(role, content)`.
    pub async fn messages(&self, token: &str, conversation: &str) -> Vec<(String, String)> {
        let url = format!("{}/api/conversations/{conversation}/messages", self.cp_url);
        let response = self
            .client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let field = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                (field("role"), field("content"))
            })
            .collect()
    }
}
