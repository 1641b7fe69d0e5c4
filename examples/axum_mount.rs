//! Mounts ProxyGate inside an existing axum app under `/llm`, next to the app's own routes.
//!
//! ```text
//! cargo run --example axum_mount
//! curl localhost:8080/llm/v1/chat/completions -H 'content-type: application/json' \
//!   -d '{"model":"mock/echo","messages":[{"role":"user","content":"hi"}]}'
//! ```

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Configuration from the environment, as the binary reads it (no env: the mock provider).
    let config = proxygate::Config::load(Default::default(), None)?;
    let gateway = proxygate::Gateway::new(config).await?;

    let app = Router::new()
        .route(
            "/",
            get(|| async { "my app; the LLM gateway is under /llm" }),
        )
        .nest("/llm", gateway.router());

    let addr = std::env::var("EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{addr} (gateway at /llm/v1/chat/completions)");
    axum::serve(listener, app).await?;
    Ok(())
}
