//! Property tests: decoders never panic on arbitrary input, and encode -> decode is the
//! identity for arbitrary valid frames and events.

mod common;

use bytes::{Bytes, BytesMut};
use common::{any_client_event, any_frame, any_server_event};
use proptest::prelude::*;
use protocol::viseme::VisemePayload;
use protocol::{ClientEvent, FRAME_MAGIC, Frame, FrameDecoder, FrameHeader, ServerEvent};

/// Bytes that start like a frame header (right magic and version, any type byte) so the
/// decoder gets past its first checks, or are fully random.
fn frame_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..256)).prop_map(|(ty, rest)| {
            let mut v = FRAME_MAGIC.to_vec();
            v.push(protocol::FRAME_VERSION);
            v.push(ty % 5);
            v.extend(rest);
            v
        }),
    ]
}

/// Split points for feeding a buffer to the stream decoder in chunks.
fn cuts(len: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..=len, 0..12).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

fn chunks(wire: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
        out.push(wire.slice(start..cut));
        start = cut;
    }
    out
}

/// Frames decoded one after another from a complete buffer, and the error that stopped it.
fn one_shot(wire: &Bytes) -> (Vec<Frame>, Option<protocol::ProtocolError>) {
    let mut frames = Vec::new();
    let mut rest = wire.clone();
    loop {
        match Frame::decode_prefix(&rest) {
            Ok(Some((frame, used))) => {
                frames.push(frame);
                rest = rest.slice(used..);
            }
            Ok(None) => return (frames, None),
            Err(error) => return (frames, Some(error)),
        }
    }
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_as_a_frame_never_panics(input in frame_like_bytes()) {
        let slice_result = Frame::decode_slice(&input);
        let bytes = Bytes::from(input.clone());
        prop_assert_eq!(&slice_result, &Frame::decode(&bytes));
        let _ = FrameHeader::parse(&input);
        let _ = Frame::decode_prefix(&bytes);
        let _ = VisemePayload::parse(&input);
        // Whatever decodes, re-encodes to exactly the input.
        if let Ok(frame) = slice_result {
            prop_assert_eq!(&frame.encode().unwrap()[..], &input[..]);
        }
    }

    /// Found by the `frame_stream` fuzz target: the error for a bad stream must not depend
    /// on how the bytes were chunked.
    #[test]
    fn the_stream_decoder_agrees_with_one_shot_decoding_on_arbitrary_bytes(
        input in frame_like_bytes(),
        cut_points in cuts(256),
    ) {
        let wire = Bytes::from(input);
        let (expected, expected_error) = one_shot(&wire);
        let cut_points: Vec<_> = cut_points.into_iter().filter(|&c| c <= wire.len()).collect();
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        let mut got_error = None;
        for chunk in chunks(&wire, &cut_points) {
            decoder.push_bytes(chunk);
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
            if got_error.is_some() {
                break;
            }
        }
        let _ = decoder.finish();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(got_error, expected_error);
    }

    #[test]
    fn decoding_arbitrary_bytes_as_json_events_never_panics(
        input in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "\\{\"type\":\"[a-z_]{0,20}\"(,\"[a-zA-Z]{1,12}\":[0-9a-z\"\\[\\]{}:.,-]{0,30})*\\}"
                .prop_map(String::into_bytes),
        ]
    ) {
        let _ = ServerEvent::from_json(&input);
        let _ = ClientEvent::from_json(&input);
    }

    #[test]
    fn corrupting_a_valid_event_never_panics(
        event in any_server_event(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut json = event.to_json().unwrap().into_bytes();
        let i = at.index(json.len());
        if cut { json.truncate(i) } else { json[i] = byte }
        let _ = ServerEvent::from_json(&json);
        let _ = ClientEvent::from_json(&json);
    }

    #[test]
    fn any_frame_round_trips(frame in any_frame()) {
        let wire = frame.encode().unwrap();
        prop_assert_eq!(wire.len(), frame.encoded_len());
        prop_assert_eq!(&Frame::decode(&wire).unwrap(), &frame);
    }

    #[test]
    fn any_frame_sequence_survives_any_chunking(
        frames in proptest::collection::vec(any_frame(), 0..6),
        cut_points in cuts(4096),
    ) {
        let mut wire = BytesMut::new();
        for frame in &frames {
            frame.encode_into(&mut wire).unwrap();
        }
        let wire = wire.freeze();
        let cut_points: Vec<_> = cut_points.into_iter().filter(|&c| c <= wire.len()).collect();
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        for chunk in chunks(&wire, &cut_points) {
            decoder.push_bytes(chunk);
            while let Some(frame) = decoder.next_frame().unwrap() {
                got.push(frame);
            }
        }
        decoder.finish().unwrap();
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn any_server_event_round_trips(event in any_server_event()) {
        let json = event.to_json().unwrap();
        prop_assert_eq!(&ServerEvent::from_json_str(&json).unwrap(), &event);
        let frame = Frame::decode(&event.to_frame(1).unwrap().encode().unwrap()).unwrap();
        prop_assert_eq!(&ServerEvent::from_frame(&frame).unwrap(), &event);
    }

    #[test]
    fn any_client_event_round_trips(event in any_client_event()) {
        let json = event.to_json().unwrap();
        prop_assert_eq!(&ClientEvent::from_json_str(&json).unwrap(), &event);
        let mut wire = BytesMut::new();
        event.encode_frame_into(1, &mut wire).unwrap();
        let frame = Frame::decode(&wire.freeze()).unwrap();
        prop_assert_eq!(&ClientEvent::from_frame(&frame).unwrap(), &event);
    }
}
