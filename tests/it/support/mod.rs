//! Test support: a loopback fake upstream ([`upstream`]), the gateway on a loopback port
//! ([`gateway`]), a small HTTP client ([`client`]) and SSE readers ([`sse`]).
#![allow(dead_code)] // not every test module uses every helper

pub mod client;
pub mod gateway;
pub mod sse;
pub mod upstream;

pub use client::{chat, get, post_json, post_raw, send};
pub use gateway::TestGateway;
pub use sse::{sse_chunks, sse_cut_chunks, sse_data};
pub use upstream::{End, FakeUpstream, Reply, split_at};
