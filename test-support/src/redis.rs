//! A `redis-server` of a test's own, on a free port, for tests that make Redis stall, die and
//! come back (the shared Redis on 6379 must never be stopped).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// `/usr/bin/redis-server` on a free loopback port, without persistence; killed on drop.
#[derive(Debug)]
pub struct OwnRedis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts it and waits (up to 5 s) until it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    /// Starts it (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new("/usr/bin/redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "redis did not start"
            );
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (as `kill` spells it, e.g. `-STOP`, `-CONT`) to the running server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Kills the server and reaps it (no-op when it is not running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped process must be continued before it can die of SIGKILL cleanly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}
