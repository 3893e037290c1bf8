//! Client-event JSON decoding: never panics, and whatever decodes survives
//! encode -> decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ClientEvent;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = ClientEvent::from_json(data) else { return };
    let json = event.to_json().expect("a decoded event re-encodes");
    let again = ClientEvent::from_json_str(&json).expect("a re-encoded event decodes");
    assert_eq!(again, event, "round trip changed {json}");
});
