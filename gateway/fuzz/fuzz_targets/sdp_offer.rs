//! Any bytes POSTed as an SDP offer: the check and the full answer path (str0m's parser and
//! negotiation) must return an error, never panic.
#![no_main]

use std::{
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use gateway::{CallRegistry, RegistrySettings};
use libfuzzer_sys::fuzz_target;

fn registry() -> &'static Mutex<CallRegistry> {
    static REGISTRY: OnceLock<Mutex<CallRegistry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let settings = RegistrySettings {
            max_calls: usize::MAX,
            connect_timeout: Duration::from_secs(15),
            disconnect_timeout: Duration::from_secs(10),
            max_event_bytes: 16 * 1024,
        };
        Mutex::new(CallRegistry::new(settings, vec!["10.99.0.1:3478".parse().unwrap()]))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if gateway::check_offer(text).is_err() {
        return;
    }
    let mut registry = registry().lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if let Ok(created) = registry.create_call(now, "fuzz", u32::MAX, text) {
        let _ = registry.hang_up(now, created.id, None, gateway::CloseReason::ServerHungUp);
    }
    while registry.poll_output().is_some() {}
});
