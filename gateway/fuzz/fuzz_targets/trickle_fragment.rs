//! Any bytes PATCHed as a trickle-ICE fragment: parsing and adding the candidates to a live
//! call must return an error or succeed, never panic.
#![no_main]

use std::{
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use gateway::{CallId, CallRegistry, RegistrySettings};
use libfuzzer_sys::fuzz_target;

/// A Chromium offer, so the call under test looks like a real one.
const OFFER: &str = include_str!("../../testdata/chromium-156-offer.sdp");

fn call() -> &'static Mutex<(CallRegistry, CallId)> {
    static CALL: OnceLock<Mutex<(CallRegistry, CallId)>> = OnceLock::new();
    CALL.get_or_init(|| {
        let settings = RegistrySettings {
            max_calls: 16,
            connect_timeout: Duration::from_secs(3600),
            disconnect_timeout: Duration::from_secs(10),
            max_event_bytes: 16 * 1024,
        };
        let mut registry = CallRegistry::new(settings, vec!["10.99.0.1:3478".parse().unwrap()]);
        let created = registry
            .create_call(Instant::now(), "fuzz", 1, OFFER)
            .expect("the Chromium offer is answered");
        Mutex::new((registry, created.id))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(frag) = gateway::parse_fragment(text) else {
        return;
    };
    let mut guard = call().lock().unwrap_or_else(|e| e.into_inner());
    let (registry, id) = &mut *guard;
    let _ = registry.add_candidates(Instant::now(), *id, "fuzz", &frag);
    while registry.poll_output().is_some() {}
});
