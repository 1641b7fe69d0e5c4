//! The journal's line for a [`UsageRecord`]: the same JSON object serde writes for it, field
//! for field and byte for byte, written straight into a buffer. Field names are literals and
//! numbers go through `itoa` and `zmij` (what `serde_json` itself uses), so a line costs a
//! fraction of the serializer's generic path; replay reads it back with serde.

use super::UsageRecord;
use crate::types::json::{boolean, float, int, opt_string, string};

/// Appends `record` as one JSON object (no newline) to `out`.
pub(crate) fn write_record(out: &mut Vec<u8>, r: &UsageRecord) {
    out.extend_from_slice(b"{\"id\":");
    string(out, &r.id);
    out.extend_from_slice(b",\"ts_ms\":");
    int(out, r.ts_ms);
    out.extend_from_slice(b",\"request_id\":");
    opt_string(out, r.request_id.as_deref());
    out.extend_from_slice(b",\"key_id\":");
    opt_string(out, r.key_id.as_deref());
    out.extend_from_slice(b",\"endpoint\":\"");
    out.extend_from_slice(r.endpoint.as_str().as_bytes());
    out.extend_from_slice(b"\",\"provider\":");
    string(out, &r.provider);
    out.extend_from_slice(b",\"model\":");
    string(out, &r.model);
    out.extend_from_slice(b",\"prompt_tokens\":");
    int(out, r.prompt_tokens);
    out.extend_from_slice(b",\"completion_tokens\":");
    int(out, r.completion_tokens);
    out.extend_from_slice(b",\"cached_tokens\":");
    int(out, r.cached_tokens);
    out.extend_from_slice(b",\"cache_write_tokens\":");
    int(out, r.cache_write_tokens);
    out.extend_from_slice(b",\"reasoning_tokens\":");
    int(out, r.reasoning_tokens);
    out.extend_from_slice(b",\"estimated_tokens\":");
    int(out, r.estimated_tokens);
    out.extend_from_slice(b",\"cost_usd\":");
    float(out, r.cost_usd);
    out.extend_from_slice(b",\"cost_breakdown\":{\"input\":");
    float(out, r.cost_breakdown.input);
    out.extend_from_slice(b",\"cached_input\":");
    float(out, r.cost_breakdown.cached_input);
    out.extend_from_slice(b",\"cache_write\":");
    float(out, r.cost_breakdown.cache_write);
    out.extend_from_slice(b",\"output\":");
    float(out, r.cost_breakdown.output);
    out.extend_from_slice(b"},\"unpriced\":");
    boolean(out, r.unpriced);
    out.extend_from_slice(b",\"latency_ms\":");
    float(out, r.latency_ms);
    out.extend_from_slice(b",\"ttft_ms\":");
    match r.ttft_ms {
        Some(t) => float(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"status\":");
    int(out, r.status);
    out.extend_from_slice(b",\"attempts\":");
    int(out, r.attempts);
    out.extend_from_slice(b",\"stream\":");
    boolean(out, r.stream);
    out.extend_from_slice(b",\"cache_hit\":");
    boolean(out, r.cache_hit);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Api;
    use crate::usage::CostBreakdown;
    use proptest::prelude::*;

    fn line(r: &UsageRecord) -> Vec<u8> {
        let mut v = Vec::new();
        write_record(&mut v, r);
        v
    }

    fn record(text: String, n: u64, x: f64, flags: (bool, bool, bool)) -> UsageRecord {
        UsageRecord {
            id: text.clone().into(),
            ts_ms: n as i64 - 7,
            request_id: flags.0.then(|| text.clone().into()),
            key_id: (!flags.0).then(|| "key_1".into()),
            endpoint: if flags.1 { Api::Responses } else { Api::Chat },
            provider: "groq".into(),
            model: text.into(),
            prompt_tokens: n,
            completion_tokens: n / 3,
            cached_tokens: u64::MAX,
            cache_write_tokens: 0,
            reasoning_tokens: n % 11,
            estimated_tokens: 1,
            cost_usd: x,
            cost_breakdown: CostBreakdown {
                input: x / 3.0,
                cached_input: 0.0,
                cache_write: -0.0,
                output: x * 1e-9,
            },
            unpriced: flags.2,
            latency_ms: x * 1000.0,
            ttft_ms: flags.1.then_some(x),
            status: (n % 600) as u16,
            attempts: (n % 7) as u32,
            stream: flags.1,
            cache_hit: flags.2,
        }
    }

    proptest! {
        #[test]
        fn the_line_is_what_serde_writes_and_reads_back(
            text in any::<String>(),
            n in any::<u64>(),
            x in prop_oneof![any::<f64>(), Just(f64::NAN), Just(1e300), Just(0.000_000_15)],
            flags in any::<(bool, bool, bool)>(),
        ) {
            let r = record(text, n, x, flags);
            let ours = line(&r);
            let theirs = serde_json::to_vec(&r).unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
            // The replay reads it (floats as exactly as `serde_json` reads its own output); a
            // float that is not finite is `null` in both, which no record reads back.
            let b = &r.cost_breakdown;
            let floats = [r.cost_usd, b.input, b.cached_input, b.cache_write, b.output, r.latency_ms];
            if floats.iter().chain(&r.ttft_ms).all(|f| f.is_finite()) {
                let back = serde_json::from_slice::<UsageRecord>(&ours).unwrap();
                prop_assert_eq!((&back.id, back.prompt_tokens, back.ttft_ms.is_some()), (&r.id, r.prompt_tokens, r.ttft_ms.is_some()));
            }
        }
    }

    #[test]
    fn control_characters_quotes_and_non_ascii_are_escaped_as_serde_does() {
        let text: String = (0u8..0x20)
            .map(char::from)
            .chain("\"\\é✓\u{7f}".chars())
            .collect();
        let r = record(text, 42, 0.25, (true, false, true));
        assert_eq!(line(&r), serde_json::to_vec(&r).unwrap());
    }
}
