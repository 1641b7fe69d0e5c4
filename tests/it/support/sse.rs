//! Reading server-sent events out of a response body.

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .flat_map(|ev| {
            ev.lines()
                .filter_map(|l| l.strip_prefix("data: ").map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The JSON chunks of an OpenAI SSE body, checking it ends with exactly one `data: [DONE]`.
pub fn sse_chunks(body: &[u8]) -> Vec<serde_json::Value> {
    let data = sse_data(body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    assert_eq!(
        data.iter().filter(|d| *d == "[DONE]").count(),
        1,
        "{data:?}"
    );
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect()
}

/// The JSON chunks of an OpenAI SSE body cut by its upstream: it ends with its error event,
/// with no `data: [DONE]` a client could take for the end of a whole answer.
pub fn sse_cut_chunks(body: &[u8]) -> Vec<serde_json::Value> {
    let data = sse_data(body);
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let chunks: Vec<serde_json::Value> = data
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(
        chunks.last().is_some_and(|c| c.get("error").is_some()),
        "{data:?}"
    );
    chunks
}
