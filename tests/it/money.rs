//! Money end to end: every meter a provider reports (cached prompt tokens, cache writes of
//! both lifetimes, reasoning tokens) is priced at its own rate to 1e-9, whatever key, base URL
//! or dated id serves the model; unpriced models are flagged and refused to budgeted keys; and
//! every overspend path of a budget (`n`, no `max_tokens`, a cancelled request, a cut stream,
//! a second key, a dated id, an unpriced model) is closed, in one process and with two
//! replicas sharing Redis.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};

const MASTER: &str = "mk-money-test-master-key-00001";
const REDIS: &str = "redis://127.0.0.1:6379";

/// List prices, USD per 1M tokens (OpenAI's and Anthropic's pricing pages).
const GPT_4O_MINI: (f64, f64, f64) = (0.15, 0.60, 0.075);
const GPT_4O: (f64, f64) = (2.50, 10.00);
const SONNET_4_5: (f64, f64) = (3.00, 15.00);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn openai_reply(usage: Value) -> Reply {
    Reply::json(json!({
        "id": "chatcmpl-m", "object": "chat.completion", "created": 1730000000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Fine."}, "finish_reason": "stop"}],
        "usage": usage
    }))
}

fn openai_stream(usage: Value) -> Reply {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    Reply::openai_sse(&[
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Fine."}), json!("stop")),
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000,
               "model": "gpt-4o-mini", "choices": [], "usage": usage}),
    ])
}

fn anthropic_reply(usage: Value) -> Reply {
    Reply::json(json!({
        "id": "msg_m", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Fine."}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": usage
    }))
}

fn anthropic_stream(usage: Value, output: u64) -> Reply {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s", "type": "message",
            "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": usage}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Fine."}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": output}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let text: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Reply::raw(200, "text/event-stream", &text)
}

struct Setup {
    openai: FakeUpstream,
    anthropic: FakeUpstream,
    gateways: Vec<TestGateway>,
}

impl Setup {
    /// One gateway, or two sharing Redis under a fresh prefix when `redis`.
    async fn start(redis: bool, extra: &[(&'static str, String)]) -> Self {
        let unscripted = || Reply::status_json(500, json!({"error": "unscripted"}));
        let openai = FakeUpstream::start(unscripted()).await;
        let anthropic = FakeUpstream::start(unscripted()).await;
        let mut env: Vec<(&str, String)> = vec![
            ("PROXYGATE_MASTER_KEY", MASTER.into()),
            ("OPENAI_API_KEY", "sk-one,sk-two".into()),
            ("OPENAI_BASE_URL", openai.url("/v1")),
            ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
            ("ANTHROPIC_BASE_URL", anthropic.url("")),
            ("ROUTING_STRATEGY", "round-robin".into()),
            ("MAX_RETRIES", "0".into()),
        ];
        env.extend(extra.iter().cloned());
        let mut gateways = Vec::new();
        if redis {
            let prefix = format!("money-{:016x}", rand::random::<u64>());
            env.push(("REDIS_URL", REDIS.into()));
            env.push(("REDIS_PREFIX", prefix));
            env.push(("STATE_SYNC_MS", "25".into()));
            // Keys and usage in one store both replicas read, as Postgres would be.
            let db = std::env::temp_dir().join(format!("money-{:016x}.db", rand::random::<u64>()));
            env.push(("USAGE_DB_PATH", db.display().to_string()));
            for _ in 0..2 {
                let mut own = env.clone();
                let journal = std::env::temp_dir()
                    .join(format!("money-journal-{:016x}", rand::random::<u64>()));
                own.push(("USAGE_JOURNAL_DIR", journal.display().to_string()));
                gateways.push(TestGateway::start(&own).await);
            }
        } else {
            gateways.push(TestGateway::start(&env).await);
        }
        Self {
            openai,
            anthropic,
            gateways,
        }
    }

    fn gw(&self, i: usize) -> &TestGateway {
        &self.gateways[i % self.gateways.len()]
    }

    async fn call(
        &self,
        i: usize,
        path: &str,
        key: &str,
        body: &Value,
    ) -> (u16, HashMap<String, String>, Value, String) {
        let req = http::Request::post(self.gw(i).url(path))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"));
        let (status, headers, bytes) = send(req, body.to_string().into_bytes()).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, v, text)
    }

    async fn key(&self, spec: Value) -> (String, String) {
        let (status, _, body, _) = self.call(0, "/admin/keys", MASTER, &spec).await;
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap_or_default().to_owned(),
            body["key"].as_str().unwrap_or_default().to_owned(),
        )
    }

    async fn usage(&self, query: &str) -> Value {
        for g in &self.gateways {
            g.gateway.usage().flush().await.expect("flush");
        }
        let req = http::Request::get(self.gw(0).url(&format!("/v1/usage{query}")))
            .header("authorization", format!("Bearer {MASTER}"));
        let (status, _, bytes) = send(req, Vec::new()).await;
        assert_eq!(status, 200);
        serde_json::from_slice(&bytes).expect("json")
    }
}

fn cost_header(h: &HashMap<String, String>) -> f64 {
    h.get("x-proxygate-cost-usd")
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn stream_cost(text: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(": cost_usd="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn every_usage_shape_is_priced_per_meter_to_a_billionth() {
    let s = Setup::start(false, &[]).await;
    let (_, key) = s.key(json!({"name": "meters"})).await;

    // OpenAI: 1,000 prompt tokens of which 600 cached, 500 completion of which 200 reasoning.
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 600},
        "completion_tokens_details": {"reasoning_tokens": 200}});
    let want = (400.0 * GPT_4O_MINI.0 + 600.0 * GPT_4O_MINI.2 + 500.0 * GPT_4O_MINI.1) / 1e6;
    s.openai.script([openai_reply(usage.clone())]);
    let (st, h, body, _) = s
        .call(
            0,
            "/v1/chat/completions",
            &key,
            &chat("openai/gpt-4o-mini", "hi"),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        close(cost_header(&h), want),
        "{} vs {want}",
        cost_header(&h)
    );
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 600);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        200
    );

    // The same usage streamed.
    s.openai.script([openai_stream(usage)]);
    let mut req = chat("openai/gpt-4o-mini", "hi");
    req["stream"] = json!(true);
    let (st, _, _, text) = s.call(1, "/v1/chat/completions", &key, &req).await;
    assert_eq!(st, 200);
    assert!(close(stream_cost(&text), want), "{text}");

    // DeepSeek-style `prompt_cache_hit_tokens` through an OpenAI-compatible answer.
    s.openai.script([openai_reply(
        json!({"prompt_tokens": 1000, "completion_tokens": 10,
        "total_tokens": 1010, "prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 200}),
    )]);
    let (_, h, _, _) = s
        .call(
            0,
            "/v1/chat/completions",
            &key,
            &chat("openai/gpt-4o-mini", "hi"),
        )
        .await;
    let want_hit = (200.0 * GPT_4O_MINI.0 + 800.0 * GPT_4O_MINI.2 + 10.0 * GPT_4O_MINI.1) / 1e6;
    assert!(close(cost_header(&h), want_hit), "{h:?}");

    // Anthropic: 100 fresh, 2,000 read from the cache, 1,000 written (400 for 5 minutes, 600
    // for one hour), 50 out; reads at 0.1x, 5-minute writes at 1.25x, 1-hour writes at 2x.
    let (i, o) = SONNET_4_5;
    let anthropic_usage = json!({"input_tokens": 100, "output_tokens": 50,
        "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 1000,
        "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600}});
    let want_a =
        (100.0 * i + 2000.0 * i * 0.1 + 400.0 * i * 1.25 + 600.0 * i * 2.0 + 50.0 * o) / 1e6;
    s.anthropic
        .script([anthropic_reply(anthropic_usage.clone())]);
    let (st, h, body, _) = s
        .call(
            0,
            "/v1/chat/completions",
            &key,
            &chat("anthropic/claude-sonnet-4-5-20250929", "hi"),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        close(cost_header(&h), want_a),
        "{} vs {want_a}",
        cost_header(&h)
    );
    assert_eq!(body["usage"]["prompt_tokens"], 3100);

    // Streamed, and through /v1/messages.
    s.anthropic
        .script([anthropic_stream(anthropic_usage.clone(), 50)]);
    let mut req = chat("anthropic/claude-sonnet-4-5-20250929", "hi");
    req["stream"] = json!(true);
    let (_, _, _, text) = s.call(1, "/v1/chat/completions", &key, &req).await;
    assert!(close(stream_cost(&text), want_a), "{text}");
    s.anthropic.script([anthropic_reply(anthropic_usage)]);
    let (st, h, body, _) = s
        .call(
            0,
            "/v1/messages",
            &key,
            &json!({"model": "anthropic/claude-sonnet-4-5-20250929",
            "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(close(cost_header(&h), want_a), "{h:?}");

    // Embeddings: prompt tokens at the input rate ($0.02 per 1M).
    s.openai.script([Reply::json(
        json!({"object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "usage": {"prompt_tokens": 5000, "total_tokens": 5000}}),
    )]);
    let (st, h, body, _) = s
        .call(
            0,
            "/v1/embeddings",
            &key,
            &json!({"model": "openai/text-embedding-3-small", "input": "hi"}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(close(cost_header(&h), 5000.0 * 0.02 / 1e6), "{h:?}");

    let u = s.usage("").await;
    let t = &u["totals"];
    assert_eq!(t["cached_tokens"], 600 + 600 + 800 + 2000 * 3, "{u}");
    assert_eq!(t["cache_write_tokens"], 3000, "{u}");
    assert_eq!(t["reasoning_tokens"], 400, "{u}");
    let total = t["cost_usd"].as_f64().unwrap_or_default();
    let want_total = 2.0 * want + want_hit + 3.0 * want_a + 5000.0 * 0.02 / 1e6;
    assert!(close(total, want_total), "{total} vs {want_total}");
    // Each bucket splits its spend per meter, and the parts add up to it.
    let parts = |b: &Value| -> f64 {
        ["input", "cached_input", "cache_write", "output"]
            .iter()
            .map(|m| b["cost_breakdown"][m].as_f64().unwrap_or(f64::NAN))
            .sum()
    };
    assert!(close(parts(t), total), "{u}");
    assert!(
        t["cost_breakdown"]["cache_write"]
            .as_f64()
            .unwrap_or_default()
            > 0.0,
        "{u}"
    );
    for (model, b) in u["by_model"].as_object().into_iter().flatten() {
        let cost = b["cost_usd"].as_f64().unwrap_or(f64::NAN);
        assert!(close(parts(b), cost), "{model}: {b}");
    }
}

#[tokio::test]
async fn the_cache_control_of_parts_and_tools_reaches_anthropic() {
    let s = Setup::start(false, &[]).await;
    let (_, key) = s.key(json!({"name": "cc"})).await;
    s.anthropic.script([anthropic_reply(
        json!({"input_tokens": 1, "output_tokens": 1}),
    )]);
    let body = json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "question"}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}},
                   "cache_control": {"type": "ephemeral"}}]});
    let (st, _, b, _) = s.call(0, "/v1/chat/completions", &key, &body).await;
    assert_eq!(st, 200, "{b}");
    let sent = s.anthropic.requests().pop().expect("a request").json();
    let blocks = &sent["messages"][0]["content"];
    assert_eq!(
        blocks[0]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"}),
        "{sent}"
    );
    assert!(blocks[1].get("cache_control").is_none(), "{sent}");
    assert_eq!(
        sent["tools"][0]["cache_control"],
        json!({"type": "ephemeral"}),
        "{sent}"
    );
}

/// Every overspend path, against one gateway or two replicas on Redis.
async fn budgets_cannot_be_overspent(redis: bool) {
    let s = Setup::start(redis, &[]).await;
    let small = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});

    // n: 4 choices of 1,000 tokens reserve 4 x $0.0006; a budget of $0.002 refuses them and
    // takes one choice.
    let (_, key) = s
        .key(json!({"budget_usd": 0.002, "budget_period": "total"}))
        .await;
    let mut req = chat("openai/gpt-4o-mini", "hi");
    req["max_tokens"] = json!(1000);
    req["n"] = json!(4);
    let (st, _, body, _) = s.call(0, "/v1/chat/completions", &key, &req).await;
    assert_eq!(st, 429, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
    req["n"] = json!(1);
    s.openai.script([openai_reply(small.clone())]);
    let (st, _, body, _) = s.call(1, "/v1/chat/completions", &key, &req).await;
    assert_eq!(st, 200, "{body}");

    // No max_tokens: gpt-4o-mini may write 16,384 tokens ($0.0098); $0.005 does not cover it.
    let (_, key) = s
        .key(json!({"budget_usd": 0.005, "budget_period": "total"}))
        .await;
    let hits = s.openai.hits();
    let (st, _, body, _) = s
        .call(
            0,
            "/v1/chat/completions",
            &key,
            &chat("openai/gpt-4o-mini", "hi"),
        )
        .await;
    assert_eq!(st, 429, "{body}");
    assert_eq!(s.openai.hits(), hits, "refused before any upstream call");

    // Multi-key and dated id: both keys of OpenAI and `gpt-4o-2024-08-06` cost gpt-4o's rate.
    let (id, key) = s
        .key(json!({"budget_usd": 10.0, "budget_period": "total"}))
        .await;
    for i in 0..2 {
        s.openai.script([openai_reply(
            json!({"prompt_tokens": 1000, "completion_tokens": 100,
            "total_tokens": 1100}),
        )]);
        let mut req = chat("openai/gpt-4o-2024-08-06", "hi");
        req["max_tokens"] = json!(100);
        let (st, h, body, _) = s.call(i, "/v1/chat/completions", &key, &req).await;
        assert_eq!(st, 200, "{body}");
        let want = (1000.0 * GPT_4O.0 + 100.0 * GPT_4O.1) / 1e6;
        assert!(close(cost_header(&h), want), "{h:?}");
    }
    let auth: Vec<String> = s
        .openai
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert!(
        auth.iter().any(|a| a.ends_with("sk-one")) && auth.iter().any(|a| a.ends_with("sk-two")),
        "{auth:?}"
    );
    let u = s.usage(&format!("?key={id}")).await;
    let spent = u["totals"]["cost_usd"].as_f64().unwrap_or_default();
    assert!(
        close(spent, 2.0 * (1000.0 * GPT_4O.0 + 100.0 * GPT_4O.1) / 1e6),
        "{u}"
    );

    // Cut stream: two chunks, then the connection drops; the prompt and what streamed cost.
    let (id, key) = s
        .key(json!({"budget_usd": 10.0, "budget_period": "total"}))
        .await;
    let chunk = |t: &str| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]})
    };
    let cut = Reply::sse(&[
        &format!("data: {}\n\n", chunk("hello")),
        &format!("data: {}\n\n", chunk(" world")),
    ])
    .paced(Duration::from_millis(50), End::Reset);
    s.openai.script([cut]);
    let mut req = chat("openai/gpt-4o-mini", "hi");
    req["stream"] = json!(true);
    req["max_tokens"] = json!(100);
    let (st, _, _, text) = s.call(0, "/v1/chat/completions", &key, &req).await;
    assert_eq!(st, 200, "{text}");
    assert!(text.contains("hello"), "{text}");
    let u = s.usage(&format!("?key={id}")).await;
    assert_eq!(u["totals"]["requests"], 1, "{u}");
    assert!(
        u["totals"]["completion_tokens"]
            .as_u64()
            .unwrap_or_default()
            >= 2,
        "{u}"
    );
    assert!(
        u["totals"]["cost_usd"].as_f64().unwrap_or_default() > 0.0,
        "{u}"
    );

    // Cancel: the client leaves before the answer; a 499 with the prompt's cost.
    let (id, key) = s
        .key(json!({"budget_usd": 10.0, "budget_period": "total"}))
        .await;
    s.openai
        .script([openai_reply(small.clone()).after(Duration::from_secs(5))]);
    let url = s.gw(1).url("/v1/chat/completions");
    let mut req = chat("openai/gpt-4o-mini", "a prompt that the provider has read");
    req["max_tokens"] = json!(10);
    let call = tokio::spawn(async move {
        let r = http::Request::post(url)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"));
        send(r, req.to_string().into_bytes()).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.abort();
    let mut u = Value::Null;
    for _ in 0..50 {
        u = s.usage(&format!("?key={id}")).await;
        if u["totals"]["requests"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(u["totals"]["errors"], 1, "{u}");
    assert_eq!(u["totals"]["completion_tokens"], 0, "{u}");
    let prompt = u["totals"]["prompt_tokens"].as_u64().unwrap_or_default();
    assert!(prompt > 0, "{u}");
    let cost = u["totals"]["cost_usd"].as_f64().unwrap_or_default();
    assert!(close(cost, prompt as f64 * GPT_4O_MINI.0 / 1e6), "{u}");

    // Unpriced: recorded at 0 and flagged for a key without a budget, refused to a budgeted
    // key before any upstream call, on chat and on /v1/messages.
    let (id, free_key) = s.key(json!({"name": "no budget"})).await;
    s.openai.script([openai_reply(small)]);
    let (st, h, _, _) = s
        .call(
            0,
            "/v1/chat/completions",
            &free_key,
            &chat("openai/gpt-99-preview", "hi"),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(cost_header(&h), 0.0);
    let u = s.usage(&format!("?key={id}")).await;
    assert_eq!(u["totals"]["unpriced_requests"], 1, "{u}");
    let (_, key) = s
        .key(json!({"budget_usd": 10.0, "budget_period": "total"}))
        .await;
    let hits = s.openai.hits();
    let (st, _, body, _) = s
        .call(
            1,
            "/v1/chat/completions",
            &key,
            &chat("openai/gpt-99-preview", "hi"),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "model_unpriced", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("RATE_OVERRIDES"),
        "{body}"
    );
    let (st, _, body, _) = s
        .call(
            0,
            "/v1/messages",
            &key,
            &json!({"model": "openai/gpt-99-preview", "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("model_unpriced"),
        "{body}"
    );
    assert_eq!(s.openai.hits(), hits, "refused before any upstream call");
}

#[tokio::test]
async fn budgets_cannot_be_overspent_in_process() {
    budgets_cannot_be_overspent(false).await;
}

#[tokio::test]
async fn budgets_cannot_be_overspent_with_two_replicas_on_redis() {
    budgets_cannot_be_overspent(true).await;
}

/// A key whose requests really use 500 tokens gets 2 of them per minute under tpm=1000,
/// though each is admitted on an estimate of about 110.
async fn tpm_counts_real_tokens(redis: bool) {
    let s = Setup::start(redis, &[]).await;
    let (_, key) = s.key(json!({"tpm": 1000})).await;
    // `tpm` counts in fixed one-minute windows: start well inside one, so that the three
    // requests and their corrections share it.
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 60_000) as u64;
    if into > 45_000 {
        tokio::time::sleep(Duration::from_millis(60_100 - into)).await;
    }
    let real = json!({"prompt_tokens": 400, "completion_tokens": 100, "total_tokens": 500});
    let mut req = chat("openai/gpt-4o-mini", "hi");
    req["max_tokens"] = json!(100);
    for i in 0..2 {
        s.openai.script([openai_reply(real.clone())]);
        let (st, _, body, _) = s.call(i, "/v1/chat/completions", &key, &req).await;
        assert_eq!(st, 200, "request {i}: {body}");
        // The correction reaches Redis from a spawned task.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (st, _, body, _) = s.call(0, "/v1/chat/completions", &key, &req).await;
    assert_eq!(st, 429, "{body}");
}

#[tokio::test]
async fn tpm_counts_real_tokens_in_process() {
    tpm_counts_real_tokens(false).await;
}

#[tokio::test]
async fn tpm_counts_real_tokens_with_two_replicas_on_redis() {
    tpm_counts_real_tokens(true).await;
}

#[tokio::test]
async fn the_rate_table_in_use_is_served_with_its_date() {
    let s = Setup::start(
        false,
        &[("RATE_OVERRIDES", "openai/gpt-4o-mini=1/2/0.5".into())],
    )
    .await;
    let req = http::Request::get(s.gw(0).url("/admin/rates"))
        .header("authorization", format!("Bearer {MASTER}"));
    let (st, _, bytes) = send(req, Vec::new()).await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(v["date"], proxygate::catalog::RATES_DATE);
    assert_eq!(v["models"]["openai/gpt-4o-mini"]["input"], 1.0, "{v}");
    assert_eq!(
        v["models"]["anthropic/claude-sonnet-4-5"]["cache_write_1h"], 6.0,
        "{v}"
    );
    assert_eq!(
        v["models"]["openai/gpt-5"]["max_output_tokens"], 128000,
        "{v}"
    );
}
