use super::*;
use crate::types::Api;

const T0: i64 = 1_800_000_000_000; // a whole second, a whole ten seconds

fn rec(ts_ms: i64, model: &str, status: u16, latency_ms: f64) -> UsageRecord {
    let provider = model.split('/').next().unwrap_or("none");
    UsageRecord {
        id: format!("r{ts_ms}-{model}").into(),
        ts_ms,
        request_id: Some("req-1".into()),
        key_id: Some("vk_secret_id".into()),
        endpoint: Api::Chat,
        provider: if status == 200 { provider } else { "none" }.into(),
        model: model.into(),
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        estimated_tokens: 0,
        cost_usd: if status == 200 { 0.001 } else { 0.0 },
        cost_breakdown: Default::default(),
        unpriced: false,
        latency_ms,
        ttft_ms: None,
        status,
        attempts: 1,
        stream: false,
        cache_hit: false,
    }
}

#[test]
fn windows_count_only_their_seconds() {
    let s = Stats::starting_at(T0);
    // One request a second for 30 minutes, the last second being T0 + 1799 s.
    for i in 0..1800 {
        s.record(&rec(T0 + i * 1000 + 500, "mock/echo", 200, 20.0));
    }
    let now = T0 + 1799 * 1000 + 900;
    let one = s.snapshot(60, now, 0);
    assert_eq!(one.totals.requests, 60);
    assert!((one.totals.rps - 1.0).abs() < 1e-9, "{}", one.totals.rps);
    assert_eq!(one.totals.tokens, 60 * 15);
    assert!((one.totals.cost_usd - 0.06).abs() < 1e-9);
    assert_eq!(s.snapshot(300, now, 0).totals.requests, 300);
    assert_eq!(s.snapshot(900, now, 0).totals.requests, 900);
    // The hour window covers the whole run; its rate is over the 30 minutes since start.
    let hour = s.snapshot(3600, now, 0);
    assert_eq!(hour.totals.requests, 1800);
    assert!((hour.totals.rps - 1.0).abs() < 1e-9, "{}", hour.totals.rps);
    // Ten minutes later, the 5 minute window is empty, the hour still has everything.
    let later = now + 600_000;
    assert_eq!(s.snapshot(300, later, 0).totals.requests, 0);
    assert_eq!(s.snapshot(3600, later, 0).totals.requests, 1800);
    // Two hours later nothing is left in any window, but the lifetime counts stay.
    let gone = s.snapshot(3600, now + 7_200_000, 0);
    assert_eq!(gone.totals.requests, 0);
    assert_eq!(gone.lifetime.requests, 1800);
    assert!(gone.by_model.is_empty());
    assert_eq!(gone.latency_ms.p50, None);
}

#[test]
fn series_have_sixty_steps_summing_to_the_totals() {
    let s = Stats::starting_at(T0);
    for i in 0..300 {
        let status = if i % 10 == 0 { 502 } else { 200 };
        s.record(&rec(T0 + i * 1000, "mock/echo", status, 100.0));
    }
    let now = T0 + 299 * 1000;
    let snap = s.snapshot(300, now, 0);
    assert_eq!(snap.series.step_secs, 5);
    assert_eq!(snap.series.requests.len(), 60);
    assert_eq!(snap.series.requests.iter().sum::<u64>(), 300);
    assert_eq!(snap.series.errors.iter().sum::<u64>(), 30);
    assert_eq!(snap.totals.errors, 30);
    assert_eq!(snap.totals.ok, 270);
    assert!((snap.totals.error_rate - 0.1).abs() < 1e-9);
    assert_eq!(snap.series.start_ms, T0);
    assert!(
        snap.series
            .latency_avg_ms
            .iter()
            .all(|v| v.is_some_and(|v| (v - 100.0).abs() < 1e-9))
    );
    let minute = s.snapshot(60, now, 0);
    assert_eq!(minute.series.step_secs, 1);
    assert_eq!(minute.series.requests, vec![1; 60]);
}

#[test]
fn percentiles_come_from_successful_requests() {
    let s = Stats::starting_at(T0);
    for i in 0..1000 {
        s.record(&rec(T0 + i * 50, "mock/echo", 200, (i + 1) as f64));
    }
    // Fast failures do not pull the latency down.
    for i in 0..500 {
        s.record(&rec(T0 + i * 50, "groq/llama", 503, 0.1));
    }
    let mut streamed = rec(T0 + 1000, "mock/echo", 200, 400.0);
    streamed.ttft_ms = Some(40.0);
    s.record(&streamed);
    let snap = s.snapshot(60, T0 + 50_000, 0);
    let l = snap.latency_ms;
    assert_eq!(l.count, 1001);
    for (got, want) in [(l.p50, 500.0), (l.p95, 950.0), (l.p99, 990.0)] {
        let got = got.unwrap();
        assert!((got - want).abs() / want < 0.08, "{got} vs {want}");
    }
    assert_eq!(snap.ttft_ms.count, 1);
    assert!((snap.ttft_ms.p50.unwrap() / 40.0 - 1.0).abs() < 0.19);
}

#[test]
fn breakdowns_by_provider_and_model() {
    let s = Stats::starting_at(T0);
    for i in 0..4 {
        s.record(&rec(T0 + i * 100, "mock/echo", 200, 5.0));
    }
    s.record(&rec(T0 + 500, "openai/gpt-4o-mini", 200, 5.0));
    s.record(&rec(T0 + 600, "openai/gpt-4o", 200, 5.0));
    s.record(&rec(T0 + 700, "groq/llama", 502, 5.0));
    let snap = s.snapshot(60, T0 + 1000, 0);
    let models: Vec<_> = snap
        .by_model
        .iter()
        .map(|r| {
            (
                r.provider.as_str(),
                r.model.as_deref().unwrap(),
                r.requests(),
            )
        })
        .collect();
    assert_eq!(
        models,
        vec![
            ("mock", "mock/echo", 4),
            ("openai", "openai/gpt-4o", 1),
            ("openai", "openai/gpt-4o-mini", 1),
            ("none", "groq/llama", 1),
        ]
    );
    let providers: Vec<_> = snap
        .by_provider
        .iter()
        .map(|r| (r.provider.as_str(), r.requests(), r.tokens()))
        .collect();
    assert_eq!(
        providers,
        vec![("mock", 4, 60), ("openai", 2, 30), ("none", 1, 15)]
    );
    assert!((snap.by_provider[0].cost_usd() - 0.004).abs() < 1e-12);
}

#[test]
fn recent_requests_are_newest_first_and_bounded() {
    let s = Stats::starting_at(T0);
    for i in 0..(RECENT as i64 + 50) {
        s.record(&rec(T0 + i, "mock/echo", 200, i as f64));
    }
    let snap = s.snapshot(60, T0 + 1000, 1000);
    assert_eq!(snap.recent.len(), RECENT);
    assert_eq!(snap.recent[0].latency_ms, (RECENT + 49) as f64);
    assert_eq!(snap.recent[RECENT - 1].latency_ms, 50.0);
    assert_eq!(s.snapshot(60, T0 + 1000, 5).recent.len(), 5);
    assert_eq!(snap.recent[0].request_id.as_deref(), Some("req-1"));
}

#[test]
fn memory_stays_bounded_whatever_the_traffic() {
    let s = Stats::starting_at(T0);
    let empty = s.footprint();
    // An hour of traffic naming a new model every request (as failing requests for made-up
    // models would), several requests a second.
    let hour = |start: i64| {
        for i in 0..20_000i64 {
            let ts = start + i * 180;
            s.record(&rec(ts, &format!("x/model-{i}"), 404, 1.0));
        }
    };
    hour(T0);
    hour(T0 + 3_600_000);
    let after_two = s.footprint();
    hour(T0 + 2 * 3_600_000);
    let after_three = s.footprint();
    assert_eq!(
        after_two, after_three,
        "no growth from one hour to the next"
    );
    let bound = empty + SLOTS * MODELS_PER_SLOT * std::mem::size_of::<ModelCounts>();
    assert!(after_three <= bound, "{after_three} > {bound}");
    assert!(after_three < 2 << 20, "{after_three} bytes");
    // The rows of one slot stop at the bound, the rest folded into `other`.
    let snap = s.snapshot(10, T0 + 3 * 3_600_000 - 1000, 0);
    assert!(
        snap.by_model.len() <= MODELS_PER_SLOT * 2,
        "{}",
        snap.by_model.len()
    );
    assert!(
        snap.by_model
            .iter()
            .any(|r| r.model.as_deref() == Some(OTHER))
    );
    let total: u64 = snap.by_model.iter().map(Row::requests).sum();
    assert_eq!(total, snap.totals.requests.max(total));
}

#[test]
fn late_and_ancient_records_do_not_corrupt_newer_seconds() {
    let s = Stats::starting_at(T0);
    s.record(&rec(T0 + 3_600_000, "mock/echo", 200, 1.0));
    // An hour older: same slot index, must not reset the newer second.
    s.record(&rec(T0, "mock/echo", 200, 1.0));
    let snap = s.snapshot(60, T0 + 3_600_000, 10);
    assert_eq!(snap.totals.requests, 1);
    assert_eq!(snap.by_model.len(), 1);
    assert_eq!(snap.by_model[0].requests(), 1);
    assert_eq!(snap.recent.len(), 2, "the ring keeps both");
    assert_eq!(snap.lifetime.requests, 2);
}

#[test]
fn the_observer_feeds_the_stats_and_the_json_has_no_key_id() {
    let s = Arc::new(Stats::new());
    let f = s.observer();
    f(&rec(now_ms(), "mock/echo", 200, 3.0));
    let snap = s.snapshot(60, now_ms(), 10);
    assert_eq!(snap.totals.requests, 1);
    let json = serde_json::to_string(&snap).unwrap();
    assert!(!json.contains("vk_secret_id"), "{json}");
    for key in [
        "\"window_secs\"",
        "\"totals\"",
        "\"latency_ms\"",
        "\"ttft_ms\"",
        "\"series\"",
        "\"by_provider\"",
        "\"by_model\"",
        "\"recent\"",
        "\"prompt_tokens\"",
        "\"p99\"",
    ] {
        assert!(json.contains(key), "{key} in {json}");
    }
}
