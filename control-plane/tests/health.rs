//! Readiness names each dependency and says what is wrong with it.

mod common;

use common::{Backend, Server, Storage};
use control_plane::{Config, StripeConfig};
use test_support::both_engines;

async fn readiness_reports_each_dependency(backend: Backend) {
    let server = Server::start(backend).await;
    let checks = server.cp.readiness().await;
    let names: Vec<&str> = checks.iter().map(|(n, _)| *n).collect();
    if backend == Backend::Postgres {
        assert_eq!(names, ["database", "redis", "stripe"]);
    } else {
        assert_eq!(names, ["database", "stripe"]);
    }
    assert!(checks.iter().all(|(_, r)| r.is_ok()), "{checks:?}");

    // Billing switched on without a key, and an LLM endpoint that is down.
    let storage = Storage::fresh(backend).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/v1/models", dead.local_addr().unwrap());
    drop(dead);
    let config = Config {
        stripe: StripeConfig {
            secret_key: Default::default(),
            disabled: false,
            ..StripeConfig::default()
        },
        llm_url: dead_url,
        ..storage.config()
    };
    let server = Server::with_config(config).await;
    let checks = server.cp.readiness().await;
    let get = |name: &str| {
        checks
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    assert!(get("database").is_ok());
    assert!(get("stripe").unwrap_err().contains("secret_key"));
    assert!(get("llm_provider").is_err());

    // With a reachable LLM endpoint (any HTTP answer) and a key, everything is ready.
    let config = Config {
        stripe: StripeConfig {
            secret_key: protocol::Secret::new("sk_test_123"),
            disabled: false,
            // Billing on probes Stripe; any HTTP answer counts, so this server stands in.
            api_base: server.base.clone(),
            ..StripeConfig::default()
        },
        llm_url: format!("{}/openapi.json", server.base),
        ..storage.config()
    };
    let ready = Server::with_config(config).await;
    assert!(ready.cp.readiness().await.iter().all(|(_, r)| r.is_ok()));
}
both_engines!(readiness, readiness_reports_each_dependency);

#[tokio::test]
async fn a_bad_database_url_stops_start_up_with_the_reason() {
    let config = Config {
        database_url: "postgres://nobody:secret@127.0.0.1:1/none".to_owned(),
        database_connect_timeout_secs: 1,
        ..Config::default()
    };
    let err = control_plane::ControlPlane::start(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("127.0.0.1:1") && !err.contains("secret"),
        "{err}"
    );
    let config = Config {
        access_token_ttl_secs: 0,
        ..Config::default()
    };
    let err = control_plane::ControlPlane::start(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("access_token_ttl_secs"), "{err}");
}
