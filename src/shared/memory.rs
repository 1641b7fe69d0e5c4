use std::time::Duration;

use bytes::Bytes;

use super::StateBackend;

/// State in this process only: the cache is a bounded moka cache (TinyLFU admission, LRU
/// eviction, weighed by the bytes of each answer), circuits and latency live in each
/// deployment's own state.
#[derive(Clone)]
pub struct InProcess {
    cache: moka::sync::Cache<String, Bytes>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .finish()
    }
}

impl InProcess {
    /// A cache of at most `max_bytes` of answers (keys included), each kept for `ttl`.
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Bytes| {
                    u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
        }
    }
}

impl StateBackend for InProcess {
    fn kind(&self) -> &'static str {
        "in-process"
    }

    fn cache_local(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key)
    }

    fn cache_put(&self, key: String, value: Bytes) {
        self.cache.insert(key, value);
    }

    fn cache_usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let cache = InProcess::new(10_000, Duration::from_secs(60));
        for i in 0..1_000 {
            cache.cache_put(format!("key-{i:04}"), Bytes::from(vec![b'x'; 200]));
        }
        let (entries, bytes) = cache.cache_usage();
        assert!(bytes <= 10_000, "{bytes} bytes held");
        assert!(entries <= 10_000 / 208 + 1, "{entries} entries held");
        assert!(entries > 0);
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = InProcess::new(10_000, Duration::from_millis(1));
        cache.cache_put("k".into(), Bytes::from_static(b"v"));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(cache.cache_local("k"), None);
    }
}
