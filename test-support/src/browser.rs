//! The browser tests' set-up: headless Debian Chromium driven by a node script
//! (playwright-core), and for WebRTC a network namespace of the test's own.
//!
//! Chromium never gathers loopback candidates, so a WebRTC browser test re-runs itself
//! ([`rerun_in_namespace`]) inside a network namespace it creates (`unshare --net
//! --map-root-user`), where [`set_up_namespace_links`] makes a veth pair at 10.99.0.1 and .2:
//! browser and gateway talk over that address and no packet can leave the machine. Needs
//! root (or unprivileged user namespaces), `chromium`, `node`, `ip`, `unshare` and `npm ci` in
//! the test's script folder (`scripts/bootstrap --test` installs all of them).

// The namespace run's measurements go to the test log on purpose.
#![allow(clippy::print_stdout)]

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Fails the test, saying how to install it, unless Chromium is at `/usr/bin/chromium` and
/// playwright-core is installed in `js_dir` (`test` names the test in the message, e.g. "the
/// browser test").
pub fn require_chromium(test: &str, js_dir: &Path) {
    let npm = format!("npm ci in {}", js_dir.display());
    for (what, ok, fix) in [
        (
            "chromium",
            Path::new("/usr/bin/chromium").exists(),
            "apt-get install chromium",
        ),
        (
            "playwright-core",
            js_dir.join("node_modules/playwright-core").exists(),
            npm.as_str(),
        ),
    ] {
        assert!(
            ok,
            "{test} needs {what}: run scripts/bootstrap --test ({fix})"
        );
    }
}

/// Whether this process is the re-run inside the namespace (`flag` is set in its
/// environment): the inner test returns at once anywhere else.
pub fn in_namespace(flag: &str) -> bool {
    std::env::var_os(flag).is_some()
}

/// Re-runs `inner` (an ignored test of this test binary) inside a fresh network namespace
/// with `flag` set, and asserts it passed. Log lines of the run containing `log_tag` (for
/// example `browser-call:`) are passed through, then the whole run's time.
pub fn rerun_in_namespace(inner: &str, flag: &str, log_tag: &str) {
    let started = Instant::now();
    let out = Command::new("unshare")
        .args(["--net", "--map-root-user", "--"])
        .arg(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            inner,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(flag, "1")
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{inner} inside the namespace failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in stdout.lines() {
        if let Some(at) = line.find(log_tag) {
            println!("{}", &line[at..]);
        }
    }
    println!("{log_tag} whole test {:?}", started.elapsed());
}

/// Inside the namespace: loopback up and a veth pair at 10.99.0.1/.2 with a default route, so
/// Chromium gathers a host candidate the gateway can reach and nothing leaves the namespace.
pub fn set_up_namespace_links() {
    for args in [
        &["link", "set", "lo", "up"][..],
        // A veth pair (dummy links need a kernel module containers often lack).
        &["link", "add", "gw0", "type", "veth", "peer", "name", "gw1"],
        &["addr", "add", "10.99.0.1/24", "dev", "gw0"],
        &["addr", "add", "10.99.0.2/24", "dev", "gw1"],
        &["link", "set", "gw0", "up"],
        &["link", "set", "gw1", "up"],
        // Chromium looks for a default route to pick its addresses; this one leads nowhere.
        &["route", "add", "default", "dev", "gw0"],
    ] {
        let status = Command::new("ip")
            .args(args)
            .status()
            .expect("run ip (iproute2)");
        assert!(status.success(), "ip {args:?} failed");
    }
}

/// Runs a node driver script to completion within `limit` (killed if dropped) and returns
/// the JSON report it prints on stdout and its stderr (the page's console). Fails the test
/// if node fails or the report does not parse.
pub async fn node_report(node: &mut tokio::process::Command, limit: Duration) -> (Value, String) {
    let out = tokio::time::timeout(limit, node.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("the browser finishes within {limit:?}"))
        .expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "node failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad report ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (report, stderr)
}
