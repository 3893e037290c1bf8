//! A gateway served on 127.0.0.1:0 with a test token verifier, as the hosting binary would
//! serve it.

use std::{net::SocketAddr, sync::Arc};

use gateway::{AuthError, CallHandle, Caller, CallerVerifier, Config, Gateway};
use tokio::sync::mpsc;

/// Tokens: `alice-token` (1 call), `bob-token` (2 calls), `banned-token` (forbidden).
pub struct TestVerifier;

impl CallerVerifier for TestVerifier {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let (user, max) = match token {
            "alice-token" => ("alice", 1),
            "bob-token" => ("bob", 2),
            "banned-token" => return Err(AuthError::Forbidden("account suspended".into())),
            _ => return Err(AuthError::Invalid("unknown test token".into())),
        };
        Ok(Caller {
            user_id: user.to_owned(),
            tier: "test".to_owned(),
            max_concurrent_calls: max,
        })
    }
}

pub struct TestServer {
    pub url: String,
    pub gateway: Gateway,
    /// Every call the gateway answers, as the voice session would receive it.
    pub calls: mpsc::UnboundedReceiver<CallHandle>,
}

/// Serves `gateway` (plus `extra` routes) on 127.0.0.1:0 and collects its calls.
pub async fn serve(config: Config, verifier: Option<Arc<dyn CallerVerifier>>) -> TestServer {
    serve_at(
        config,
        verifier,
        "127.0.0.1:0".parse().unwrap(),
        axum::Router::new(),
    )
    .await
}

pub async fn serve_at(
    config: Config,
    verifier: Option<Arc<dyn CallerVerifier>>,
    http: SocketAddr,
    extra: axum::Router,
) -> TestServer {
    let (tx, calls) = mpsc::unbounded_channel();
    let mut gateway = Gateway::new(config).with_call_handler(move |call: CallHandle| {
        let _ = tx.send(call);
    });
    if let Some(v) = verifier {
        gateway = gateway.with_verifier(v);
    }
    gateway.start().await.expect("the media endpoint starts");
    let app = gateway.router().merge(extra);
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .expect("bind HTTP");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    TestServer {
        url,
        gateway,
        calls,
    }
}
