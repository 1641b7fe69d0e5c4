//! The journal and the batching writer behind [`UsageSink`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{StoreError, UsageRecord, UsageStore};
use crate::error::BuildError;
use crate::telemetry::names;

/// Records per store write (one transaction), and the queue length that flushes before the
/// timer. Under load the timer (`flush_every`) sets the pace: at 500, a sink taking 25,000
/// records a second wrote 50 transactions a second, each a round of the store's thread on the
/// gateway's core; at 4096 it writes 10, and the load bench's gateway CPU per request fell from
/// 43 to 40 µs.
const CHUNK: usize = 4096;

/// How a [`UsageSink`] keeps records before they reach the store.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    /// Journal directory; `None` keeps records only in memory until written (no crash safety).
    pub journal_dir: Option<PathBuf>,
    /// How often pending records are written to the store.
    pub flush_every: Duration,
    /// Records held in memory at most; beyond it they wait in the journal only.
    pub capacity: usize,
    /// `fsync` the journal after each record (survives power loss, costs a disk flush each).
    pub fsync: bool,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            journal_dir: None,
            flush_every: Duration::from_millis(100),
            capacity: 100_000,
            fsync: false,
        }
    }
}

/// A record observer (the dashboard's live statistics).
pub type Observer = Arc<dyn Fn(&UsageRecord) + Send + Sync>;

/// Takes usage records on the request path and gets them into the [`UsageStore`].
///
/// [`record`](Self::record) appends the record to the journal (one `write(2)`) and queues it;
/// a background task writes the queue to the store every `flush_every`, in batches, and then
/// deletes the journal segment it came from. Cheap to clone.
#[derive(Clone)]
pub struct UsageSink {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn UsageStore>,
    state: Mutex<State>,
    /// Serialises flushes (the writer task and explicit [`UsageSink::flush`] calls).
    flushing: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
    config: SinkConfig,
    observers: RwLock<Vec<Observer>>,
}

struct State {
    pending: Vec<UsageRecord>,
    journal: Option<Journal>,
    /// Records went to the journal but not to `pending` (the queue was full): the segment is
    /// read back from disk when it is flushed.
    overflowed: bool,
    /// Journal segments whose write to the store failed; retried from disk.
    retry: Vec<PathBuf>,
}

struct Journal {
    dir: PathBuf,
    seq: u64,
    file: File,
    bytes: u64,
    /// The last append failed, maybe halfway through a line.
    torn: bool,
    /// Appends failed in a row (across segments): the first is logged, and the recovery, not
    /// each one, so a full disk under load is two log lines and a metric, not a flood.
    failing: u64,
    /// Segment `seq + 1`, created ahead on the blocking pool so that a rotation, which runs
    /// with the queue locked, only swaps handles.
    spare: Option<File>,
    /// Held for the life of the sink so no other process shares the directory.
    _lock: File,
}

impl std::fmt::Debug for UsageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageSink")
            .field("store", &self.inner.store.kind())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("usage-{seq:012}.jsonl"))
}

fn segment_seq(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("usage-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// Every record of a segment. A line cut short (a crash or a full disk mid-write) is skipped
/// with one warning per segment; the complete lines before and after it are kept.
fn read_segment(path: &Path) -> Result<Vec<UsageRecord>, StoreError> {
    let bytes = std::fs::read(path)
        .map_err(|e| StoreError(format!("cannot read journal {}: {e}", path.display())))?;
    let mut out = Vec::new();
    let mut torn = 0usize;
    for line in bytes.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<UsageRecord>(line) {
            Ok(r) => out.push(r),
            Err(_) => torn += 1,
        }
    }
    if torn > 0 {
        tracing::warn!(
            journal = %path.display(),
            "skipped {torn} torn journal line(s); {} complete record(s) replayed",
            out.len()
        );
    }
    Ok(out)
}

async fn write_all(store: &dyn UsageStore, records: &[UsageRecord]) -> Result<(), StoreError> {
    for chunk in records.chunks(CHUNK) {
        store.write(chunk).await?;
    }
    Ok(())
}

impl UsageSink {
    /// Opens the sink: locks the journal directory, replays every segment a previous run left
    /// into `store`, and starts the writer task. Needs a tokio runtime.
    pub async fn open(store: Arc<dyn UsageStore>, config: SinkConfig) -> Result<Self, BuildError> {
        let journal = match &config.journal_dir {
            None => None,
            Some(dir) => Some(
                open_journal(&*store, dir)
                    .await
                    .map_err(BuildError::UsageJournal)?,
            ),
        };
        let inner = Arc::new(Inner {
            store,
            state: Mutex::new(State {
                pending: Vec::new(),
                journal,
                overflowed: false,
                retry: Vec::new(),
            }),
            flushing: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            config,
            observers: RwLock::new(Vec::new()),
        });
        tokio::spawn(run(
            Arc::downgrade(&inner),
            inner.wake.clone(),
            inner.config.flush_every,
        ));
        Ok(Self { inner })
    }

    /// A sink over `store` without a journal (tests, embeddings without a disk).
    pub async fn in_memory(store: Arc<dyn UsageStore>) -> Self {
        match Self::open(store, SinkConfig::default()).await {
            Ok(s) => s,
            Err(e) => unreachable!("a sink without a journal cannot fail to open: {e}"),
        }
    }

    /// The store records end up in.
    pub fn store(&self) -> &Arc<dyn UsageStore> {
        &self.inner.store
    }

    /// Calls `f` with every record from now on, on the request path (keep it cheap).
    pub fn observe(&self, f: Observer) {
        if let Ok(mut o) = self.inner.observers.write() {
            o.push(f);
        }
    }

    /// Acknowledges one record: appends it to the journal and queues it for the store.
    pub fn record(&self, record: UsageRecord) {
        if let Ok(observers) = self.inner.observers.read() {
            for f in observers.iter() {
                f(&record);
            }
        }
        // The line is made (outside the lock) only for a sink that journals.
        let line = match self.inner.config.journal_dir {
            None => None,
            Some(_) => {
                // A line is about 450 bytes: sized once instead of grown four times.
                let mut v = Vec::with_capacity(640);
                match super::line::write_record(&mut v, &record) {
                    Ok(()) => {
                        v.push(b'\n');
                        Some(v)
                    }
                    Err(e) => {
                        tracing::error!("usage record not serialisable: {e}");
                        return;
                    }
                }
            }
        };
        let Ok(mut state) = self.inner.state.lock() else {
            return;
        };
        let mut queued_in_journal = false;
        if let (Some(j), Some(line)) = (&mut state.journal, &line) {
            // After a failed append the file may end in part of a line: start a fresh one so
            // this record is not glued to the torn piece.
            let fresh = if j.torn {
                j.file.write_all(b"\n")
            } else {
                Ok(())
            };
            match fresh.and_then(|()| j.file.write_all(line)) {
                Ok(()) => {
                    j.torn = false;
                    if j.failing > 0 {
                        tracing::warn!(
                            journal = %j.dir.display(),
                            "usage journal appends work again after {} failed; those records were queued in memory only",
                            j.failing
                        );
                        j.failing = 0;
                    }
                    j.bytes += line.len() as u64;
                    queued_in_journal = true;
                    if self.inner.config.fsync
                        && let Err(e) = j.file.sync_data()
                    {
                        tracing::warn!("usage journal fsync failed: {e}");
                    }
                }
                Err(e) => {
                    // A full disk: the record stays in the in-memory queue below.
                    j.torn = true;
                    metrics::counter!(names::USAGE_STORE_ERRORS_TOTAL, "stage" => "journal")
                        .increment(1);
                    if j.failing == 0 {
                        tracing::error!(
                            journal = %j.dir.display(),
                            "usage journal append failed: {e}; records stay queued in memory until appends work again"
                        );
                    }
                    j.failing += 1;
                }
            }
        }
        if state.pending.len() < self.inner.config.capacity {
            state.pending.push(record);
        } else if queued_in_journal {
            state.overflowed = true;
        } else {
            metrics::counter!(names::USAGE_STORE_ERRORS_TOTAL, "stage" => "dropped").increment(1);
            tracing::warn!("usage queue full and no journal: a record was dropped");
        }
        let full = state.pending.len() >= CHUNK;
        drop(state);
        if full {
            self.inner.wake.notify_one();
        }
    }

    /// Writes everything acknowledged so far to the store (shutdown, tests).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }
}

impl Inner {
    async fn flush(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.flushing.lock().await;
        self.prepare_spare_segment().await;
        // Take the queue and start a new journal segment in one step, so the old segment holds
        // exactly what was taken (or more, when it overflowed).
        let (batch, segment, overflowed, retry) = {
            let Ok(mut state) = self.state.lock() else {
                return Err(StoreError("usage sink poisoned".into()));
            };
            // The next queue starts at the size this one reached, so it does not regrow from
            // empty under the lock on the request path.
            let next = Vec::with_capacity(state.pending.len().min(self.config.capacity));
            let batch = std::mem::replace(&mut state.pending, next);
            let overflowed = std::mem::take(&mut state.overflowed);
            let retry = std::mem::take(&mut state.retry);
            let segment = match &mut state.journal {
                Some(j) if j.bytes > 0 => match j.rotate() {
                    Ok(old) => Some(old),
                    Err(e) => {
                        tracing::warn!("usage journal rotation failed: {e}");
                        None
                    }
                },
                _ => None,
            };
            (batch, segment, overflowed, retry)
        };
        let mut result = Ok(());
        for path in retry {
            if let Err(e) = self.replay(&path).await {
                result = Err(e);
            }
        }
        let batch = match (&segment, overflowed) {
            (Some((path, _)), true) => read_segment(path).unwrap_or(batch),
            _ => batch,
        };
        match write_all(&*self.store, &batch).await {
            Ok(()) => {
                // Deleting the segment frees its page cache (`unlink` truncates it: about 80 µs
                // for the 170 kB of a tenth of a second at 3,800 requests a second) and dropping
                // the batch frees every record: both on the blocking pool, where the scheduler
                // can stop them for a request, instead of in one run of the runtime's thread.
                let removed = tokio::task::spawn_blocking(move || {
                    drop(batch);
                    match segment {
                        Some((path, file)) => {
                            drop(file);
                            std::fs::remove_file(&path).map_err(|e| (path, e))
                        }
                        None => Ok(()),
                    }
                })
                .await;
                match removed {
                    Ok(Ok(())) => {}
                    Ok(Err((path, e))) => {
                        tracing::warn!(journal = %path.display(), "cannot remove a written journal segment: {e}");
                    }
                    Err(e) => tracing::warn!("cannot remove a written journal segment: {e}"),
                }
            }
            Err(e) => {
                metrics::counter!(names::USAGE_STORE_ERRORS_TOTAL, "stage" => "store").increment(1);
                tracing::warn!(records = batch.len(), "{e}; will retry");
                if let Ok(mut state) = self.state.lock() {
                    match segment {
                        Some((path, _)) => state.retry.push(path),
                        // Without a journal the records wait in memory, bounded by capacity.
                        None => {
                            let room = self.config.capacity.saturating_sub(state.pending.len());
                            let mut keep: Vec<_> = batch.into_iter().take(room).collect();
                            keep.append(&mut state.pending);
                            state.pending = keep;
                        }
                    }
                }
                result = Err(e);
            }
        }
        result
    }

    /// Creates the journal's next segment on the blocking pool, unless it exists already:
    /// creating a file on ext4 took about 50 µs of the runtime's thread at each flush.
    async fn prepare_spare_segment(&self) {
        let next = match self.state.lock() {
            Ok(state) => match &state.journal {
                Some(j) if j.spare.is_none() => (j.seq + 1, segment_path(&j.dir, j.seq + 1)),
                _ => return,
            },
            Err(_) => return,
        };
        let (seq, path) = next;
        let opened = tokio::task::spawn_blocking(move || open_segment(&path)).await;
        let Ok(Ok(file)) = opened else {
            // The rotation opens the segment itself (and reports a failure).
            return;
        };
        if let Ok(mut state) = self.state.lock()
            && let Some(j) = &mut state.journal
            && j.seq + 1 == seq
        {
            j.spare = Some(file);
        }
    }

    async fn replay(&self, path: &Path) -> Result<(), StoreError> {
        let records = read_segment(path)?;
        match write_all(&*self.store, &records).await {
            Ok(()) => {
                let _ = std::fs::remove_file(path);
                Ok(())
            }
            Err(e) => {
                if let Ok(mut state) = self.state.lock() {
                    state.retry.push(path.to_owned());
                }
                Err(e)
            }
        }
    }
}

impl Journal {
    /// Starts segment `seq + 1` (the spare one when it was made ahead); returns the path and
    /// the handle of the one it closed, for the caller to close off the queue's lock.
    fn rotate(&mut self) -> std::io::Result<(PathBuf, File)> {
        let next = self.seq + 1;
        let file = match self.spare.take() {
            Some(f) => f,
            None => open_segment(&segment_path(&self.dir, next))?,
        };
        let old = segment_path(&self.dir, self.seq);
        let old_file = std::mem::replace(&mut self.file, file);
        self.seq = next;
        self.bytes = 0;
        self.torn = false;
        Ok((old, old_file))
    }
}

fn open_segment(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Locks `dir`, replays what an earlier run left there into `store`, opens a fresh segment.
async fn open_journal(store: &dyn UsageStore, dir: &Path) -> Result<Journal, String> {
    let fix = "set USAGE_JOURNAL_DIR to a writable directory of its own";
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create the usage journal {}: {e}; {fix}",
            dir.display()
        )
    })?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .map_err(|e| format!("cannot open {}: {e}; {fix}", dir.join(".lock").display()))?;
    lock.try_lock().map_err(|_| {
        format!(
            "the usage journal {} is in use by another gateway process; {fix}",
            dir.display()
        )
    })?;
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| segment_seq(&e.path()).map(|s| (s, e.path())))
        .collect();
    segments.sort();
    let mut replayed = 0usize;
    for (_, path) in &segments {
        let records = read_segment(path).map_err(|e| e.to_string())?;
        write_all(store, &records).await.map_err(|e| {
            format!(
                "cannot replay the usage journal {} into the {} store: {e}",
                path.display(),
                store.kind()
            )
        })?;
        replayed += records.len();
        std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    if replayed > 0 {
        tracing::info!(
            records = replayed,
            "replayed the usage journal of an earlier run"
        );
    }
    let seq = segments.last().map(|(s, _)| s + 1).unwrap_or(0);
    let path = segment_path(dir, seq);
    let file =
        open_segment(&path).map_err(|e| format!("cannot open {}: {e}; {fix}", path.display()))?;
    Ok(Journal {
        dir: dir.to_owned(),
        seq,
        file,
        bytes: 0,
        torn: false,
        failing: 0,
        spare: None,
        _lock: lock,
    })
}

/// The writer task: flushes every `flush_every`, or early when a batch is full. It holds the
/// sink only while flushing, so it ends (and the journal's lock goes) with the last sink.
async fn run(inner: Weak<Inner>, wake: Arc<Notify>, every: Duration) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = wake.notified() => {}
        }
        let Some(i) = inner.upgrade() else { return };
        let _ = i.flush().await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::types::Api;
    use crate::usage::{MemoryStore, UsageQuery};

    pub(crate) fn rec(id: &str, prompt: u64) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            ts_ms: 1_000,
            request_id: None,
            key_id: None,
            endpoint: Api::Chat,
            provider: "mock".into(),
            model: "mock/echo".into(),
            prompt_tokens: prompt,
            completion_tokens: 1,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            estimated_tokens: 0,
            cost_usd: 0.0,
            cost_breakdown: Default::default(),
            unpriced: false,
            latency_ms: 1.0,
            ttft_ms: None,
            status: 200,
            attempts: 1,
            stream: false,
            cache_hit: false,
        }
    }

    fn config(dir: &Path) -> SinkConfig {
        SinkConfig {
            journal_dir: Some(dir.to_owned()),
            flush_every: Duration::from_secs(3600),
            ..SinkConfig::default()
        }
    }

    #[tokio::test]
    async fn a_torn_line_is_skipped_and_the_lines_around_it_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let line = |r: UsageRecord| {
            let mut v = serde_json::to_vec(&r).unwrap();
            v.push(b'\n');
            v
        };
        let mut seg = line(rec("before", 1));
        let torn = line(rec("torn", 2));
        seg.extend_from_slice(&torn[..torn.len() / 2]);
        // What an append after a failed one writes: a fresh line first.
        seg.push(b'\n');
        seg.extend_from_slice(&line(rec("after", 3)));
        // A partial last line, cut inside a multi-byte character.
        let mut last = line(rec("last-\u{e9}\u{e9}", 4));
        last.truncate(last.len() - 12);
        seg.extend_from_slice(&last);
        std::fs::write(segment_path(dir.path(), 0), &seg).unwrap();
        let store = Arc::new(MemoryStore::new());
        let _sink = UsageSink::open(store.clone(), config(dir.path()))
            .await
            .unwrap();
        let ids: Vec<String> = store.records().iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, ["before", "after"]);
    }

    /// Puts `file` in place of the journal's current segment; returns the file it replaced.
    #[cfg(target_os = "linux")]
    fn swap_journal_file(sink: &UsageSink, file: File) -> File {
        let mut state = sink.inner.state.lock().unwrap();
        std::mem::replace(&mut state.journal.as_mut().unwrap().file, file)
    }

    /// A file that fails every write with ENOSPC, like a full disk.
    #[cfg(target_os = "linux")]
    fn dev_full() -> File {
        OpenOptions::new().write(true).open("/dev/full").unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_full_disk_keeps_the_record_queued_and_the_next_line_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let sink = UsageSink::open(store.clone(), config(dir.path()))
            .await
            .unwrap();
        let real = swap_journal_file(&sink, dev_full());
        sink.record(rec("on-a-full-disk", 1));
        {
            let mut state = sink.inner.state.lock().unwrap();
            assert_eq!(state.pending.len(), 1, "the record stays queued");
            let j = state.journal.as_mut().unwrap();
            assert!(j.torn);
            j.file = real;
        }
        sink.record(rec("disk-back", 2));
        sink.flush().await.unwrap();
        let ids: Vec<String> = store.records().iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, ["on-a-full-disk", "disk-back"]);
    }

    /// Log lines written through `tracing` while `f` runs, at any level.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || buf.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_full_disk_under_load_logs_once_and_once_more_when_it_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let sink = UsageSink::open(store.clone(), config(dir.path()))
            .await
            .unwrap();
        let real = swap_journal_file(&sink, dev_full());
        let full = logged(|| {
            for i in 0..50 {
                sink.record(rec(&format!("full-{i}"), 1));
            }
        });
        assert_eq!(full.matches("append failed").count(), 1, "{full}");
        swap_journal_file(&sink, real);
        let back = logged(|| {
            sink.record(rec("back-1", 1));
            sink.record(rec("back-2", 1));
        });
        assert_eq!(
            back.matches("work again after 50 failed").count(),
            1,
            "{back}"
        );
        assert_eq!(back.lines().count(), 1, "{back}");
        sink.flush().await.unwrap();
        assert_eq!(store.records().len(), 52);
    }

    #[tokio::test]
    async fn records_reach_the_store_on_flush_and_the_segment_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let sink = UsageSink::open(store.clone(), config(dir.path()))
            .await
            .unwrap();
        sink.record(rec("a", 3));
        sink.record(rec("b", 4));
        assert!(store.records().is_empty());
        sink.flush().await.unwrap();
        assert_eq!(store.records().len(), 2);
        let segments = || {
            let mut left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| segment_seq(&e.unwrap().path()))
                .collect();
            left.sort();
            left
        };
        assert_eq!(segments(), vec![1], "only the fresh, empty segment is left");
        // The next rotation goes to a segment made ahead of it, and deletes the one written.
        sink.record(rec("c", 5));
        sink.flush().await.unwrap();
        assert_eq!(store.records().len(), 3);
        assert_eq!(segments(), vec![2]);
        assert_eq!(
            std::fs::metadata(segment_path(dir.path(), 2))
                .unwrap()
                .len(),
            0
        );
    }

    #[tokio::test]
    async fn an_unflushed_journal_is_replayed_once_by_the_next_sink() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        {
            let sink = UsageSink::open(store.clone(), config(dir.path()))
                .await
                .unwrap();
            sink.record(rec("a", 3));
            sink.record(rec("b", 4));
            // Dropped without a flush: as after a crash.
        }
        // A torn last line, as a crash mid-append leaves.
        let seg = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"id\":\"c\",\"ts_").unwrap();
        drop(f);
        tokio::task::yield_now().await;
        let _sink = UsageSink::open(store.clone(), config(dir.path()))
            .await
            .unwrap();
        let ids: Vec<_> = store.records().iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        let s = store.summary(&UsageQuery::default()).await.unwrap();
        assert_eq!(s.totals.prompt_tokens, 7);
    }

    #[tokio::test]
    async fn a_second_sink_on_the_same_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn UsageStore> = Arc::new(MemoryStore::new());
        let _a = UsageSink::open(store.clone(), config(dir.path()))
            .await
            .unwrap();
        let e = UsageSink::open(store, config(dir.path()))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, BuildError::UsageJournal(m) if m.contains("USAGE_JOURNAL_DIR")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn overflow_beyond_capacity_is_read_back_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let sink = UsageSink::open(
            store.clone(),
            SinkConfig {
                capacity: 2,
                ..config(dir.path())
            },
        )
        .await
        .unwrap();
        for i in 0..5 {
            sink.record(rec(&format!("r{i}"), 1));
        }
        sink.flush().await.unwrap();
        assert_eq!(store.records().len(), 5);
    }

    struct Failing(std::sync::atomic::AtomicBool, MemoryStore);

    impl UsageStore for Failing {
        fn write<'a>(&'a self, records: &'a [UsageRecord]) -> super::super::StoreFuture<'a, ()> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                return Box::pin(async { Err(StoreError("down".into())) });
            }
            self.1.write(records)
        }
        fn summary<'a>(
            &'a self,
            q: &'a UsageQuery,
        ) -> super::super::StoreFuture<'a, super::super::UsageSummary> {
            self.1.summary(q)
        }
        fn kind(&self) -> &'static str {
            "failing"
        }
    }

    #[tokio::test]
    async fn a_failed_store_write_is_retried_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Failing(true.into(), MemoryStore::new()));
        let sink = UsageSink::open(store.clone(), config(dir.path()))
            .await
            .unwrap();
        sink.record(rec("a", 1));
        assert!(sink.flush().await.is_err());
        sink.record(rec("b", 1));
        store.0.store(false, std::sync::atomic::Ordering::SeqCst);
        sink.flush().await.unwrap();
        let mut ids: Vec<_> = store.1.records().iter().map(|r| r.id.to_string()).collect();
        ids.sort();
        assert_eq!(ids, vec!["a", "b"]);
    }
}
