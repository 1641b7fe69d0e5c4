//! The router over a registry built from settings: plans keep to the endpoint's models,
//! follow the priority and the model chain, leave open and cooling circuits out, and never
//! fall back to a model the caller may not use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proxygate::GatewayError;
use proxygate::access::{Grant, KeySpec, Keys, MemoryKeyStore};
use proxygate::catalog::Catalog;
use proxygate::config::Config;
use proxygate::deployment::Routed;
use proxygate::health::{BreakerConfig, Permit};
use proxygate::router::{Registry, RouterLayer};
use proxygate::types::{ChatReply, ChatRequest};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready_ok};
use tower::{Layer, ServiceExt};
use tower_test::mock;

fn layer(pairs: &[(&str, &str)]) -> (RouterLayer, Arc<Registry>) {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let config = Config::from_env(&m, Catalog::default()).unwrap();
    let registry = Arc::new(
        Registry::new(
            &config.providers,
            Catalog::default(),
            &proxygate::client::build_client(),
        )
        .unwrap(),
    );
    (
        RouterLayer::new(registry.clone(), config.router_config()),
        registry,
    )
}

const THREE: &[(&str, &str)] = &[
    ("GROQ_API_KEY", "g"),
    ("TOGETHER_API_KEY", "t"),
    ("CEREBRAS_API_KEY", "c"),
];

fn open(registry: &Registry, id: &str) {
    let d = registry.deployment(id).unwrap();
    let cfg = BreakerConfig::default().with_threshold(1);
    Permit::acquire(d.state(), &cfg, Instant::now())
        .unwrap()
        .fail(&cfg, Instant::now());
}

/// Routes `model` and returns the plan the inner service received.
async fn plan_of(layer: &RouterLayer, model: &str) -> Result<Vec<String>, GatewayError> {
    let req = ChatRequest {
        model: model.into(),
        ..Default::default()
    };
    plan_for(layer, req).await
}

/// Routes `req` and returns the plan the inner service received.
async fn plan_for(layer: &RouterLayer, req: ChatRequest) -> Result<Vec<String>, GatewayError> {
    let (svc, mut handle) = mock::pair::<ChatRequest, ChatReply>();
    let mut svc = mock::Spawn::new(layer.layer(svc.map_err(GatewayError::from)));
    assert_ready_ok!(svc.poll_ready());
    let call = svc.call(req);
    let next = futures_util::FutureExt::now_or_never(handle.next_request()).flatten();
    let Some((req, _respond)) = next else {
        return Err(call.await.unwrap_err());
    };
    let plan = req.ctx.plan().unwrap();
    assert_eq!(req.ctx.target(), plan.first());
    assert_eq!(req.ctx.attempt, 1);
    Ok(plan.iter().map(|d| d.id().to_string()).collect())
}

#[tokio::test(start_paused = true)]
async fn plans_keep_to_the_models_of_the_endpoint() {
    let (layer, _) = layer(&[
        ("OPENAI_API_KEY", "o"),
        ("AZURE_OPENAI_API_KEY", "a"),
        ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
        (
            "AZURE_OPENAI_DEPLOYMENTS",
            "gpt-4o-mini=mini,text-embedding-3-small=emb",
        ),
    ]);
    let embedding = |model: &str| {
        let emb: proxygate::types::EmbeddingRequest =
            serde_json::from_value(serde_json::json!({"model": model, "input": "x"})).unwrap();
        let mut req = ChatRequest {
            model: model.into(),
            ..Default::default()
        };
        req.ctx.embedding = Some(Arc::new(emb));
        req
    };
    let plan = plan_for(&layer, embedding("text-embedding-3-small"))
        .await
        .unwrap();
    assert_eq!(
        plan,
        [
            "openai/text-embedding-3-small",
            "azure/text-embedding-3-small"
        ]
    );
    let err = plan_for(&layer, embedding("gpt-4o-mini"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    assert!(err.to_string().contains("chat model"), "{err}");
    let err = plan_of(&layer, "openai/text-embedding-3-small")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/v1/embeddings"), "{err}");
    // Models outside the catalog may serve either.
    assert!(
        plan_for(&layer, embedding("openai/my-embedder"))
            .await
            .is_ok()
    );
    assert!(plan_of(&layer, "openai/my-chat").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn plan_is_ordered_by_priority() {
    let mut pairs = THREE.to_vec();
    pairs.push(("PROVIDER_PRIORITY", "cerebras,groq"));
    let (layer, _) = layer(&pairs);
    let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
    assert_eq!(
        plan,
        [
            "cerebras/llama3.1-8b",
            "groq/llama-3.1-8b-instant",
            "together/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn open_circuits_are_left_out_of_the_plan() {
    let (layer, registry) = layer(THREE);
    open(&registry, "groq/llama-3.1-8b-instant");
    let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
    assert_eq!(plan.len(), 2);
    assert!(!plan.iter().any(|id| id.starts_with("groq/")));
}

#[tokio::test(start_paused = true)]
async fn every_circuit_open_fails_fast_with_the_time_to_the_next_probe() {
    let (layer, registry) = layer(&[("GROQ_API_KEY", "g"), ("CEREBRAS_API_KEY", "c")]);
    open(&registry, "groq/llama-3.1-8b-instant");
    tokio::time::advance(Duration::from_secs(10)).await;
    open(&registry, "cerebras/llama3.1-8b");
    let (svc, mut handle) = mock::pair::<ChatRequest, ChatReply>();
    let mut svc = mock::Spawn::new(layer.layer(svc.map_err(GatewayError::from)));
    assert_ready_ok!(svc.poll_ready());
    let req = ChatRequest {
        model: "llama-3.1-8b".into(),
        ..Default::default()
    };
    let err = svc.call(req).await.unwrap_err();
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    // groq's cool-down (30 s) ends first.
    assert_eq!(err.retry_after(), Some(Duration::from_secs(20)));
    assert_pending!(handle.poll_request());
}

#[tokio::test(start_paused = true)]
async fn cooling_deployments_are_skipped_until_the_retry_after_passes() {
    let (layer, registry) = layer(THREE);
    let d = registry.deployment("groq/llama-3.1-8b-instant").unwrap();
    d.state()
        .circuit()
        .cool_until(Instant::now() + Duration::from_secs(3));
    let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
    assert!(
        !plan.iter().any(|p| p == "groq/llama-3.1-8b-instant"),
        "{plan:?}"
    );
    // Alone, it is refused unasked with a 429 saying how long is left.
    let err = plan_of(&layer, "groq/llama-3.1-8b-instant")
        .await
        .unwrap_err();
    assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    tokio::time::advance(Duration::from_secs(3)).await;
    let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
    assert_eq!(plan[0], "groq/llama-3.1-8b-instant");
}

#[tokio::test(start_paused = true)]
async fn model_chain_appends_the_next_models() {
    let (layer, _) = layer(&[
        ("GROQ_API_KEY", "g"),
        ("OPENAI_API_KEY", "o"),
        (
            "PROVIDER_PRIORITY",
            "llama-3.1-8b,gpt-4o-mini,claude-3.5-sonnet",
        ),
    ]);
    let plan = plan_of(&layer, "llama-3.1-8b").await.unwrap();
    // claude-3.5-sonnet has no configured provider: the chain skips it.
    assert_eq!(plan, ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]);
    let plan = plan_of(&layer, "gpt-4o-mini").await.unwrap();
    assert_eq!(plan, ["openai/gpt-4o-mini"]);
}

#[tokio::test(start_paused = true)]
async fn a_key_never_falls_back_to_a_model_it_may_not_use() {
    let (layer, _) = layer(&[
        ("GROQ_API_KEY", "g"),
        ("OPENAI_API_KEY", "o"),
        ("PROVIDER_PRIORITY", "llama-3.1-8b,gpt-4o-mini"),
    ]);
    let keyed = |models: &str| {
        let keys = Keys::new(Arc::new(MemoryKeyStore::new()));
        let spec: KeySpec = serde_json::from_str(&format!(r#"{{"models":{models}}}"#)).unwrap();
        async move {
            let (key, _) = keys.create(spec).await.unwrap();
            let mut req = ChatRequest {
                model: "llama-3.1-8b".into(),
                ..Default::default()
            };
            req.ctx.access = Some(Arc::new(Grant::new(Some(Arc::new(key)))));
            req
        }
    };
    let plan = plan_for(&layer, keyed(r#"["groq/*"]"#).await)
        .await
        .unwrap();
    assert_eq!(plan, ["groq/llama-3.1-8b-instant"]);
    let plan = plan_for(&layer, keyed(r#"["groq/*","openai/*"]"#).await)
        .await
        .unwrap();
    assert_eq!(plan, ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]);
    let plan = plan_for(&layer, keyed(r#"["llama-3.1-8b","gpt-4o-mini"]"#).await)
        .await
        .unwrap();
    assert_eq!(plan, ["groq/llama-3.1-8b-instant", "openai/gpt-4o-mini"]);
}

#[tokio::test(start_paused = true)]
async fn round_robin_turns_per_request() {
    let mut pairs = THREE.to_vec();
    pairs.push(("ROUTING_STRATEGY", "round-robin"));
    let (layer, _) = layer(&pairs);
    let mut firsts = Vec::new();
    for _ in 0..3 {
        firsts.push(plan_of(&layer, "llama-3.1-8b").await.unwrap()[0].clone());
    }
    firsts.sort();
    firsts.dedup();
    assert_eq!(firsts.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn unknown_models_fail_without_calling_inner() {
    let (layer, _) = layer(&[]);
    let err = plan_of(&layer, "gpt-9").await.unwrap_err();
    assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
}

fn registry(pairs: &[(&str, &str)]) -> Registry {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let config = Config::from_env(&m, Catalog::default()).unwrap();
    Registry::new(
        &config.providers,
        Catalog::default(),
        &proxygate::client::build_client(),
    )
    .unwrap()
}

#[tokio::test]
async fn bare_names_resolve_to_every_configured_provider() {
    let r = registry(&[("GROQ_API_KEY", "g"), ("CEREBRAS_API_KEY", "c")]);
    let ids: Vec<String> = r
        .resolve("llama-3.1-8b")
        .unwrap()
        .iter()
        .map(|d| d.id().to_string())
        .collect();
    assert_eq!(ids, ["groq/llama-3.1-8b-instant", "cerebras/llama3.1-8b"]);
}

#[tokio::test]
async fn unknown_and_unconfigured_models_say_what_to_do() {
    let r = registry(&[]);
    let e = r.resolve("gpt-9").unwrap_err();
    assert_eq!(e.status(), http::StatusCode::NOT_FOUND);
    let e = r.resolve("groq/llama-3.1-8b-instant").unwrap_err();
    assert!(e.to_string().contains("GROQ_API_KEY"), "{e}");
    let e = r.resolve("gpt-4o-mini").unwrap_err();
    assert!(e.to_string().contains("OPENAI_API_KEY"), "{e}");
}

#[tokio::test]
async fn several_keys_make_several_deployments() {
    let r = registry(&[("GROQ_API_KEY", "a,b")]);
    let ids: Vec<String> = r
        .resolve("groq/any-model")
        .unwrap()
        .iter()
        .map(|d| d.id().to_string())
        .collect();
    assert_eq!(ids, ["groq/any-model", "groq#2/any-model"]);
    assert!(r.deployment("groq#2/any-model").is_some());
}
