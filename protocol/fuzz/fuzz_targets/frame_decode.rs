//! One-shot frame decoding (a WebSocket binary message): never panics, and whatever decodes
//! re-encodes to exactly the input. Viseme frames also go through the viseme payload codec.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protocol::viseme::VisemeFrame;
use protocol::{Frame, FrameType};

fuzz_target!(|data: &[u8]| {
    let from_slice = Frame::decode_slice(data);
    let from_bytes = Frame::decode(&Bytes::copy_from_slice(data));
    assert_eq!(from_slice, from_bytes, "slice and Bytes decoders disagree");

    let Ok(frame) = from_slice else { return };
    assert_eq!(&frame.encode().expect("decoded frame re-encodes")[..], data);

    if frame.frame_type == FrameType::Viseme
        && let Ok(viseme) = VisemeFrame::from_frame(&frame)
    {
        // Weights are already quantised, so the binary form is reproduced byte for byte.
        let again = viseme.to_frame(frame.sequence).expect("decoded viseme re-encodes");
        assert_eq!(again.payload, frame.payload);
    }
    if frame.frame_type == FrameType::Event {
        let _ = protocol::ServerEvent::from_frame(&frame);
        let _ = protocol::ClientEvent::from_frame(&frame);
    }
});
