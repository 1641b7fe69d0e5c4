//! Decoding and validating the client's request body into a [`ChatRequest`].

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use crate::GatewayError;
use crate::types::ChatRequest;

/// Reads the whole body, refusing more than `limit` bytes (by `content-length` up front, or
/// while reading a chunked body).
pub async fn read_body(req: axum::extract::Request, limit: usize) -> Result<Bytes, GatewayError> {
    if let Some(len) = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::PayloadTooLarge { limit })
        }
        Err(e) => match e.downcast_ref::<super::server::BodyTimeout>() {
            Some(t) => Err(GatewayError::invalid(
                "body",
                format!("did not arrive within {} ms", t.0.as_millis()),
            )),
            None => Err(GatewayError::invalid(
                "body",
                format!("could not be read: {e}"),
            )),
        },
    }
}

/// How deeply a request's JSON may nest (objects and arrays); deeper is a 400, checked before
/// parsing so no input can make the parser recurse far.
pub const MAX_JSON_DEPTH: usize = 64;

/// The deepest nesting of arrays and objects in `body` (strings skipped), stopping early once
/// past `limit`.
pub fn json_depth(body: &[u8], limit: usize) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        match b {
            b'"' => {
                // To the closing quote, over escapes; an unterminated string ends the scan.
                loop {
                    let Some(at) = body
                        .get(i..)
                        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                    else {
                        return max;
                    };
                    i += at + 1;
                    if body[i - 1] == b'"' {
                        break;
                    }
                    i += 1;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    if max > limit {
                        return max;
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses JSON into `T`, naming the field on a type error and saying "json" on a syntax error.
///
/// The common case, a valid body, takes plain serde_json; only a body that fails is parsed
/// again with path tracking to name the field (tracking costs about 40% on every request).
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::invalid(
            "body",
            "is empty; send a JSON object (invalid json)",
        ));
    }
    if json_depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH {
        return Err(GatewayError::invalid(
            "json",
            format!("nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects"),
        ));
    }
    // The body's UTF-8 checked once, in one pass: parsed from bytes, serde_json checks every
    // string of the document on its own.
    if let Ok(text) = std::str::from_utf8(body)
        && let Ok(value) = serde_json::from_str(text)
    {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        use serde_json::error::Category;
        match inner.classify() {
            // serde_json reports a number where an enum's name belongs as a syntax error;
            // when the document itself parses, the fault is the field's.
            Category::Syntax
                if path != "."
                    && !path.is_empty()
                    && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() =>
            {
                GatewayError::invalid(
                    path,
                    format!(
                        "has the wrong type or value: {}",
                        strip_position(&inner.to_string())
                    ),
                )
            }
            Category::Syntax | Category::Eof | Category::Io => {
                GatewayError::invalid("json", format!("is malformed: {inner} (invalid json)"))
            }
            Category::Data => {
                let msg = inner.to_string();
                // serde says "missing field `messages`" at the parent's path.
                if let Some(field) = msg
                    .strip_prefix("missing field `")
                    .and_then(|m| m.split('`').next())
                {
                    let full = if path == "." || path.is_empty() {
                        field.to_owned()
                    } else {
                        format!("{path}.{field}")
                    };
                    return GatewayError::invalid(full, "is required");
                }
                let field = if path == "." || path.is_empty() {
                    "body".to_owned()
                } else {
                    path
                };
                GatewayError::invalid(
                    field,
                    format!("has the wrong type or value: {}", strip_position(&msg)),
                )
            }
        }
    })?;
    // Bytes after the value (a second object, a stray brace) make the body ambiguous.
    de.end().map_err(|e| {
        GatewayError::invalid(
            "json",
            format!("has bytes after the JSON value: {e} (invalid json)"),
        )
    })?;
    Ok(value)
}

fn strip_position(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

/// Parses and validates a chat request.
pub fn chat_request(body: &[u8]) -> Result<ChatRequest, GatewayError> {
    let req: ChatRequest = parse(body)?;
    req.validate()?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(body: &str) -> String {
        match chat_request(body.as_bytes()) {
            Err(GatewayError::InvalidRequest { field, .. }) => field,
            other => panic!("expected invalid request, got {other:?}"),
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        assert_eq!(field(""), "body");
        assert_eq!(field("{not json"), "json");
        assert_eq!(field(r#"{"model":"m"}"#), "messages");
        assert_eq!(
            field(r#"{"messages":[{"role":"user","content":"x"}]}"#),
            "model"
        );
        assert_eq!(field(r#"{"model":"m","messages":"hi"}"#), "messages");
        assert_eq!(
            field(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#),
            "messages[0].role"
        );
        assert_eq!(
            field(
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#
            ),
            "temperature"
        );
        assert_eq!(
            field(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":5}"#),
            "temperature"
        );
        assert_eq!(
            field(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#),
            "stream"
        );
        assert_eq!(field(r#"{"model":"m","messages":[]}"#), "messages");
        assert_eq!(
            field(r#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#),
            "model"
        );
        assert_eq!(field("[1,2]"), "body");
    }

    #[test]
    fn strict_json_and_bounds_name_the_field() {
        let ok = r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;
        assert!(chat_request(ok.as_bytes()).is_ok());
        assert_eq!(field(&format!("{ok} {{}}")), "json");
        assert_eq!(field(&format!("{ok}x")), "json");
        assert!(chat_request(format!("{ok}\n ").as_bytes()).is_ok());
        assert_eq!(
            field(r#"{"model":"m","messages":[{"role":5,"content":"x"}]}"#),
            "messages[0].role"
        );
        assert_eq!(
            field(
                r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"user","content":7}]}"#
            ),
            "messages[1].content"
        );
        let long = "a".repeat(257);
        assert_eq!(
            field(&format!(
                r#"{{"model":"{long}","messages":[{{"role":"user","content":"x"}}]}}"#
            )),
            "model"
        );
        assert_eq!(
            field(r#"{"model":"m\u0000<script>","messages":[{"role":"user","content":"x"}]}"#),
            "model"
        );
        assert!(chat_request(r#"{"model":"openrouter/meta-llama/llama-3.1-8b:free@v1+x#2","messages":[{"role":"user","content":"x"}]}"#.as_bytes()).is_ok());
        assert_eq!(
            field(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":129}"#),
            "n"
        );
    }

    #[test]
    fn deep_json_is_refused_before_parsing() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(field(&deep), "json");
        let ok = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}],"x":{}1{}}}"#,
            "[[[[".repeat(100),
            "[".repeat(60),
            "]".repeat(60)
        );
        assert!(
            chat_request(ok.as_bytes()).is_ok(),
            "brackets inside strings do not count"
        );
        assert_eq!(json_depth(br#"{"a":"\"[[[","b":[1]}"#, 64), 2);
    }

    /// `json_depth` one byte at a time, the plain reading of its contract.
    fn depth_by_bytes(body: &[u8], limit: usize) -> usize {
        let (mut depth, mut max) = (0usize, 0usize);
        let (mut in_str, mut escaped) = (false, false);
        for &b in body {
            if in_str {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'[' | b'{' => {
                    depth += 1;
                    max = max.max(depth);
                    if max > limit {
                        return max;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        max
    }

    proptest! {
        #[test]
        fn json_depth_skips_strings_as_a_byte_scan_does(
            body in proptest::collection::vec(prop_oneof![
                Just(b'"'), Just(b'\\'), Just(b'['), Just(b']'), Just(b'{'), Just(b'}'), Just(b'a'), Just(b' ')
            ], 0..64),
            limit in 0usize..8,
        ) {
            prop_assert_eq!(json_depth(&body, limit), depth_by_bytes(&body, limit));
        }
    }

    #[test]
    fn unknown_fields_are_kept() {
        let r = chat_request(br#"{"model":"m","messages":[{"role":"user","content":"x","extra_msg":1}],"new_param":true}"#).unwrap();
        assert_eq!(r.extra["new_param"], true);
        assert_eq!(r.messages[0].extra["extra_msg"], 1);
    }

    proptest! {
        #[test]
        fn any_json_is_accepted_or_names_a_field(v in arb_json()) {
            let body = serde_json::to_vec(&v).unwrap();
            match chat_request(&body) {
                Ok(_) => {}
                Err(GatewayError::InvalidRequest { field, .. }) => prop_assert!(!field.is_empty()),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "[a-z]{0,6}".prop_map(serde_json::Value::from),
            prop_oneof![
                Just("user"),
                Just("system"),
                Just("assistant"),
                Just("tool")
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("model".to_owned()),
                        Just("messages".to_owned()),
                        Just("role".to_owned()),
                        Just("content".to_owned()),
                        Just("stream".to_owned()),
                        "[a-z]{1,4}"
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
