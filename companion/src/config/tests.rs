use std::io::Write;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file(text: &str) -> tempfile_path::TempFile {
    tempfile_path::TempFile::with(text)
}

/// A config file in the system temp folder, removed when dropped.
mod tempfile_path {
    use std::path::{Path, PathBuf};

    pub(super) struct TempFile(PathBuf);

    impl TempFile {
        pub(super) fn with(text: &str) -> Self {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("companion-{}-{n}.toml", std::process::id()));
            let mut f = std::fs::File::create(&path).expect("create temp config");
            super::Write::write_all(&mut f, text.as_bytes()).expect("write temp config");
            Self(path)
        }

        pub(super) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn no_file_and_no_env_gives_the_embedded_defaults() {
    let config = Config::load(None, env(&[])).expect("defaults are valid");
    assert_eq!(config, Config::default());
    assert_eq!(config.server.mode, Mode::All);
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert!(config.control_plane.database_url.starts_with("sqlite:"));
}

#[test]
fn a_file_sets_keys_and_leaves_the_rest_at_defaults() {
    let f = file("[server]\nlisten = \"0.0.0.0:9000\"\n\n[log]\nformat = \"json\"\n");
    let config = Config::load(Some(f.path()), env(&[])).expect("valid file");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.server.shutdown_grace_secs, 10);
}

#[test]
fn environment_overrides_the_file_and_is_typed_by_the_key() {
    let f = file("[server]\nshutdown_grace_secs = 3\n");
    let config = Config::load(
        Some(f.path()),
        env(&[
            ("COMPANION__SERVER__SHUTDOWN_GRACE_SECS", "7"),
            ("COMPANION__SERVER__MODE", "control-plane"),
            // A string key given digits stays a string.
            ("COMPANION__LOG__FILTER", "123"),
            ("UNRELATED", "x"),
        ]),
    )
    .expect("valid overrides");
    assert_eq!(config.server.shutdown_grace_secs, 7);
    assert_eq!(config.server.mode, Mode::ControlPlane);
    assert_eq!(config.log.filter, "123");
}

#[test]
fn a_bad_value_names_the_key_the_source_and_the_expected_form() {
    let err = Config::load(
        None,
        env(&[("COMPANION__SERVER__LISTEN", "not-an-address")]),
    )
    .expect_err("bad address");
    let msg = err.to_string();
    assert!(msg.contains("server.listen"), "{msg}");
    assert!(msg.contains("COMPANION__SERVER__LISTEN"), "{msg}");
    assert!(msg.contains("socket address"), "{msg}");

    let f = file("[server]\nshutdown_grace_secs = \"ten\"\n");
    let msg = Config::load(Some(f.path()), env(&[]))
        .expect_err("string for number")
        .to_string();
    assert!(msg.contains("server.shutdown_grace_secs"), "{msg}");
    assert!(msg.contains(&f.path().display().to_string()), "{msg}");
    assert!(msg.contains("u64"), "{msg}");
}

#[test]
fn an_unknown_key_in_the_file_is_named() {
    let f = file("[server]\nlisen = \"127.0.0.1:1\"\n");
    let msg = Config::load(Some(f.path()), env(&[]))
        .expect_err("typo")
        .to_string();
    assert!(msg.contains("server"), "{msg}");
    assert!(msg.contains("unknown field `lisen`"), "{msg}");
}

#[test]
fn an_unknown_environment_key_is_named() {
    let msg = Config::load(None, env(&[("COMPANION__SERVER__PORT", "80")]))
        .expect_err("no such key")
        .to_string();
    assert!(msg.contains("unknown field `port`"), "{msg}");
    assert!(msg.contains("COMPANION__SERVER__PORT"), "{msg}");
}

#[test]
fn an_unknown_mode_lists_the_modes() {
    let msg = Config::load(None, env(&[("COMPANION__SERVER__MODE", "both")]))
        .expect_err("bad mode")
        .to_string();
    assert!(
        msg.contains("server.mode") && msg.contains("control-plane"),
        "{msg}"
    );
}

#[test]
fn semantic_checks_name_the_key() {
    let cases = [
        (
            "COMPANION__SERVER__PUBLIC_URL",
            "ftp://x",
            "server.public_url",
        ),
        (
            "COMPANION__SERVER__SHUTDOWN_GRACE_SECS",
            "100000",
            "server.shutdown_grace_secs",
        ),
        (
            "COMPANION__CONTROL_PLANE__DATABASE_URL",
            "mysql://x",
            "control_plane.database_url",
        ),
        (
            "COMPANION__GATEWAY__CONTROL_PLANE_URL",
            "control:80",
            "gateway.control_plane_url",
        ),
    ];
    for (var, value, key) in cases {
        let msg = Config::load(None, env(&[(var, value)]))
            .expect_err(var)
            .to_string();
        assert!(
            msg.contains(key) && msg.contains(var) && msg.contains("expected"),
            "{msg}"
        );
    }
}

#[test]
fn a_gateway_only_node_must_know_its_control_plane() {
    let msg = Config::load(None, env(&[("COMPANION__SERVER__MODE", "gateway")]))
        .expect_err("gateway without control plane")
        .to_string();
    assert!(msg.contains("gateway.control_plane_url"), "{msg}");
}

#[test]
fn a_file_that_is_not_toml_says_where() {
    let f = file("[server\nlisten = 1");
    let err = Config::load(Some(f.path()), env(&[])).expect_err("syntax");
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn an_optional_key_without_a_default_can_be_set_from_the_environment() {
    let config = Config::load(
        None,
        env(&[("COMPANION__GATEWAY__PUBLIC_IP", "203.0.113.7")]),
    )
    .expect("valid address");
    assert_eq!(config.gateway.public_ip, Some([203, 0, 113, 7].into()));
}

#[test]
fn every_key_is_documented() {
    let doc = include_str!("../../../docs/config.md");
    let defaults = toml::Value::try_from(Config::default()).expect("serialize");
    let mut missing = Vec::new();
    for (section, table) in defaults.as_table().expect("table") {
        for key in table.as_table().expect("section").keys() {
            if !doc.contains(&format!("`{section}.{key}`")) {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/config.md lacks {missing:?}");
}

#[test]
fn metrics_listen_and_ops_token_are_read_and_checked() {
    let config = Config::load(
        None,
        env(&[("COMPANION__SERVER__METRICS_LISTEN", "127.0.0.1:9100")]),
    )
    .expect("valid address");
    assert_eq!(
        config.server.metrics_listen,
        Some(([127, 0, 0, 1], 9100).into())
    );
    let err = Config::load(None, env(&[("COMPANION__SERVER__OPS_TOKEN", "short")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.ops_token"), "{err}");
    let err = Config::load(
        None,
        env(&[("COMPANION__SERVER__METRICS_LISTEN", "127.0.0.1:8080")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.metrics_listen"), "{err}");
}
