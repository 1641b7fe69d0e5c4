use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use super::{StoreError, StoreFuture, UsageQuery, UsageRecord, UsageStore, UsageSummary};

/// Records kept in process, for tests and embeddings that need no file (`USAGE_DB_PATH=:memory:`).
/// Bounded: beyond `cap` records the oldest go.
#[derive(Debug)]
pub struct MemoryStore {
    cap: usize,
    records: Mutex<(VecDeque<UsageRecord>, HashSet<Arc<str>>)>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(100_000)
    }
}

impl MemoryStore {
    /// An empty store holding up to 100,000 records.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding up to `cap` records.
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            records: Mutex::new((VecDeque::new(), HashSet::new())),
        }
    }

    /// A copy of every stored record, oldest first.
    pub fn records(&self) -> Vec<UsageRecord> {
        self.records
            .lock()
            .map(|r| r.0.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn poisoned() -> StoreError {
    StoreError("memory store poisoned".into())
}

impl UsageStore for MemoryStore {
    fn write<'a>(&'a self, records: &'a [UsageRecord]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut all = self.records.lock().map_err(|_| poisoned())?;
            let (list, ids) = &mut *all;
            for r in records {
                if ids.insert(r.id.clone()) {
                    list.push_back(r.clone());
                }
                while list.len() > self.cap {
                    if let Some(old) = list.pop_front() {
                        ids.remove(&old.id);
                    }
                }
            }
            Ok(())
        })
    }

    fn summary<'a>(&'a self, query: &'a UsageQuery) -> StoreFuture<'a, UsageSummary> {
        Box::pin(async move {
            let all = self.records.lock().map_err(|_| poisoned())?;
            Ok(UsageSummary::from_records(query, all.0.iter()))
        })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_and_idempotent() {
        let s = MemoryStore::with_capacity(2);
        let r = |id: &str| {
            let mut r = crate::usage::sink::tests::rec(id, 1);
            r.id = id.into();
            r
        };
        s.write(&[r("a"), r("a"), r("b")]).await.unwrap();
        assert_eq!(s.records().len(), 2);
        s.write(&[r("c")]).await.unwrap();
        let ids: Vec<_> = s.records().iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, vec!["b", "c"]);
    }
}
