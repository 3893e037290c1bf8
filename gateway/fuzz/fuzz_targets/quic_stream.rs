//! Any bytes a client writes on a QUIC / WebTransport request stream, delivered in chunks of
//! any size: the frame decoder and the stream's decision core must answer every input with a
//! step, never panic, and stop taking input once they have failed the stream.
#![no_main]

use bytes::Bytes;
use gateway::{
    AuthError, Caller, CallerVerifier,
    quic::stream_core::{Step, StreamCore, parse_auth},
};
use libfuzzer_sys::fuzz_target;
use protocol::FrameDecoder;

/// Accepts the token `good`, forbids `banned`, refuses the rest.
struct Tokens;

impl CallerVerifier for Tokens {
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        match token {
            "good" => Ok(Caller {
                user_id: "fuzz".to_owned(),
                tier: "free".to_owned(),
                max_concurrent_calls: 1,
            }),
            "banned" => Err(AuthError::Forbidden("banned".to_owned())),
            _ => Err(AuthError::Invalid("unknown".to_owned())),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The auth parser on its own, on the raw input.
    let _ = parse_auth(data);

    // The first byte picks the chunk size, so splits at every offset get explored.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);
    let mut decoder = FrameDecoder::new();
    let mut core = StreamCore::new();
    for piece in rest.chunks(chunk) {
        decoder.push_bytes(Bytes::copy_from_slice(piece));
        loop {
            let step = match decoder.next_frame() {
                Ok(Some(frame)) => core.on_frame(&frame, &Tokens),
                Ok(None) => break,
                Err(error) => core.on_decode_error(&error),
            };
            if let Step::Fail(failure) = step {
                // A failed stream reads nothing more; the error event must be sendable.
                assert!(
                    protocol::ServerEvent::Error(failure.error)
                        .to_json()
                        .is_ok()
                );
                assert!(!matches!(core.on_peer_finished(), Step::Fail(_)));
                return;
            }
        }
    }
    let _ = core.on_peer_finished();
    let _ = core.on_peer_reset();
    let _ = core.on_start_timeout();
});
