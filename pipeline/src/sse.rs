//! A sans-IO Server-Sent Events parser (the WHATWG `text/event-stream` rules).
//!
//! Feed it bytes exactly as they arrive from the socket; chunk boundaries may fall anywhere,
//! even between the `\r` and `\n` of a line ending. Pull complete events with
//! [`SseParser::next_event`].

use std::collections::VecDeque;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty when the stream did not name one (the spec's "message").
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` field seen, if any.
    pub id: Option<String>,
}

/// The stream sent a line or event longer than the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server-sent event larger than {limit} bytes")]
pub struct SseOverflow {
    /// The limit that was exceeded.
    pub limit: usize,
}

/// Default upper bound on one line or one event's data: generous for any real provider,
/// small enough that a broken server cannot grow memory without bound.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// Incremental SSE parser.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to it.
    skip_lf: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    ready: VecDeque<SseEvent>,
    max_bytes: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with the default size limit.
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser that rejects lines or events over `max_bytes`.
    pub fn with_limit(max_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            skip_lf: false,
            started: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            last_id: None,
            ready: VecDeque::new(),
            max_bytes,
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), SseOverflow> {
        while !bytes.is_empty() {
            if self.skip_lf {
                self.skip_lf = false;
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.append_line(&bytes[..end])?;
                    self.skip_lf = bytes[end] == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line)?;
                    self.line = line;
                    self.line.clear();
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.append_line(bytes)?;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    /// The next complete event, if one is ready.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    /// Whether bytes of an unfinished event are buffered (the stream ended mid-event if so).
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn append_line(&mut self, bytes: &[u8]) -> Result<(), SseOverflow> {
        if self.line.len() + bytes.len() > self.max_bytes {
            return Err(SseOverflow {
                limit: self.max_bytes,
            });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, raw: &[u8]) -> Result<(), SseOverflow> {
        let mut raw = raw;
        if !self.started {
            // A UTF-8 byte order mark may open the stream; it is not part of the first field.
            self.started = true;
            if let Some(rest) = raw.strip_prefix(b"\xEF\xBB\xBF") {
                raw = rest;
            }
        }
        if raw.is_empty() {
            self.dispatch();
            return Ok(());
        }
        if raw[0] == b':' {
            return Ok(()); // comment (keep-alive)
        }
        let line = String::from_utf8_lossy(raw);
        let (field, value) = match line.find(':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&*line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_bytes {
                    return Err(SseOverflow {
                        limit: self.max_bytes,
                    });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {} // `retry` and unknown fields are ignored
        }
        Ok(())
    }

    fn dispatch(&mut self) {
        if self.has_data {
            self.ready.push_back(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
                id: self.last_id.clone(),
            });
        } else {
            self.event.clear();
        }
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk).unwrap();
            while let Some(event) = parser.next_event() {
                out.push(event);
            }
        }
        out
    }

    const ANTHROPIC_LIKE: &str = ": hello\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\nevent: ping\ndata: {}\n\n\
        data: line one\ndata: line two\n\ndata:no-space\rid: 7\r\r:comment only\n\nevent: empty\n\n";

    #[test]
    fn parses_fields_comments_multiline_data_and_all_line_endings() {
        let events = parse_all(&[ANTHROPIC_LIKE.as_bytes()]);
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].event, "message_start");
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].event, "ping");
        assert_eq!(events[2].data, "line one\nline two");
        assert_eq!(events[2].event, "");
        assert_eq!(events[3].data, "no-space");
        assert_eq!(events[3].id.as_deref(), Some("7"));
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_ending() {
        let events = parse_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]);
        assert_eq!(
            events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn openai_done_marker_arrives_as_plain_data() {
        let events = parse_all(&[b"data: {\"x\":1}\n\ndata: [DONE]\n\n"]);
        assert_eq!(events[1].data, "[DONE]");
    }

    #[test]
    fn an_oversized_event_is_an_error_not_unbounded_memory() {
        let mut parser = SseParser::with_limit(16);
        assert!(parser.feed(b"data: 0123456789abcdefghij").is_err());
    }

    #[test]
    fn a_stream_that_ends_mid_event_is_visible() {
        let mut parser = SseParser::new();
        parser.feed(b"data: half").unwrap();
        assert!(parser.next_event().is_none());
        assert!(parser.has_partial());
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(cuts in proptest::collection::vec(0usize..200, 0..20)) {
            let bytes = ANTHROPIC_LIKE.as_bytes();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&bytes[last..p]);
                last = p;
            }
            chunks.push(&bytes[last..]);
            prop_assert_eq!(parse_all(&chunks), parse_all(&[bytes]));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), split in 0usize..512) {
            let split = split.min(data.len());
            let _ = parse_all(&[&data[..split], &data[split..]]);
        }
    }
}
