//! The journal's line for a [`UsageRecord`]: the same JSON object serde writes for it, field
//! for field and byte for byte, written straight into a buffer. Field names are literals and
//! each value goes through `serde_json` on its own, so a line skips the serializer's generic
//! path for the record (its field names escaped one by one); replay reads it back with serde.

use super::UsageRecord;
use crate::types::json::field;

/// Appends `record` as one JSON object (no newline) to `out`.
pub(crate) fn write_record(out: &mut Vec<u8>, r: &UsageRecord) -> serde_json::Result<()> {
    let b = &r.cost_breakdown;
    field(out, b"{\"id\":", &r.id)?;
    field(out, b",\"ts_ms\":", &r.ts_ms)?;
    field(out, b",\"request_id\":", &r.request_id)?;
    field(out, b",\"key_id\":", &r.key_id)?;
    field(out, b",\"endpoint\":", &r.endpoint)?;
    field(out, b",\"provider\":", &r.provider)?;
    field(out, b",\"model\":", &r.model)?;
    field(out, b",\"prompt_tokens\":", &r.prompt_tokens)?;
    field(out, b",\"completion_tokens\":", &r.completion_tokens)?;
    field(out, b",\"cached_tokens\":", &r.cached_tokens)?;
    field(out, b",\"cache_write_tokens\":", &r.cache_write_tokens)?;
    field(out, b",\"reasoning_tokens\":", &r.reasoning_tokens)?;
    field(out, b",\"estimated_tokens\":", &r.estimated_tokens)?;
    field(out, b",\"cost_usd\":", &r.cost_usd)?;
    field(out, b",\"cost_breakdown\":{\"input\":", &b.input)?;
    field(out, b",\"cached_input\":", &b.cached_input)?;
    field(out, b",\"cache_write\":", &b.cache_write)?;
    field(out, b",\"output\":", &b.output)?;
    field(out, b"},\"unpriced\":", &r.unpriced)?;
    field(out, b",\"latency_ms\":", &r.latency_ms)?;
    field(out, b",\"ttft_ms\":", &r.ttft_ms)?;
    field(out, b",\"status\":", &r.status)?;
    field(out, b",\"attempts\":", &r.attempts)?;
    field(out, b",\"stream\":", &r.stream)?;
    field(out, b",\"cache_hit\":", &r.cache_hit)?;
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Api;
    use crate::usage::CostBreakdown;
    use proptest::prelude::*;

    fn line(r: &UsageRecord) -> Vec<u8> {
        let mut v = Vec::new();
        write_record(&mut v, r).unwrap();
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
