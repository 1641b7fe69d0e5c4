//! ProxyGate's integration tests, built as one binary: the gateway on loopback against fake
//! upstreams ([`support`]), the provider conformance table ([`conformance`]), each provider's
//! own quirks, and the built `proxygate` binary run as a process.
//!
//! Every gateway here is configured from its own map of settings, never from the process
//! environment, and keeps its usage in memory unless a test gives it a file, so tests running
//! side by side in this one process do not see each other's state. The metrics recorder is
//! process-wide: tests that read `/metrics` check for series and increases, never exact totals.

mod support;

mod access;
mod ai21;
mod anthropic;
mod azure;
mod billed_failures;
mod binary;
mod cache;
mod cohere;
mod config_docs;
mod conformance;
mod dashboard;
mod deploy;
mod deployments;
mod embeddings;
mod fuzz;
mod gemini;
mod layering;
mod leaks;
mod messages;
mod money;
mod openai_compat;
mod passthrough;
mod puter;
mod reasoning;
mod resilience;
mod responses;
mod responses_azure;
mod responses_edge;
mod router;
mod safety;
mod scale;
mod traces;
mod usage;
