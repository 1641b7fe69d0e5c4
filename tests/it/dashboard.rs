//! The dashboard: `/admin/stats` counts what the gateway served,
//! shows circuits as the router sees them, never shows a secret, and needs the master key;
//! `/dashboard` serves an installable, same-origin PWA without it.

use crate::support::{FakeUpstream, Reply, TestGateway, chat, post_json, send};
use serde_json::{Value, json};

const GROQ: &str = "groq/llama-3.1-8b-instant";
const PROVIDER_KEY: &str = "gsk_planted_provider_key_7f3a9c";
const MASTER: &str = "pg-master-planted-42e1";

async fn start() -> (TestGateway, FakeUpstream) {
    // The upstream echoes the key it was sent in its error body, as some do.
    let up = FakeUpstream::start(Reply::status_json(
        500,
        json!({"error": {"message": format!("internal error for key {PROVIDER_KEY}")}}),
    ))
    .await;
    let gw = TestGateway::start(&[
        ("GROQ_BASE_URL", up.url("/openai/v1")),
        ("GROQ_API_KEY", PROVIDER_KEY.into()),
        ("PROXYGATE_MASTER_KEY", MASTER.into()),
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "2".into()),
        ("CIRCUIT_BREAKER_COOLDOWN_MS", "600000".into()),
    ])
    .await;
    (gw, up)
}

async fn admin(gw: &TestGateway, method: &str, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = http::Request::builder().method(method).uri(gw.url(path));
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let (status, _, body) = send(req, Vec::new()).await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains(PROVIDER_KEY),
        "provider key in {path}: {text}"
    );
    assert!(!text.contains(MASTER), "master key in {path}: {text}");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn chat_keyed(gw: &TestGateway, body: &Value) -> u16 {
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {MASTER}"));
    send(req, body.to_string().into_bytes()).await.0
}

fn circuit<'a>(stats: &'a Value, id: &str) -> &'a Value {
    stats["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["deployments"].as_array().into_iter().flatten())
        .find(|d| d["deployment"] == id)
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn stats_count_the_traffic_show_open_circuits_and_no_secret() {
    let (gw, up) = start().await;
    for i in 0..5 {
        assert_eq!(
            chat_keyed(&gw, &chat("mock/echo", &format!("hello {i}"))).await,
            200
        );
    }
    let mut streamed = chat("mock/echo", "a stream");
    streamed["stream"] = json!(true);
    assert_eq!(chat_keyed(&gw, &streamed).await, 200);
    // Two failures open groq's circuit; the third is refused without reaching it.
    assert_eq!(chat_keyed(&gw, &chat(GROQ, "x")).await, 502);
    assert_eq!(chat_keyed(&gw, &chat(GROQ, "x")).await, 502);
    assert_eq!(chat_keyed(&gw, &chat(GROQ, "x")).await, 503);
    assert_eq!(up.hits(), 2);

    // The master key guards the statistics.
    assert_eq!(admin(&gw, "GET", "/admin/stats", None).await.0, 401);
    assert_eq!(
        admin(&gw, "GET", "/admin/stats", Some("wrong")).await.0,
        401
    );

    let (status, s) = admin(&gw, "GET", "/admin/stats?window=1m", Some(MASTER)).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["window"], "1m");
    assert_eq!(s["window_secs"], 60);
    let t = &s["totals"];
    assert_eq!(t["requests"], 9, "{t}");
    assert_eq!(t["ok"], 6);
    assert_eq!(t["errors"], 3);
    assert!(t["rps"].as_f64().unwrap() > 0.0);
    assert!((t["error_rate"].as_f64().unwrap() - 3.0 / 9.0).abs() < 1e-9);
    assert!(t["tokens"].as_u64().unwrap() > 0);
    for p in ["latency_ms", "ttft_ms"] {
        for q in ["p50", "p95", "p99"] {
            assert!(s[p][q].as_f64().is_some_and(|v| v >= 0.0), "{p}.{q}: {s}");
        }
    }
    assert_eq!(s["latency_ms"]["count"], 6);
    assert_eq!(s["ttft_ms"]["count"], 1);
    assert_eq!(s["series"]["requests"].as_array().unwrap().len(), 60);
    assert_eq!(
        s["series"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        9
    );
    let mock = s["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "mock/echo")
        .expect("mock/echo row");
    assert_eq!(mock["provider"], "mock");
    assert_eq!(mock["requests"], 6);
    assert!(mock["completion_tokens"].as_u64().unwrap() > 0);
    assert!(mock["cost_usd"].is_number());
    assert!(
        s["by_provider"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["provider"] == "mock" && r["requests"] == 6)
    );
    let recent = s["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 9);
    assert_eq!(recent[0]["status"], 503, "newest first");
    assert_eq!(recent[0]["attempts"], 0);
    let ok = recent.iter().find(|r| r["status"] == 200).unwrap();
    for f in [
        "latency_ms",
        "cost_usd",
        "attempts",
        "model",
        "provider",
        "ts_ms",
    ] {
        assert!(!ok[f].is_null(), "{f} in {ok}");
    }
    assert!(
        recent
            .iter()
            .any(|r| r["stream"] == true && r["ttft_ms"].is_number())
    );
    assert!(recent.iter().all(|r| r.get("key_id").is_none()));

    // Circuits, as the router sees them.
    let groq = s["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "groq")
        .expect("groq listed");
    // One of groq's models is down, its others untouched.
    assert_eq!(groq["status"], "degraded");
    assert_eq!(circuit(&s, GROQ)["state"], "open");
    assert_eq!(circuit(&s, "mock/echo")["state"], "closed");

    // A reset through the admin API shows at once.
    let (status, _) = admin(
        &gw,
        "POST",
        &format!("/admin/circuits/{GROQ}/reset"),
        Some(MASTER),
    )
    .await;
    assert_eq!(status, 200);
    let (_, s) = admin(&gw, "GET", "/admin/stats", Some(MASTER)).await;
    assert_eq!(s["window"], "5m");
    assert_eq!(circuit(&s, GROQ)["state"], "closed");
}

#[tokio::test]
async fn a_bad_window_is_a_400_naming_it() {
    let (gw, _up) = start().await;
    for bad in ["2h", "0", "soon", "5"] {
        let (status, body) = admin(
            &gw,
            "GET",
            &format!("/admin/stats?window={bad}"),
            Some(MASTER),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("window"),
            "{body}"
        );
    }
    for good in ["1m", "5m", "15m", "1h", "90s"] {
        assert_eq!(
            admin(
                &gw,
                "GET",
                &format!("/admin/stats?window={good}"),
                Some(MASTER)
            )
            .await
            .0,
            200
        );
    }
}

async fn get(
    gw: &TestGateway,
    path: &str,
) -> (u16, std::collections::HashMap<String, String>, Vec<u8>) {
    send(http::Request::get(gw.url(path)), Vec::new()).await
}

/// Width and height from a PNG's IHDR.
fn png_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.len() < 24 || &b[..8] != b"\x89PNG\r\n\x1a\n" || &b[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(b[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(b[20..24].try_into().ok()?);
    Some((w, h))
}

#[tokio::test]
async fn the_dashboard_is_an_installable_same_origin_pwa_without_the_key() {
    let (gw, _up) = start().await;
    for path in ["/dashboard", "/dashboard/"] {
        let (status, h, body) = get(&gw, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(h["content-type"].starts_with("text/html"));
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains("<title>"));
        assert!(html.contains(r#"<link rel="manifest" href="/dashboard/manifest.webmanifest">"#));
        assert!(html.contains(r#"data-theme="dark""#), "dark by default");
        // Every asset the page names is on this origin.
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"));
        let csp = &h["content-security-policy"];
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
    }
    let (status, h, body) = get(&gw, "/dashboard/manifest.webmanifest").await;
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "application/manifest+json");
    let m: Value = serde_json::from_slice(&body).unwrap();
    assert!(m["name"].is_string());
    assert_eq!(m["start_url"], "/dashboard");
    assert_eq!(m["display"], "standalone");
    for size in [192u32, 512] {
        let icon = m["icons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["sizes"] == format!("{size}x{size}"))
            .expect("icon listed");
        assert_eq!(icon["type"], "image/png");
        let (status, h, png) = get(&gw, icon["src"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(h["content-type"], "image/png");
        assert_eq!(png_size(&png), Some((size, size)));
    }
    let (status, h, js) = get(&gw, "/dashboard/app.js").await;
    assert_eq!(status, 200);
    assert!(h["content-type"].starts_with("text/javascript"));
    let js = String::from_utf8(js).unwrap();
    assert!(js.contains("navigator.serviceWorker.register('/dashboard/sw.js'"));
    let (status, h, sw) = get(&gw, "/dashboard/sw.js").await;
    assert_eq!(status, 200);
    assert!(h["content-type"].starts_with("text/javascript"));
    assert_eq!(h["service-worker-allowed"], "/dashboard");
    let sw = String::from_utf8(sw).unwrap();
    assert!(!sw.contains("__ASSETS_VERSION__"), "versioned cache name");
    // Revalidation with the ETag answers 304.
    let etag = h["etag"].clone();
    let (status, _, body) = send(
        http::Request::get(gw.url("/dashboard/sw.js")).header("if-none-match", etag),
        Vec::new(),
    )
    .await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(get(&gw, "/dashboard/nope.js").await.0, 404);
    // Nothing of the dashboard's shell carries a secret either.
    for path in ["/dashboard", "/dashboard/app.js", "/dashboard/sw.js"] {
        let text = String::from_utf8_lossy(&get(&gw, path).await.2).into_owned();
        assert!(
            !text.contains(PROVIDER_KEY) && !text.contains(MASTER),
            "{path}"
        );
    }
    // The chat API still needs the key; the dashboard does not.
    assert_eq!(
        post_json(&gw.url("/v1/chat/completions"), &chat("mock/echo", "x"))
            .await
            .0,
        401
    );
}
