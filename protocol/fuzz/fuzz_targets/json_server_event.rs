//! Server-event JSON decoding: never panics, and whatever decodes survives
//! encode -> decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ServerEvent;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = ServerEvent::from_json(data) else { return };
    let json = event.to_json().expect("a decoded event re-encodes");
    let again = ServerEvent::from_json_str(&json).expect("a re-encoded event decodes");
    assert_eq!(again, event, "round trip changed {json}");
});
