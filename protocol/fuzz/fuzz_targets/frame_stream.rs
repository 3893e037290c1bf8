//! The streaming decoder fed arbitrary bytes in arbitrary chunks must agree with decoding the
//! whole buffer frame by frame: same frames, same error, never a panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protocol::{Frame, FrameDecoder, ProtocolError};

fuzz_target!(|data: &[u8]| {
    // First byte chooses chunk sizes; the rest is the stream.
    let Some((&seed, stream)) = data.split_first() else { return };
    let wire = Bytes::copy_from_slice(stream);

    // Oracle: frame after frame from the complete buffer.
    let mut expected: Vec<Frame> = Vec::new();
    let mut expected_error: Option<ProtocolError> = None;
    let mut rest = wire.clone();
    loop {
        match Frame::decode_prefix(&rest) {
            Ok(Some((frame, used))) => {
                expected.push(frame);
                rest = rest.slice(used..);
            }
            Ok(None) => break,
            Err(error) => {
                expected_error = Some(error);
                break;
            }
        }
    }

    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    let mut got_error = None;
    let mut start = 0;
    let mut step = usize::from(seed % 31) + 1;
    while start < wire.len() && got_error.is_none() {
        let end = (start + step).min(wire.len());
        // Alternate between the zero-copy and the borrowed push.
        if step % 2 == 0 {
            decoder.push_bytes(wire.slice(start..end));
        } else {
            decoder.push(&wire[start..end]);
        }
        start = end;
        step = (step * 7 + usize::from(seed)) % 97 + 1;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => break,
                Err(error) => {
                    got_error = Some(error);
                    break;
                }
            }
        }
    }

    assert_eq!(got, expected, "streaming and one-shot decoding disagree");
    assert_eq!(got_error, expected_error);
    if expected_error.is_none() {
        assert_eq!(decoder.finish().is_ok(), rest.is_empty());
    }
});
