//! Binary frames: the byte layout, zero-copy decoding, typed errors for bad headers, and the
//! streaming decoder fed the way a QUIC stream delivers bytes.

use bytes::{Bytes, BytesMut};
use protocol::viseme::{VisemeFrame, VisemePayload};
use protocol::{
    ClientEvent, FRAME_HEADER_LEN, Frame, FrameDecoder, FrameFlags, FrameType, MAX_FRAME_PAYLOAD,
    ProtocolError, ServerEvent,
};

fn opus_frame(sequence: u32) -> Frame {
    Frame {
        frame_type: FrameType::Audio,
        flags: FrameFlags::DISCONTINUITY,
        sequence,
        media_time_us: u64::from(sequence) * 20_000,
        payload: Bytes::from(vec![0xF8; 60 + sequence as usize % 40]),
    }
}

#[test]
fn the_header_layout_matches_the_reference_table() {
    let frame = Frame {
        frame_type: FrameType::Viseme,
        flags: FrameFlags::END_OF_SEGMENT.with(FrameFlags::DISCONTINUITY),
        sequence: 0x0102_0304,
        media_time_us: 0x0A0B_0C0D_0E0F_1011,
        payload: Bytes::from_static(b"xyz"),
    };
    let wire = frame.encode().unwrap();
    assert_eq!(
        &wire[..],
        &[
            b'C', b'P', 1, 0x02, // magic, version, type
            0x00, 0x03, // flags
            0x01, 0x02, 0x03, 0x04, // sequence
            0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, // media time, µs
            0, 0, 0, 3, // payload length
            b'x', b'y', b'z',
        ]
    );
    assert_eq!(wire.len(), FRAME_HEADER_LEN + 3);
}

#[test]
fn decoding_a_websocket_message_slices_the_payload_without_copying() {
    let wire = opus_frame(5).encode().unwrap();
    let frame = Frame::decode(&wire).unwrap();
    assert_eq!(frame, opus_frame(5));
    assert!(frame.flags.contains(FrameFlags::DISCONTINUITY));
    // The payload points into the received buffer.
    assert_eq!(
        frame.payload.as_ptr(),
        wire[FRAME_HEADER_LEN..].as_ptr(),
        "payload is a slice of the input"
    );
    assert_eq!(Frame::decode_slice(&wire).unwrap(), frame);
}

#[test]
fn frames_encode_into_vec_and_bytes_mut_identically() {
    let mut vec = Vec::new();
    let mut bm = BytesMut::new();
    opus_frame(1).encode_into(&mut vec).unwrap();
    opus_frame(1).encode_into(&mut bm).unwrap();
    assert_eq!(vec, bm.to_vec());
}

#[test]
fn an_oversized_frame_is_refused_from_its_header_alone() {
    // A peer declares a 16 MiB payload: rejected before any payload is buffered.
    let mut header = opus_frame(0).encode().unwrap()[..FRAME_HEADER_LEN].to_vec();
    header[18..22].copy_from_slice(&(16u32 << 20).to_be_bytes());
    let expected = ProtocolError::Oversized {
        what: "frame payload",
        actual: 16 << 20,
        max: MAX_FRAME_PAYLOAD,
    };
    assert_eq!(Frame::decode_slice(&header).unwrap_err(), expected);
    assert_eq!(
        expected.to_string(),
        format!("frame payload is 16777216 bytes, over the {MAX_FRAME_PAYLOAD}-byte limit")
    );

    let mut decoder = FrameDecoder::new();
    decoder.push(&header);
    assert_eq!(decoder.next_frame().unwrap_err(), expected);

    // And we never send one either.
    let big = Frame::audio(0, 0, Bytes::from(vec![0; MAX_FRAME_PAYLOAD + 1]));
    assert!(matches!(
        big.encode(),
        Err(ProtocolError::Oversized { actual, .. }) if actual == MAX_FRAME_PAYLOAD + 1
    ));
    // The exact maximum is fine.
    let max = Frame::audio(0, 0, Bytes::from(vec![0; MAX_FRAME_PAYLOAD]));
    assert_eq!(Frame::decode(&max.encode().unwrap()).unwrap(), max);
}

#[test]
fn bad_headers_get_errors_that_name_what_was_found() {
    let good = opus_frame(1).encode().unwrap().to_vec();

    let mut bad_magic = good.clone();
    bad_magic[..2].copy_from_slice(b"GE");
    let err = Frame::decode_slice(&bad_magic).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::BadMagic {
            offset: 0,
            found: b'G',
            expected: b'C'
        }
    );
    assert_eq!(
        err.to_string(),
        r#"bad frame magic: byte 0 is 0x47, expected 0x43 (frames start with "CP")"#
    );

    let mut newer = good.clone();
    newer[2] = 2;
    assert_eq!(
        Frame::decode_slice(&newer).unwrap_err().to_string(),
        "unsupported frame version 2, this build speaks version 1"
    );

    let mut unknown = good.clone();
    unknown[3] = 0x7F;
    let err = Frame::decode_slice(&unknown).unwrap_err();
    assert_eq!(err, ProtocolError::UnknownFrameType(0x7F));
    assert_eq!(err.to_string(), "unknown frame type 0x7f");

    assert_eq!(
        Frame::decode_slice(&good[..10]).unwrap_err(),
        ProtocolError::Truncated {
            what: "frame header",
            needed: FRAME_HEADER_LEN,
            available: 10
        }
    );
    assert!(matches!(
        Frame::decode_slice(&good[..good.len() - 1]).unwrap_err(),
        ProtocolError::Truncated {
            what: "frame payload",
            ..
        }
    ));
    let mut trailing = good;
    trailing.push(0);
    assert!(matches!(
        Frame::decode_slice(&trailing).unwrap_err(),
        ProtocolError::TrailingBytes { .. }
    ));
    assert!(Frame::decode_slice(&[]).is_err());
}

#[test]
fn unknown_flag_bits_from_a_newer_peer_survive_a_round_trip() {
    let mut frame = opus_frame(2);
    frame.flags = FrameFlags(0x8001);
    let back = Frame::decode(&frame.encode().unwrap()).unwrap();
    assert_eq!(back.flags, FrameFlags(0x8001));
    assert!(back.flags.contains(FrameFlags::END_OF_SEGMENT));
}

/// A QUIC stream carrying a session: the client's start, 50 audio frames (one second of
/// 20 ms Opus), and a hang-up, concatenated.
fn quic_stream() -> (Vec<Frame>, Bytes) {
    let mut frames = vec![common_start().to_frame(0).unwrap()];
    frames.extend((1..=50).map(opus_frame));
    frames.push(ClientEvent::HangUp.to_frame(1).unwrap());
    let mut wire = BytesMut::new();
    for frame in &frames {
        frame.encode_into(&mut wire).unwrap();
    }
    (frames, wire.freeze())
}

fn common_start() -> ClientEvent {
    ClientEvent::from_json_str(
        r#"{"type":"start_session","requestId":"call-1",
            "inputAudio":{"codec":"opus","sampleRate":48000,"channels":1},
            "outputAudio":{"codec":"opus","sampleRate":48000,"channels":1},"visemes":true}"#,
    )
    .unwrap()
}

fn drain(decoder: &mut FrameDecoder, out: &mut Vec<Frame>) {
    while let Some(frame) = decoder.next_frame().unwrap() {
        out.push(frame);
    }
}

#[test]
fn a_quic_stream_delivered_one_byte_at_a_time_yields_every_frame() {
    let (frames, wire) = quic_stream();
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    for i in 0..wire.len() {
        decoder.push_bytes(wire.slice(i..=i));
        drain(&mut decoder, &mut got);
    }
    assert_eq!(got, frames);
    decoder.finish().unwrap();
    assert_eq!(ClientEvent::from_frame(&got[0]).unwrap(), common_start());
    assert_eq!(
        ClientEvent::from_frame(got.last().unwrap()).unwrap(),
        ClientEvent::HangUp
    );
}

#[test]
fn a_quic_stream_in_odd_sized_chunks_yields_every_frame_mostly_zero_copy() {
    let (frames, wire) = quic_stream();
    for chunk_len in [1, 7, 22, 23, 100, 1_200, wire.len()] {
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        let mut sliced = 0;
        for start in (0..wire.len()).step_by(chunk_len) {
            let chunk = wire.slice(start..(start + chunk_len).min(wire.len()));
            let range = chunk.as_ptr_range();
            decoder.push_bytes(chunk);
            let before = got.len();
            drain(&mut decoder, &mut got);
            sliced += got[before..]
                .iter()
                .filter(|f| range.contains(&f.payload.as_ptr()))
                .count();
        }
        assert_eq!(got, frames, "chunks of {chunk_len}");
        assert_eq!(decoder.buffered_len(), 0);
        if chunk_len == wire.len() {
            assert_eq!(sliced, frames.len(), "one chunk: every payload is a slice");
        }
    }
}

#[test]
fn pushing_borrowed_slices_and_chunks_without_draining_keeps_stream_order() {
    let (frames, wire) = quic_stream();
    let mut decoder = FrameDecoder::new();
    decoder.push(&wire[..100]);
    decoder.push_bytes(wire.slice(100..500));
    decoder.push_bytes(wire.slice(500..501));
    decoder.push(&wire[501..]);
    let mut got = Vec::new();
    drain(&mut decoder, &mut got);
    assert_eq!(got, frames);
}

#[test]
fn a_stream_that_goes_bad_stays_failed_and_finish_reports_a_cut_frame() {
    let (_, wire) = quic_stream();
    let mut decoder = FrameDecoder::new();
    decoder.push_bytes(wire.slice(..FRAME_HEADER_LEN + 3));
    assert_eq!(decoder.next_frame().unwrap(), None);
    assert!(matches!(
        decoder.finish(),
        Err(ProtocolError::Truncated {
            what: "frame payload",
            ..
        })
    ));

    let mut decoder = FrameDecoder::new();
    decoder.push(b"GET / HTTP/1.1\r\n");
    let err = decoder.next_frame().unwrap_err();
    assert!(matches!(err, ProtocolError::BadMagic { found: b'G', .. }));
    decoder.push_bytes(wire);
    assert_eq!(
        decoder.next_frame().unwrap_err(),
        err,
        "no resync after an error"
    );
    assert!(decoder.is_failed());
}

#[test]
fn server_events_ride_the_same_stream_as_audio() {
    let hello = ServerEvent::from_json_str(
        r#"{"type":"hello","protocolVersion":1,"connectionId":"c","maxEventBytes":131072,
            "maxFramePayload":131072,"heartbeatIntervalMs":15000}"#,
    )
    .unwrap();
    let mut wire = BytesMut::new();
    hello.encode_frame_into(0, &mut wire).unwrap();
    opus_frame(1).encode_into(&mut wire).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push_bytes(wire.freeze());
    let first = decoder.next_frame().unwrap().unwrap();
    assert_eq!(ServerEvent::from_frame(&first).unwrap(), hello);
    assert_eq!(decoder.next_frame().unwrap().unwrap(), opus_frame(1));
}

#[test]
fn a_viseme_travels_as_a_four_byte_payload_stamped_with_audio_time() {
    let viseme = VisemeFrame {
        media_time_us: 1_240_000,
        viseme_id: 10,
        weights: vec![0.0, 1.0],
    };
    let frame = viseme.to_frame(12).unwrap();
    assert_eq!(frame.frame_type, FrameType::Viseme);
    assert_eq!(frame.media_time_us, 1_240_000);
    assert_eq!(&frame.payload[..], &[10, 2, 0, 255]);
    let back = VisemeFrame::from_frame(&Frame::decode(&frame.encode().unwrap()).unwrap()).unwrap();
    assert_eq!(back, viseme);

    // Weights are quantised to 1/255.
    let half = VisemeFrame {
        weights: vec![0.5],
        ..viseme
    };
    let back = VisemeFrame::from_frame(&half.to_frame(0).unwrap()).unwrap();
    assert!((back.weights[0] - 0.5).abs() <= 0.5 / 255.0 + f32::EPSILON);

    assert!(matches!(
        VisemePayload::parse(&[99, 0]),
        Err(ProtocolError::InvalidField {
            field: "visemeId",
            ..
        })
    ));
    assert!(matches!(
        VisemePayload::parse(&[1, 3, 0]),
        Err(ProtocolError::Truncated { .. })
    ));
    assert!(matches!(
        VisemePayload::parse(&[1]),
        Err(ProtocolError::Truncated { .. })
    ));
    assert!(matches!(
        VisemeFrame::from_frame(&opus_frame(1)),
        Err(ProtocolError::UnexpectedFrameType { .. })
    ));
    let view = VisemePayload::parse(&[4, 1, 51]).unwrap();
    let mut out = BytesMut::new();
    view.encode_into(&mut out).unwrap();
    assert_eq!(&out[..], &[4, 1, 51]);
    assert_eq!(view.weights().collect::<Vec<_>>(), vec![0.2]);
}

#[test]
fn a_bad_stream_gets_the_same_error_however_its_bytes_were_chunked() {
    // Regression from the frame_stream fuzz target: the error used to quote both magic bytes,
    // so a stream whose first chunk held one byte reported a different error.
    let one_shot = Frame::decode_slice(b"13").unwrap_err();
    let mut decoder = FrameDecoder::new();
    decoder.push(b"1");
    let streamed = decoder.next_frame().unwrap_err();
    assert_eq!(streamed, one_shot);
}
