//! ProxyGate: one OpenAI-compatible API in front of many LLM providers, built as a stack of
//! tower layers over a pooled hyper client.
//!
//! The stack, top to bottom: the HTTP edge ([`http`]) decodes an OpenAI request into a
//! canonical [`types::ChatRequest`]; the [`router`] resolves the model to deployments and
//! orders them; [`failover`] tries them in turn; [`router::Dispatch`] sends each attempt to
//! its deployment, whose own stack is a circuit [`breaker`] over per-attempt [`timeout`]s over
//! a provider adapter ([`providers`]) run by [`providers::Translate`] over the shared
//! [`client`]. [`Gateway`] composes it all from a [`Config`]; mount [`Gateway::router`] in an
//! axum app, or serve [`Gateway::chat_service`] from anything tower speaks.

//!
#![doc = include_str!("../docs/architecture.md")]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod access;
pub mod breaker;
pub mod cache;
pub mod catalog;
pub mod client;
pub mod config;
pub mod cost;
pub mod db;
pub mod deployment;
pub mod error;
pub mod failover;
pub mod gateway;
pub mod health;
pub mod http;
pub mod providers;
pub mod redact;
pub mod router;
pub mod shared;
pub mod stats;
pub mod telemetry;
pub mod timeout;
pub mod tokens;
pub mod traces;
pub mod types;
pub mod upstream_metrics;
pub mod usage;

#[cfg(test)]
mod test_util;

pub use breaker::BreakerLayer;
pub use cache::CacheLayer;
pub use config::Config;
pub use cost::CostLayer;
pub use error::{BuildError, GatewayError};
pub use failover::FailoverLayer;
pub use gateway::{Gateway, GatewayBuilder};
pub use router::{Dispatch, RouterLayer};
pub use timeout::TimeoutLayer;
