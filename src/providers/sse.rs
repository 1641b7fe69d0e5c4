//! Incremental parsers for the two stream framings upstreams use: server-sent events and
//! newline-delimited JSON.
//!
//! Both take bytes as they come off the wire, in pieces of any size (a TCP read may end inside
//! a UTF-8 character or hold several events), and hand out whole events. Lines end in `\n`,
//! `\r\n` or `\r`; SSE comment lines (`: keep-alive`) are dropped; multi-line `data:` is joined
//! with `\n`. Gemini also writes bare JSON error objects, line by line, into an SSE stream;
//! [`Framing::SseOrRawJson`] hands each of them out as one event named [`RAW_JSON_EVENT`].

use bytes::{Buf, BytesMut};

/// One server-sent event. For NDJSON framing, `data` is the line and `event` is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// How an upstream frames its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`.
    Sse,
    /// One JSON value per line (`application/x-ndjson`).
    NdJson,
    /// `text/event-stream`, plus bare JSON objects outside any field (Gemini writes errors
    /// that way, pretty-printed over several lines): each becomes one event named
    /// [`RAW_JSON_EVENT`] once its braces balance.
    SseOrRawJson,
    /// The whole body is one event, handed out at its end: for an adapter that asked the
    /// upstream for a complete answer and replays it as a stream (AI21 with tools).
    Whole,
}

/// The `event` name of a bare JSON object found in an [`Framing::SseOrRawJson`] stream.
pub const RAW_JSON_EVENT: &str = "raw-json";

/// A bare JSON object being collected line by line.
#[derive(Debug, Default)]
struct RawJson {
    text: String,
    depth: i64,
    in_string: bool,
    escaped: bool,
}

impl RawJson {
    /// Adds a line; true once the object's braces balance.
    fn push(&mut self, line: &str) -> bool {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(line);
        for c in line.chars() {
            if self.in_string {
                match (self.escaped, c) {
                    (true, _) => self.escaped = false,
                    (false, '\\') => self.escaped = true,
                    (false, '"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => self.in_string = true,
                '{' | '[' => self.depth += 1,
                '}' | ']' => self.depth -= 1,
                _ => {}
            }
        }
        self.depth <= 0
    }
}

/// Splits a byte stream into events.
#[derive(Debug)]
pub struct EventParser {
    framing: Framing,
    buf: BytesMut,
    event: Option<String>,
    data: Vec<String>,
    has_data: bool,
    /// A `\r` ended the last line: skip a `\n` that follows it.
    skip_lf: bool,
    /// A bare JSON object in progress ([`Framing::SseOrRawJson`]).
    raw: Option<RawJson>,
}

impl EventParser {
    /// A parser for the given framing.
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            buf: BytesMut::new(),
            event: None,
            data: Vec::new(),
            has_data: false,
            skip_lf: false,
            raw: None,
        }
    }

    /// Bytes held for an event not yet complete. The caller bounds it: an upstream that never
    /// ends a line or an event must not grow memory without limit.
    pub fn pending(&self) -> usize {
        self.buf.len()
            + self.data.iter().map(String::len).sum::<usize>()
            + self.raw.as_ref().map_or(0, |r| r.text.len())
    }

    /// Feeds bytes; complete events are pushed onto `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        self.buf.extend_from_slice(bytes);
        if self.framing == Framing::Whole {
            return;
        }
        while let Some(line) = self.next_line() {
            self.line(&line, out);
        }
    }

    /// End of input: a last event without its blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if self.framing == Framing::Whole {
            let body = self.buf.split().freeze();
            out.push(SseEvent {
                event: None,
                data: String::from_utf8_lossy(&body).into_owned(),
            });
            return;
        }
        if !self.buf.is_empty() {
            let rest = self.buf.split().freeze();
            let line = String::from_utf8_lossy(&rest).into_owned();
            self.line(&line, out);
        }
        if let Some(raw) = self.raw.take() {
            // Cut off before its braces balanced: the decoder reports it as unreadable.
            out.push(SseEvent {
                event: Some(RAW_JSON_EVENT.to_owned()),
                data: raw.text,
            });
        }
        match self.framing {
            Framing::Sse | Framing::SseOrRawJson => self.dispatch(out),
            Framing::NdJson | Framing::Whole => {}
        }
    }

    fn next_line(&mut self) -> Option<String> {
        if self.skip_lf && !self.buf.is_empty() {
            if self.buf[0] == b'\n' {
                self.buf.advance(1);
            }
            self.skip_lf = false;
        }
        let pos = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r')?;
        let line = self.buf.split_to(pos).freeze();
        let term = self.buf[0];
        self.buf.advance(1);
        if term == b'\r' {
            if self.buf.is_empty() {
                self.skip_lf = true;
            } else if self.buf[0] == b'\n' {
                self.buf.advance(1);
            }
        }
        // Lines are complete here, so a multi-byte character is never cut.
        Some(String::from_utf8_lossy(&line).into_owned())
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        match self.framing {
            Framing::NdJson | Framing::Whole => {
                let t = line.trim();
                if !t.is_empty() {
                    out.push(SseEvent {
                        event: None,
                        data: t.to_owned(),
                    });
                }
            }
            Framing::SseOrRawJson if self.raw.is_some() || line.trim_start().starts_with('{') => {
                let raw = self.raw.get_or_insert_with(RawJson::default);
                if raw.push(line) {
                    let text = std::mem::take(&mut raw.text);
                    self.raw = None;
                    out.push(SseEvent {
                        event: Some(RAW_JSON_EVENT.to_owned()),
                        data: text,
                    });
                }
            }
            Framing::Sse | Framing::SseOrRawJson => {
                if line.is_empty() {
                    self.dispatch(out);
                    return;
                }
                if line.starts_with(':') {
                    return; // comment / keep-alive
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "event" => self.event = Some(value.to_owned()),
                    "data" => {
                        self.data.push(value.to_owned());
                        self.has_data = true;
                    }
                    _ => {} // id, retry: not needed
                }
            }
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: self.data.join("\n"),
            });
        }
        self.event = None;
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(framing: Framing, pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = EventParser::new(framing);
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece, &mut out);
        }
        p.finish(&mut out);
        out
    }

    #[test]
    fn comments_crlf_and_multiline_data() {
        let raw = b": OPENROUTER PROCESSING\r\n\r\nevent: message_start\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: [DONE]\n\n";
        let evs = parse_all(Framing::Sse, &[raw]);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].event.as_deref(), Some("message_start"));
        assert_eq!(evs[0].data, "{\"a\":\n1}");
        assert_eq!(evs[1].data, "[DONE]");
    }

    #[test]
    fn last_event_without_blank_line_is_kept() {
        let evs = parse_all(Framing::Sse, &[b"data: {\"x\":1}"]);
        assert_eq!(
            evs,
            vec![SseEvent {
                event: None,
                data: "{\"x\":1}".into()
            }]
        );
    }

    #[test]
    fn ndjson_lines() {
        let evs = parse_all(
            Framing::NdJson,
            &[b"{\"a\":1}\n\n{\"b\"", b":2}\n{\"c\":3}"],
        );
        let data: Vec<_> = evs.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    #[test]
    fn bare_json_objects_between_events_become_raw_events() {
        let raw = "data: {\"a\":1}\n\n{\n  \"error\": {\n    \"code\": 503,\n    \"message\": \"a } in a string\"\n  }\n}\n";
        for cut in 0..raw.len() {
            let evs = parse_all(
                Framing::SseOrRawJson,
                &[&raw.as_bytes()[..cut], &raw.as_bytes()[cut..]],
            );
            assert_eq!(evs.len(), 2, "cut at {cut}: {evs:?}");
            assert_eq!(evs[0].data, "{\"a\":1}");
            assert_eq!(evs[1].event.as_deref(), Some(RAW_JSON_EVENT));
            let v: serde_json::Value = serde_json::from_str(&evs[1].data).unwrap();
            assert_eq!(v["error"]["code"], 503);
        }
        // Plain SSE framing ignores such lines, as the SSE rules say.
        assert_eq!(parse_all(Framing::Sse, &[raw.as_bytes()]).len(), 1);
    }

    #[test]
    fn whole_body_is_one_event_at_the_end() {
        let evs = parse_all(Framing::Whole, &[b"{\n  \"a\": \"h\xc3", b"\xa9\"\n}\n"]);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].data, "{\n  \"a\": \"h\u{e9}\"\n}\n");
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let raw = "data: {\"t\":\"héllo wörld ✓\"}\r\n\r\n: ping\n\nevent: x\ndata: a\ndata: b\n\ndata: [DONE]\n\n".as_bytes();
            let whole = parse_all(Framing::Sse, &[raw]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % raw.len()).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for c in cuts { pieces.push(&raw[last..c]); last = c; }
            pieces.push(&raw[last..]);
            prop_assert_eq!(parse_all(Framing::Sse, &pieces), whole);
        }
    }
}
