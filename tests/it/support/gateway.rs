//! The gateway on a loopback port, configured from a map of settings (never the process
//! environment, so tests in one process do not see each other's settings).

use std::collections::HashMap;

use tokio::net::TcpListener;

/// A running gateway on a loopback port.
pub struct TestGateway {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The gateway.
    pub gateway: proxygate::Gateway,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestGateway {
    /// Starts a gateway configured by `env` pairs (as environment variables would).
    pub async fn start(env: &[(&str, String)]) -> Self {
        let mut map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        // Tests share the working directory: usage stays in memory unless a test asks.
        if !map.contains_key("USAGE_DB_PATH") && !map.contains_key("DATABASE_URL") {
            map.insert("USAGE_DB_PATH".into(), ":memory:".into());
        }
        let config = proxygate::Config::from_env(&map, proxygate::catalog::Catalog::default())
            .expect("valid test config");
        Self::with_config(config).await
    }

    /// Starts a gateway from a config file and `flags` (as command-line flags would be given;
    /// they also hold the variables the file's `api_key_env` names). It can be reloaded from
    /// the file.
    pub async fn from_file(path: &std::path::Path, flags: &[(&str, String)]) -> Self {
        let mut map: HashMap<String, String> = flags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        if !map.contains_key("USAGE_DB_PATH") && !map.contains_key("DATABASE_URL") {
            map.insert("USAGE_DB_PATH".into(), ":memory:".into());
        }
        let config =
            proxygate::Config::load(map, Some(path.to_owned())).expect("valid test config");
        Self::with_config(config).await
    }

    /// Starts a gateway from a validated configuration.
    pub async fn with_config(config: proxygate::Config) -> Self {
        let gateway = proxygate::Gateway::new(config)
            .await
            .expect("gateway builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = gateway.router();
        // As the binary does: small SSE events leave at once, not after Nagle's delay.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}"),
            gateway,
            task,
        }
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
