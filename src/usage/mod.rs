//! Usage records and where they go: one [`UsageRecord`] per routed request, handed to
//! a [`UsageSink`] that makes it durable at once (an append to a local journal) and writes it to
//! the [`UsageStore`] in batches off the request path. `GET /v1/usage` reads the store.
//!
//! # Durability
//! A record is *acknowledged* when its line has been appended to the journal with `write(2)`,
//! which happens before the last byte of its response is handed to the client. From then on it
//! survives a crash of the process (`kill -9`): the bytes are in the kernel's page cache, and
//! the next start replays every journal segment into the store before serving. It does not
//! survive the loss of the machine itself unless `USAGE_FSYNC=true` (an `fsync` per record).
//! Writes to the store are idempotent on the record's id, so a replay never counts twice.

mod line;
mod memory;
mod record;
mod sink;
mod summary;

use std::future::Future;
use std::pin::Pin;

pub use memory::MemoryStore;
pub use record::{CostBreakdown, UsageRecord, now_ms};
#[cfg(test)]
pub(crate) use sink::tests::rec as test_record;
pub use sink::{Observer, SinkConfig, UsageSink};
pub use summary::{Bucket, TimeBucket, Totals, UsageQuery, UsageSummary, rfc3339_ms};

/// A boxed future, as the store trait returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A failure of the usage store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "usage store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Where usage records live: the in-process [`MemoryStore`], SQLite (the default) or Postgres
/// (`DATABASE_URL`), see [`crate::db`].
pub trait UsageStore: Send + Sync + 'static {
    /// Stores `records`; a record whose id is already stored is skipped.
    fn write<'a>(&'a self, records: &'a [UsageRecord]) -> StoreFuture<'a, ()>;

    /// Totals and breakdowns of the records `query` selects.
    fn summary<'a>(&'a self, query: &'a UsageQuery) -> StoreFuture<'a, UsageSummary>;

    /// A short name for logs (`sqlite`, `postgres`, `memory`).
    fn kind(&self) -> &'static str;
}
