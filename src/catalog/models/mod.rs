//! The built-in provider lines, grouped by wire format: each file is one adapter's providers,
//! their models and their list prices.

pub mod ai21;
pub mod anthropic;
pub mod azure;
pub mod cohere;
pub mod gemini;
pub mod mock;
pub mod openai_compat;
pub mod puter;
