//! docs/protocol.md cannot drift from the code: every JSON example in it is decoded with the
//! crate, must re-encode to the same JSON (so a misspelt field, which decoders would silently
//! ignore, fails here), and every event type must have an example.

use std::collections::BTreeSet;

use protocol::{ClientEvent, Frame, FrameType, ServerEvent};
use serde_json::Value;

const DOC: &str = include_str!("../../docs/protocol.md");

/// `(info string, body, line number)` of every fenced code block.
fn fenced_blocks(doc: &str) -> Vec<(String, String, usize)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String, usize)> = None;
    for (n, line) in doc.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some((info.trim().to_owned(), String::new(), n + 1));
                }
            }
            Some((_, body, _)) => {
                if trimmed.starts_with("```") {
                    blocks.extend(open.take());
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "unclosed code fence in docs/protocol.md");
    blocks
}

#[test]
fn every_json_example_decodes_and_re_encodes_to_the_same_json() {
    let mut server_types = BTreeSet::new();
    let mut client_types = BTreeSet::new();
    let mut checked = 0;
    for (info, body, line) in fenced_blocks(DOC) {
        let direction = match info.as_str() {
            "json server" => "server",
            "json client" => "client",
            other if other.starts_with("json") => {
                panic!("line {line}: tag JSON examples `json server` or `json client`")
            }
            _ => continue,
        };
        let written: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("line {line}: example is not JSON: {e}"));
        let encoded = if direction == "server" {
            let event = ServerEvent::from_json_str(&body)
                .unwrap_or_else(|e| panic!("line {line}: server example rejected: {e}"));
            server_types.insert(event.type_name());
            event.to_json().unwrap()
        } else {
            let event = ClientEvent::from_json_str(&body)
                .unwrap_or_else(|e| panic!("line {line}: client example rejected: {e}"));
            client_types.insert(event.type_name());
            event.to_json().unwrap()
        };
        let reencoded: Value = serde_json::from_str(&encoded).unwrap();
        assert_eq!(
            written, reencoded,
            "line {line}: the example has fields the crate does not know or lacks ones it sends"
        );
        checked += 1;
    }
    assert!(checked > 30, "only {checked} examples found");

    let missing_server: Vec<_> = ServerEvent::TYPES
        .iter()
        .filter(|t| !server_types.contains(*t))
        .collect();
    let missing_client: Vec<_> = ClientEvent::TYPES
        .iter()
        .filter(|t| !client_types.contains(*t))
        .collect();
    assert!(
        missing_server.is_empty() && missing_client.is_empty(),
        "docs/protocol.md has no example for server events {missing_server:?} / client events {missing_client:?}"
    );
}

#[test]
fn the_hex_frame_example_decodes_to_what_the_text_says() {
    let hex = fenced_blocks(DOC)
        .into_iter()
        .find(|(info, body, _)| info.is_empty() && body.starts_with("43 50"))
        .expect("the binary frame example")
        .1;
    let wire: Vec<u8> = hex
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let frame = Frame::decode_slice(&wire).unwrap();
    assert_eq!(frame.frame_type, FrameType::Audio);
    assert_eq!(frame.sequence, 7);
    assert_eq!(frame.media_time_us, 140_000);
    assert_eq!(&frame.payload[..], &[0xf8, 0xff, 0xfe]);
}

#[test]
fn every_error_code_is_in_the_table() {
    for code in protocol::control::ErrorCode::ALL {
        assert!(
            DOC.contains(&format!("| `{}` |", code.as_str())),
            "error code {} is not documented",
            code.as_str()
        );
    }
}
