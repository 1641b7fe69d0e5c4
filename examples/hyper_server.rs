//! Serves ProxyGate from a bare hyper server: the gateway's router is a tower service, so
//! hyper-util's `TowerToHyperService` glue is all it takes.
//!
//! ```text
//! cargo run --example hyper_server
//! curl localhost:8081/v1/chat/completions -H 'content-type: application/json' \
//!   -d '{"model":"mock/echo","messages":[{"role":"user","content":"hi"}]}'
//! ```

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = proxygate::Config::load(Default::default(), None)?;
    let gateway = proxygate::Gateway::new(config).await?;
    let service = TowerToHyperService::new(gateway.router());

    let addr = std::env::var("EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:8081".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            // HTTP/1.1 and HTTP/2 (prior knowledge) on the same port.
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
}
