//! The floor proxy: the bare proxy plus the least work per request the product's contract
//! allows, each piece done the cheapest straightforward way.
//!
//! Per request it
//! 1. parses the client's JSON strictly into a small borrowed typed struct (`model` a string,
//!    `messages` an array of objects with a `role` from system, user, assistant, tool and
//!    developer and a `content` string or array, optional `max_tokens` and `temperature` in
//!    0..=2, nothing after the value) and splices the upstream's model name into the client's
//!    bytes (`groq/llama-3.1-8b-instant` becomes `llama-3.1-8b-instant`) instead of writing
//!    the body again;
//! 2. reads the upstream's `usage` with a struct that has that field only, and prices it at the
//!    gateway catalog's rates for the model;
//! 3. scans the answer for the provider key with an aho-corasick automaton before the client
//!    gets it;
//! 4. appends one JSON line per record to a journal file (append mode, one `write(2)`) before
//!    the answer goes out;
//! 5. queues the record for SQLite, which a task writes every 100 ms in one transaction as
//!    multi-row `INSERT ... ON CONFLICT (id) DO NOTHING` statements of 32 rows, into a
//!    database the product's own opener (`proxygate::db::Db::connect`) created and migrated,
//!    with the same connection pragmas.
//!
//! It runs on a runtime of its own (`bench-floor`) on the gateway's core, and its SQLite
//! connections' worker threads are named `bench-floor-sqlite-<n>` and started from that
//! runtime, so they inherit its core and their CPU is counted with it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::convert::Infallible;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

/// Prefix of the names of every thread the floor proxy runs on (its runtime's and its SQLite
/// connections').
pub const THREADS: &str = "bench-floor";

/// The provider prefix the floor routes; the rest of the model name goes upstream.
const PROVIDER: &str = "groq";

/// USD per token for `llama-3.1-8b-instant`, as the gateway's catalog prices it ($0.05 and
/// $0.08 per million, Groq's published rates: <https://groq.com/pricing>).
const PROMPT_RATE: f64 = 0.05e-6;
const COMPLETION_RATE: f64 = 0.08e-6;

/// How often queued records are written to SQLite, as the gateway's sink flushes.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Rows per SQLite statement, as the gateway's SQLite store writes them.
const CHUNK: usize = 32;

/// The journal's file name in the floor's state directory.
const JOURNAL: &str = "usage.jsonl";

// === 1. the client's request ===

/// The client's request as the floor checks it. Other fields pass through unread.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    /// Borrowed from the body unless it holds escapes.
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[allow(dead_code)]
    messages: Messages,
    #[allow(dead_code)]
    max_tokens: Option<u64>,
    temperature: Option<f64>,
}

/// `messages`: an array of [`Message`]s, checked and not kept.
struct Messages;

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Messages;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Messages, A::Error> {
                while seq.next_element::<Message>()?.is_some() {}
                Ok(Messages)
            }
        }
        d.deserialize_seq(V)
    }
}

/// One message: an object (not serde's array form of a struct) with a `role` and a `content`;
/// other fields are skipped.
struct Message;

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Field {
            Role,
            Content,
            #[serde(other)]
            Other,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Message;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
                let (mut role, mut content) = (false, false);
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Role if role => return Err(de::Error::duplicate_field("role")),
                        Field::Role => {
                            map.next_value::<Role>()?;
                            role = true;
                        }
                        Field::Content if content => {
                            return Err(de::Error::duplicate_field("content"));
                        }
                        Field::Content => {
                            map.next_value::<Content>()?;
                            content = true;
                        }
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if !role {
                    return Err(de::Error::missing_field("role"));
                }
                if !content {
                    return Err(de::Error::missing_field("content"));
                }
                Ok(Message)
            }
        }
        d.deserialize_map(V)
    }
}

const ROLES: &[&str] = &["system", "user", "assistant", "tool", "developer"];

/// A message's `role`: one of [`ROLES`], as a string.
struct Role;

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Role;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a role")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Role, E> {
                if ROLES.contains(&v) {
                    Ok(Role)
                } else {
                    Err(E::unknown_variant(v, ROLES))
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// A message's `content`: a string or an array (of parts, not looked into).
struct Content;

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of parts")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Content, E> {
                Ok(Content)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Content)
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks the client's body and returns the body for the upstream, with the provider prefix
/// cut from `model`, and the client's model name.
pub fn rewrite(body: &[u8]) -> Result<(Bytes, Box<str>), String> {
    // serde reads a struct from an array too; a request is an object.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err("the body is not a JSON object".into());
    }
    let req: ChatRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if let Some(t) = req.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(format!("temperature {t} is outside 0..=2"));
    }
    let upstream_model = req
        .model
        .strip_prefix(PROVIDER)
        .and_then(|m| m.strip_prefix('/'))
        .filter(|m| !m.is_empty())
        .ok_or_else(|| format!("model {:?} is not routed here", req.model))?;
    let cut = req.model.len() - upstream_model.len();
    // Where the parse borrowed the model from: the prefix is cut out of the client's bytes.
    let at = match &req.model {
        Cow::Borrowed(m) => m
            .as_ptr()
            .addr()
            .checked_sub(body.as_ptr().addr())
            .filter(|&at| {
                at.checked_add(m.len())
                    .and_then(|end| body.get(at..end))
                    .is_some_and(|b| b == m.as_bytes())
            }),
        Cow::Owned(_) => None,
    };
    let out = match at {
        Some(at) => {
            let mut out = Vec::with_capacity(body.len() - cut);
            out.extend_from_slice(&body[..at]);
            out.extend_from_slice(&body[at + cut..]);
            out
        }
        // The model held escapes: this rare body is written again.
        None => {
            let mut v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| e.to_string())?;
            if let Some(o) = v.as_object_mut() {
                o.insert("model".into(), upstream_model.into());
            }
            serde_json::to_vec(&v).map_err(|e| e.to_string())?
        }
    };
    Ok((Bytes::from(out), req.model.into_owned().into_boxed_str()))
}

// === 2. the upstream's usage ===

/// The upstream's answer: `usage` only, serde skips the rest.
#[derive(Deserialize)]
struct Answer {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// Prompt and completion tokens of an answer (0 and 0 without `usage`); `None` if the answer is
/// not a chat completion's JSON.
pub fn read_usage(answer: &[u8]) -> Option<(u64, u64)> {
    let a: Answer = serde_json::from_slice(answer).ok()?;
    Some(
        a.usage
            .map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens)),
    )
}

// === 3. the secret scan ===

/// An automaton over the provider key.
pub fn secrets(key: &str) -> Result<AhoCorasick, String> {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build([key])
        .map_err(|e| e.to_string())
}

/// `answer` with every secret replaced by `***`; `None` when it holds none.
pub fn scan(secrets: &AhoCorasick, answer: &[u8]) -> Option<Vec<u8>> {
    if !secrets.is_match(answer) {
        return None;
    }
    let mut out = Vec::with_capacity(answer.len());
    secrets.replace_all_with_bytes(answer, &mut out, |_, _, dst| {
        dst.extend_from_slice(b"***");
        true
    });
    Some(out)
}

// === 4. and 5. the record ===

/// One usage record, as journalled and stored.
struct Row {
    /// A UUIDv7 in its hyphenated form: time first, then bytes of the thread-local CSPRNG, as
    /// the gateway makes its record ids (its primary key grows at the right edge of the B-tree).
    id: [u8; 36],
    ts_ms: i64,
    model: Box<str>,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost_usd: f64,
    latency_ms: f64,
    status: u16,
}

fn record_id(ts_ms: i64) -> [u8; 36] {
    let random: [u8; 10] = rand::random();
    let mut id = [0u8; 36];
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(ts_ms).unwrap_or_default(), &random)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut id);
    id
}

/// The record's journal line, JSON and a newline, into `buf`.
fn journal_line(buf: &mut Vec<u8>, r: &Row) -> std::io::Result<()> {
    buf.clear();
    buf.extend_from_slice(b"{\"id\":\"");
    buf.extend_from_slice(&r.id);
    write!(
        buf,
        "\",\"ts_ms\":{},\"provider\":\"{PROVIDER}\",\"model\":",
        r.ts_ms
    )?;
    serde_json::to_writer(&mut *buf, &*r.model)?;
    writeln!(
        buf,
        ",\"prompt_tokens\":{},\"completion_tokens\":{},\"cost_usd\":{},\"latency_ms\":{},\"status\":{}}}",
        r.prompt_tokens, r.completion_tokens, r.cost_usd, r.latency_ms, r.status
    )
}

thread_local! {
    /// The journal line under construction, reused by every request on the thread.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

/// The `INSERT` for `rows` rows: the record's eight values bound, the columns that are the
/// same for every record of the floor written as literals.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO usage_records (id, ts_ms, endpoint, provider, model, prompt_tokens, completion_tokens, cached_tokens, estimated_tokens, cost_usd, latency_ms, status, attempts, stream, cache_hit) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,'chat','groq',?,?,?,0,0,?,?,?,1,0,0)");
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}

/// One transaction: full chunks of [`CHUNK`] rows, then the rest one row at a time, so that two
/// statements are ever prepared (and both stay cached).
async fn insert(pool: &SqlitePool, rows: &[Row]) -> Result<(), sqlx::Error> {
    static CHUNK_SQL: LazyLock<String> = LazyLock::new(|| insert_sql(CHUNK));
    static ONE_SQL: LazyLock<String> = LazyLock::new(|| insert_sql(1));
    let mut tx = pool.begin().await?;
    let chunks = rows.chunks_exact(CHUNK);
    let rest = chunks.remainder();
    for (sql, rows) in chunks
        .map(|c| (CHUNK_SQL.as_str(), c))
        .chain(rest.chunks(1).map(|c| (ONE_SQL.as_str(), c)))
    {
        let mut q = sqlx::query(sql);
        for r in rows {
            q = q
                .bind(std::str::from_utf8(&r.id).unwrap_or_default())
                .bind(r.ts_ms)
                .bind(&*r.model)
                .bind(r.prompt_tokens)
                .bind(r.completion_tokens)
                .bind(r.cost_usd)
                .bind(r.latency_ms)
                .bind(i32::from(r.status));
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await
}

// === the proxy ===

/// What every request handler shares.
struct Shared {
    client: proxygate::client::HttpClient,
    target: http::Uri,
    secrets: AhoCorasick,
    journal: File,
    queue: Mutex<Vec<Row>>,
    /// Journal appends and store writes that failed.
    failures: AtomicU64,
}

/// A flush request: the writer answers once what was queued before it is in SQLite.
type Flush = oneshot::Sender<Result<(), String>>;

/// The running floor proxy.
pub struct Floor {
    pub runtime: Runtime,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    pool: SqlitePool,
    flush: mpsc::Sender<Flush>,
    journal: PathBuf,
}

impl Floor {
    /// Starts the floor proxy in front of `upstream` on a runtime built by `runtime` (the
    /// gateway side's, pinned to the gateway's core), with its journal and database in `dir`
    /// (emptied first). `key` is the provider key its answers are scanned for.
    pub fn start(
        upstream: SocketAddr,
        key: &str,
        dir: &Path,
        runtime: Runtime,
    ) -> Result<Self, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let journal = dir.join(JOURNAL);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal)
            .map_err(|e| format!("{}: {e}", journal.display()))?;
        let db = dir.join("usage.db");
        let target: http::Uri = format!("http://{upstream}/v1/chat/completions")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let secrets = secrets(key)?;
        // Everything runs in a task on the runtime's own (pinned) thread: the threads sqlx
        // starts for its connections inherit that thread's core.
        let started = runtime.block_on(async move {
            let handle = tokio::spawn(async move {
                let pool = open_db(&db).await?;
                let shared = Arc::new(Shared {
                    client: proxygate::client::build_client(),
                    target,
                    secrets,
                    journal: file,
                    queue: Mutex::new(Vec::new()),
                    failures: AtomicU64::new(0),
                });
                let (flush, flushes) = mpsc::channel(1);
                tokio::spawn(writer(shared.clone(), pool.clone(), flushes));
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                tokio::spawn(serve(listener, shared.clone()));
                Ok::<_, String>((addr, shared, pool, flush))
            });
            handle.await.map_err(|e| e.to_string())?
        })?;
        let (addr, shared, pool, flush) = started;
        Ok(Self {
            runtime,
            addr,
            shared,
            pool,
            flush,
            journal,
        })
    }

    /// Writes what is queued to SQLite, then counts the rows stored and the journal's lines.
    pub fn flush_and_count(&self) -> Result<(u64, u64), String> {
        let flush = self.flush.clone();
        let pool = self.pool.clone();
        let rows = self.runtime.block_on(async move {
            tokio::spawn(async move {
                let (tx, rx) = oneshot::channel();
                flush
                    .send(tx)
                    .await
                    .map_err(|_| "the SQLite writer stopped".to_owned())?;
                rx.await
                    .map_err(|_| "the SQLite writer stopped".to_owned())??;
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM usage_records")
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        })?;
        let mut lines = 0u64;
        let mut file =
            File::open(&self.journal).map_err(|e| format!("{}: {e}", self.journal.display()))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        }
        Ok((u64::try_from(rows).unwrap_or_default(), lines))
    }

    /// Journal appends and store writes that failed so far.
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    pub fn stop(self) {
        self.runtime.shutdown_timeout(Duration::from_millis(200));
    }
}

/// Opens the database with the product's opener (which creates it, sets its pragmas and runs
/// the migrations), then the floor's own pool with the same pragmas and named connection
/// threads; fails if any pragma differs between the two.
async fn open_db(path: &Path) -> Result<SqlitePool, String> {
    let url = path.to_str().ok_or("the state directory is not UTF-8")?;
    let product = match proxygate::db::Db::connect(url).await {
        Ok(proxygate::db::Db::Sqlite(pool)) => pool,
        Ok(other) => return Err(format!("{url} opened as {}", other.kind())),
        Err(e) => return Err(e.to_string()),
    };
    let wanted = pragmas(&product).await?;
    product.close().await;
    // As `proxygate::db` opens SQLite.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("wal_autocheckpoint", "64")
        .busy_timeout(Duration::from_secs(5))
        .thread_name(|n| format!("{THREADS}-sqlite-{n}"));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| e.to_string())?;
    let got = pragmas(&pool).await?;
    if got != wanted {
        return Err(format!(
            "the floor's SQLite pragmas {got:?} differ from the gateway's {wanted:?}"
        ));
    }
    Ok(pool)
}

/// journal_mode, synchronous, wal_autocheckpoint and busy_timeout of a pool's connection.
async fn pragmas(pool: &SqlitePool) -> Result<(String, i64, i64, i64), String> {
    let err = |e: sqlx::Error| e.to_string();
    let int = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .map_err(err)
    };
    Ok((
        sqlx::query_scalar::<_, String>("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .map_err(err)?,
        int("PRAGMA synchronous").await?,
        int("PRAGMA wal_autocheckpoint").await?,
        int("PRAGMA busy_timeout").await?,
    ))
}

/// Writes the queue to SQLite every [`FLUSH_EVERY`], and at once when asked.
async fn writer(shared: Arc<Shared>, pool: SqlitePool, mut flushes: mpsc::Receiver<Flush>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Swapped with the queue, so neither regrows from empty.
    let mut batch = Vec::new();
    loop {
        let ack = tokio::select! {
            _ = tick.tick() => None,
            f = flushes.recv() => match f {
                Some(ack) => Some(ack),
                None => return,
            },
        };
        {
            let mut queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut *queue, &mut batch);
        }
        let result = if batch.is_empty() {
            Ok(())
        } else {
            insert(&pool, &batch).await.map_err(|e| e.to_string())
        };
        if result.is_err() {
            shared
                .failures
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        batch.clear();
        match ack {
            Some(ack) => {
                let _ = ack.send(result);
            }
            None => {
                if let Err(e) = result {
                    eprintln!("floor proxy: SQLite write failed: {e}");
                }
            }
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(&shared, req).await) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, Bytes::new());
    };
    // 1. The request, checked, with the model the upstream knows.
    let (body, model) = match rewrite(&body) {
        Ok(r) => r,
        Err(e) => return answer(StatusCode::BAD_REQUEST, e),
    };
    let mut up = Request::new(Full::new(body));
    *up.method_mut() = parts.method;
    *up.uri_mut() = shared.target.clone();
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        up.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    let (mut parts, bytes) = match shared.client.request(up).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            match body.collect().await {
                Ok(c) => (parts, c.to_bytes()),
                Err(_) => return answer(StatusCode::BAD_GATEWAY, Bytes::new()),
            }
        }
        Err(_) => return answer(StatusCode::BAD_GATEWAY, Bytes::new()),
    };
    // 2. Its usage and cost.
    let (prompt, completion) = if parts.status == StatusCode::OK {
        match read_usage(&bytes) {
            Some(u) => u,
            None => return answer(StatusCode::BAD_GATEWAY, Bytes::new()),
        }
    } else {
        (0, 0)
    };
    let cost_usd = prompt as f64 * PROMPT_RATE + completion as f64 * COMPLETION_RATE;
    // 3. No secret reaches the client.
    let bytes = match scan(&shared.secrets, &bytes) {
        None => bytes,
        Some(clean) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Bytes::from(clean)
        }
    };
    // 4. The record in the journal before the answer goes out.
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let row = Row {
        id: record_id(ts_ms),
        ts_ms,
        model,
        prompt_tokens: i64::try_from(prompt).unwrap_or(i64::MAX),
        completion_tokens: i64::try_from(completion).unwrap_or(i64::MAX),
        cost_usd,
        latency_ms: started.elapsed().as_secs_f64() * 1e3,
        status: parts.status.as_u16(),
    };
    let appended = LINE.with_borrow_mut(|line| {
        journal_line(line, &row)?;
        (&shared.journal).write_all(line)
    });
    if appended.is_err() {
        shared.failures.fetch_add(1, Ordering::Relaxed);
        return answer(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new());
    }
    // 5. Queued for SQLite.
    shared
        .queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(row);
    Response::from_parts(parts, Full::new(bytes))
}

/// Checks the floor's pieces on fixed inputs: the rewrite, what the parse rejects, the usage
/// read and the secret scan. `chat` is the bench's request and `completion` the fake's answer.
pub fn self_check(chat: &[u8], completion: &[u8], key: &str) -> Result<(), String> {
    let (out, model) = rewrite(chat)?;
    let want = String::from_utf8_lossy(chat).replacen(
        "\"model\":\"groq/llama-3.1-8b-instant\"",
        "\"model\":\"llama-3.1-8b-instant\"",
        1,
    );
    if &out[..] != want.as_bytes() || &*model != "groq/llama-3.1-8b-instant" {
        return Err(format!(
            "the rewrite gave {:?} for {model:?}",
            String::from_utf8_lossy(&out)
        ));
    }
    // With the model the upstream must get.
    let accepted: &[(&[u8], &str)] = &[
        (
            br#" {"model":"groq\/llama-3.1-8b-instant","messages":[{"role":"user","content":"hi","name":"a"}],"stream":false} "#,
            "llama-3.1-8b-instant",
        ),
        (
            br#"{"model":"groq/m","messages":[{"role":"developer","content":[{"type":"text","text":"hi"}]}],"temperature":2,"max_tokens":null}"#,
            "m",
        ),
        (br#"{"model":"groq/m","messages":[]}"#, "m"),
    ];
    for (body, want) in accepted {
        let (out, _) = rewrite(body)
            .map_err(|e| format!("{:?} was refused: {e}", String::from_utf8_lossy(body)))?;
        let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
        if v["model"] != *want {
            return Err(format!(
                "the rewrite of {:?} gave {v}",
                String::from_utf8_lossy(body)
            ));
        }
    }
    let refused: &[&[u8]] = &[
        br#"{"model":7,"messages":[]}"#,
        br#"{"model":"groq/m","messages":{}}"#,
        br#"{"model":"groq/m","messages":[["user","hi"]]}"#,
        br#"{"model":"groq/m","messages":[{"role":"robot","content":"hi"}]}"#,
        br#"{"model":"groq/m","messages":[{"role":"user","content":3}]}"#,
        br#"{"model":"groq/m","messages":[{"role":"user"}]}"#,
        br#"{"model":"groq/m","messages":[{"role":{"user":null},"content":"hi"}]}"#,
        br#"{"model":"groq/m","messages":[],"temperature":2.5}"#,
        br#"{"model":"groq/m","messages":[],"temperature":"1"}"#,
        br#"{"model":"groq/m","messages":[],"max_tokens":-1}"#,
        br#"{"model":"groq/m","messages":[]} x"#,
        br#"{"model":"groq/m","model":"groq/n","messages":[]}"#,
        br#"["groq/m",[]]"#,
        br#"{"model":"openai/m","messages":[]}"#,
        br#"{"messages":[]}"#,
    ];
    for body in refused {
        if rewrite(body).is_ok() {
            return Err(format!("{:?} was accepted", String::from_utf8_lossy(body)));
        }
    }
    if read_usage(completion) != Some((24, 8)) {
        return Err("the usage of the fake's answer was not read as 24 + 8 tokens".into());
    }
    let s = secrets(key)?;
    if scan(&s, completion).is_some() {
        return Err("the fake's answer was taken for a secret".into());
    }
    let leaky = format!("{{\"content\":\"the key is {key}.\"}}");
    match scan(&s, leaky.as_bytes()) {
        Some(clean) if clean == b"{\"content\":\"the key is ***.\"}" => {}
        other => return Err(format!("the scan of a leaked key gave {other:?}")),
    }
    let mut line = Vec::new();
    let row = Row {
        id: record_id(1_730_000_000_000),
        ts_ms: 1_730_000_000_000,
        model: "groq/\"m\"".into(),
        prompt_tokens: 24,
        completion_tokens: 8,
        cost_usd: 24.0 * PROMPT_RATE + 8.0 * COMPLETION_RATE,
        latency_ms: 0.25,
        status: 200,
    };
    journal_line(&mut line, &row).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&line).map_err(|e| e.to_string())?;
    if !line.ends_with(b"}\n") || v["model"] != "groq/\"m\"" || v["prompt_tokens"] != 24 {
        return Err(format!(
            "the journal line {:?} is not the record",
            String::from_utf8_lossy(&line)
        ));
    }
    Ok(())
}
