//! `deploy/` holds the deployment files, and they parse: the Kubernetes manifests with
//! the expected kinds and probes, the compose file with two replicas behind nginx plus Redis
//! and Postgres with health checks, the Prometheus scrape configs, and a Grafana dashboard
//! covering every metric the gateway exports.

use serde_yaml::Value;

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn documented_settings() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap()
}

#[test]
fn the_kubernetes_manifests_parse_with_the_expected_kinds() {
    let docs = docs(include_str!("../../deploy/k8s/proxygate.yaml"));
    let mut kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Secret",
            "Service"
        ]
    );
    for d in &docs {
        assert!(d["apiVersion"].is_string() && d["metadata"]["name"].is_string());
    }

    let deployment = find(&docs, "Deployment");
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/health", "{probe}");
    }
    assert!(
        container["resources"]["requests"]["cpu"].is_string(),
        "the HPA needs a CPU request"
    );
    let env_from: Vec<&str> = container["envFrom"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| {
            e["configMapRef"]["name"]
                .as_str()
                .or(e["secretRef"]["name"].as_str())
        })
        .collect();
    assert_eq!(env_from, ["proxygate-config", "proxygate-keys"]);
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/path"],
        "/metrics"
    );

    let service = find(&docs, "Service");
    assert_eq!(
        service["spec"]["selector"]["app"],
        pod["metadata"]["labels"]["app"]
    );
    let hpa = find(&docs, "HorizontalPodAutoscaler");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");

    // Every setting the ConfigMap and the Secret pass is one the gateway knows.
    let known = documented_settings();
    for kind in ["ConfigMap", "Secret"] {
        let data = find(&docs, kind);
        let map = data["data"]
            .as_mapping()
            .or(data["stringData"].as_mapping())
            .unwrap();
        for key in map.keys().filter_map(Value::as_str) {
            assert!(
                known.contains(&format!("{key}=")),
                "{kind} sets unknown {key}"
            );
        }
    }
}

#[test]
fn the_kubernetes_prometheus_config_scrapes_the_annotated_pods() {
    let docs = docs(include_str!("../../deploy/k8s/prometheus.yaml"));
    let cm = find(&docs, "ConfigMap");
    let inner: Value =
        serde_yaml::from_str(cm["data"]["prometheus.yml"].as_str().unwrap()).unwrap();
    let job = &inner["scrape_configs"][0];
    assert_eq!(job["job_name"], "proxygate");
    assert_eq!(job["kubernetes_sd_configs"][0]["role"], "pod");
}

#[test]
fn the_compose_file_runs_two_replicas_behind_nginx_with_redis_and_postgres() {
    let compose: Value = serde_yaml::from_str(include_str!("../../deploy/compose.yaml")).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    for name in ["gateway-1", "gateway-2", "nginx", "redis", "postgres"] {
        let s = &services[name];
        assert!(s.is_mapping(), "no {name} service");
        assert!(
            s["healthcheck"]["test"].is_sequence(),
            "{name} has no health check"
        );
    }
    let known = documented_settings();
    for name in ["gateway-1", "gateway-2"] {
        let env = services[name]["environment"].as_mapping().unwrap();
        for key in ["REDIS_URL", "DATABASE_URL", "HOST"] {
            assert!(env.contains_key(key), "{name} lacks {key}");
        }
        for key in env.keys().filter_map(Value::as_str) {
            assert!(
                known.contains(&format!("{key}=")),
                "{name} sets unknown {key}"
            );
        }
        let check = services[name]["healthcheck"]["test"].as_sequence().unwrap();
        assert!(
            check
                .last()
                .and_then(Value::as_str)
                .unwrap()
                .ends_with("/health")
        );
    }
    let nginx = include_str!("../../deploy/nginx.conf");
    assert!(nginx.contains("server gateway-1:3333") && nginx.contains("server gateway-2:3333"));
    assert!(
        nginx.contains("proxy_buffering off"),
        "SSE must not be buffered"
    );

    let prom: Value = serde_yaml::from_str(include_str!("../../deploy/prometheus.yml")).unwrap();
    let targets = &prom["scrape_configs"][0]["static_configs"][0]["targets"];
    assert_eq!(
        targets.as_sequence().map(Vec::len),
        Some(2),
        "both replicas scraped"
    );
}

#[test]
fn the_grafana_dashboard_shows_every_metric() {
    let dash: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana/proxygate.json")).unwrap();
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    for metric in [
        "proxygate_requests_total",
        "proxygate_request_duration_seconds",
        "proxygate_upstream_duration_seconds",
        "proxygate_time_to_first_token_seconds",
        "proxygate_tokens_total",
        "proxygate_cost_usd_total",
        "proxygate_circuit_state",
        "proxygate_failovers_total",
        "proxygate_cache_hits_total",
        "proxygate_inflight_requests",
        "proxygate_state_backend_degraded",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(metric)),
            "no panel shows {metric}"
        );
    }
}
