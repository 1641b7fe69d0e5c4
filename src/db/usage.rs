//! [`UsageStore`] over SQL: batched idempotent inserts and `GROUP BY` summaries.

use std::collections::BTreeMap;

use sqlx::{Row, postgres::PgRow, sqlite::SqliteRow};

use super::Db;
use crate::usage::{
    StoreError, StoreFuture, TimeBucket, Totals, UsageQuery, UsageRecord, UsageStore, UsageSummary,
    rfc3339_ms,
};

/// Usage records in SQLite or Postgres.
#[derive(Clone, Debug)]
pub struct SqlUsageStore {
    db: Db,
}

impl SqlUsageStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The pool.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// Rows per SQLite statement: a batch goes as full chunks of this many rows and one statement
/// for the rest, so the per-statement overhead is paid once per 32 rows or fewer. That makes
/// at most 32 distinct statements, each parsed once and kept in sqlx's statement cache (100
/// by default).
const SQLITE_CHUNK: usize = 32;

/// The `INSERT` for `rows` rows. Anonymous `?` placeholders: SQLite finds a numbered one
/// (`?N`) by a linear scan, so binding 576 of them cost a quadratic 5,000 steps per row.
fn sqlite_insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO usage_records (id, ts_ms, request_id, key_id, endpoint, provider, model, prompt_tokens, completion_tokens, cached_tokens, estimated_tokens, cost_usd, latency_ms, ttft_ms, status, attempts, stream, cache_hit, cache_write_tokens, reasoning_tokens, unpriced, cost_input, cost_cached_input, cost_cache_write, cost_output) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..25 {
            if c > 0 {
                sql.push(',');
            }
            sql.push('?');
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}

/// SQLite: one transaction per batch, multi-row statements (cached per size).
async fn insert_sqlite(pool: &sqlx::SqlitePool, records: &[UsageRecord]) -> Result<(), StoreError> {
    // The statement for n rows at index n - 1.
    static SQL: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (1..=SQLITE_CHUNK).map(sqlite_insert_sql).collect());
    let err = |e: sqlx::Error| StoreError(e.to_string());
    let mut tx = pool.begin().await.map_err(err)?;
    for rows in records.chunks(SQLITE_CHUNK) {
        let Some(sql) = SQL.get(rows.len() - 1) else {
            continue;
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
        for r in rows {
            // The record's shared strings go in as they are: bound by reference, sqlx would
            // copy each into a new allocation of its own.
            q = q
                .bind(r.id.clone())
                .bind(r.ts_ms)
                .bind(r.request_id.clone())
                .bind(r.key_id.clone())
                .bind(r.endpoint.as_str())
                .bind(r.provider.clone())
                .bind(r.model.clone())
                .bind(clamp(r.prompt_tokens))
                .bind(clamp(r.completion_tokens))
                .bind(clamp(r.cached_tokens))
                .bind(clamp(r.estimated_tokens))
                .bind(r.cost_usd)
                .bind(r.latency_ms)
                .bind(r.ttft_ms)
                .bind(i32::from(r.status))
                .bind(r.attempts.min(i32::MAX as u32) as i32)
                .bind(r.stream)
                .bind(r.cache_hit)
                .bind(clamp(r.cache_write_tokens))
                .bind(clamp(r.reasoning_tokens))
                .bind(r.unpriced)
                .bind(r.cost_breakdown.input)
                .bind(r.cost_breakdown.cached_input)
                .bind(r.cost_breakdown.cache_write)
                .bind(r.cost_breakdown.output);
        }
        q.execute(&mut *tx).await.map_err(err)?;
    }
    tx.commit().await.map_err(err)
}

/// Postgres: the whole batch as one array per column, one statement whatever its size.
async fn insert_postgres(pool: &sqlx::PgPool, records: &[UsageRecord]) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO usage_records (id, ts_ms, request_id, key_id, endpoint, provider, model, prompt_tokens, completion_tokens, cached_tokens, estimated_tokens, cost_usd, latency_ms, ttft_ms, status, attempts, stream, cache_hit, cache_write_tokens, reasoning_tokens, unpriced, cost_input, cost_cached_input, cost_cache_write, cost_output) \
        SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::float8[], $13::float8[], $14::float8[], $15::int[], $16::int[], $17::bool[], $18::bool[], $19::bigint[], $20::bigint[], $21::bool[], $22::float8[], $23::float8[], $24::float8[], $25::float8[]) \
        ON CONFLICT (id) DO NOTHING";
    let col = |f: fn(&UsageRecord) -> i64| records.iter().map(f).collect::<Vec<i64>>();
    let text = |f: fn(&UsageRecord) -> Option<String>| records.iter().map(f).collect::<Vec<_>>();
    sqlx::query(SQL)
        .bind(records.iter().map(|r| r.id.to_string()).collect::<Vec<_>>())
        .bind(col(|r| r.ts_ms))
        .bind(text(|r| r.request_id.as_deref().map(str::to_owned)))
        .bind(text(|r| r.key_id.as_deref().map(str::to_owned)))
        .bind(
            records
                .iter()
                .map(|r| r.endpoint.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| r.provider.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| r.model.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(col(|r| clamp(r.prompt_tokens)))
        .bind(col(|r| clamp(r.completion_tokens)))
        .bind(col(|r| clamp(r.cached_tokens)))
        .bind(col(|r| clamp(r.estimated_tokens)))
        .bind(records.iter().map(|r| r.cost_usd).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.latency_ms).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.ttft_ms).collect::<Vec<_>>())
        .bind(
            records
                .iter()
                .map(|r| i32::from(r.status))
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| r.attempts.min(i32::MAX as u32) as i32)
                .collect::<Vec<_>>(),
        )
        .bind(records.iter().map(|r| r.stream).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.cache_hit).collect::<Vec<_>>())
        .bind(col(|r| clamp(r.cache_write_tokens)))
        .bind(col(|r| clamp(r.reasoning_tokens)))
        .bind(records.iter().map(|r| r.unpriced).collect::<Vec<_>>())
        .bind(
            records
                .iter()
                .map(|r| r.cost_breakdown.input)
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| r.cost_breakdown.cached_input)
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| r.cost_breakdown.cache_write)
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|r| r.cost_breakdown.output)
                .collect::<Vec<_>>(),
        )
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| StoreError(e.to_string()))
}

fn clamp(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// A bound parameter of a summary query.
enum Param {
    Int(i64),
    Text(String),
}

/// The `WHERE` clause of `q` with `$n` placeholders, and its parameters.
fn where_clause(q: &UsageQuery) -> (String, Vec<Param>) {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    let mut push = |cond: &str, p: Param| {
        params.push(p);
        conds.push(cond.replace('?', &format!("${}", params.len())));
    };
    if let Some(s) = q.since_ms {
        push("ts_ms >= ?", Param::Int(s));
    }
    if let Some(u) = q.until_ms {
        push("ts_ms < ?", Param::Int(u));
    }
    if let Some(k) = &q.key {
        push("key_id = ?", Param::Text(k.clone()));
    }
    if let Some(p) = &q.provider {
        push("provider = ?", Param::Text(p.clone()));
    }
    if let Some(m) = &q.model {
        push("model = ?", Param::Text(m.clone()));
    }
    let clause = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    (clause, params)
}

const AGGREGATES: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(CASE WHEN status >= 200 AND status < 300 THEN 0 ELSE 1 END), 0) AS BIGINT) AS errors, \
    CAST(COALESCE(SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END), 0) AS BIGINT) AS cache_hits, \
    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
    CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
    CAST(COALESCE(SUM(estimated_tokens), 0) AS BIGINT) AS estimated_tokens, \
    CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
    CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
    CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
    CAST(COALESCE(SUM(CASE WHEN unpriced THEN 1 ELSE 0 END), 0) AS BIGINT) AS unpriced_requests, \
    CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
    CAST(COALESCE(SUM(cost_input), 0) AS DOUBLE PRECISION) AS cost_input, \
    CAST(COALESCE(SUM(cost_cached_input), 0) AS DOUBLE PRECISION) AS cost_cached_input, \
    CAST(COALESCE(SUM(cost_cache_write), 0) AS DOUBLE PRECISION) AS cost_cache_write, \
    CAST(COALESCE(SUM(cost_output), 0) AS DOUBLE PRECISION) AS cost_output";

/// The queries of a summary: (dimension name, SQL).
fn queries(q: &UsageQuery, clause: &str) -> Vec<(&'static str, String)> {
    let mut out = vec![(
        "totals",
        format!("SELECT '' AS dim, {AGGREGATES} FROM usage_records{clause}"),
    )];
    for (name, col) in [
        ("provider", "provider"),
        ("model", "model"),
        ("key", "key_id"),
    ] {
        let extra = if col == "key_id" {
            if clause.is_empty() {
                " WHERE key_id IS NOT NULL"
            } else {
                " AND key_id IS NOT NULL"
            }
        } else {
            ""
        };
        out.push((
            name,
            format!(
                "SELECT {col} AS dim, {AGGREGATES} FROM usage_records{clause}{extra} GROUP BY {col}"
            ),
        ));
    }
    if let Some(b) = q.bucket {
        let w = b.millis();
        out.push((
            "time",
            format!("SELECT CAST((ts_ms / {w}) * {w} AS TEXT) AS dim, {AGGREGATES} FROM usage_records{clause} GROUP BY (ts_ms / {w}) * {w}"),
        ));
    }
    out
}

macro_rules! totals_from_row {
    ($row:expr) => {{
        let row = $row;
        let get = |c: &str| -> Result<u64, StoreError> {
            row.try_get::<i64, _>(c)
                .map(|n| n.max(0) as u64)
                .map_err(|e| StoreError(e.to_string()))
        };
        let money = |c: &str| -> Result<f64, StoreError> {
            row.try_get::<f64, _>(c)
                .map_err(|e| StoreError(e.to_string()))
        };
        let t = Totals {
            requests: get("requests")?,
            errors: get("errors")?,
            cache_hits: get("cache_hits")?,
            prompt_tokens: get("prompt_tokens")?,
            completion_tokens: get("completion_tokens")?,
            total_tokens: get("prompt_tokens")? + get("completion_tokens")?,
            estimated_tokens: get("estimated_tokens")?,
            cached_tokens: get("cached_tokens")?,
            cache_write_tokens: get("cache_write_tokens")?,
            reasoning_tokens: get("reasoning_tokens")?,
            unpriced_requests: get("unpriced_requests")?,
            cost_usd: money("cost_usd")?,
            cost_breakdown: crate::usage::CostBreakdown {
                input: money("cost_input")?,
                cached_input: money("cost_cached_input")?,
                cache_write: money("cost_cache_write")?,
                output: money("cost_output")?,
            },
        };
        let dim: String = row
            .try_get::<Option<String>, _>("dim")
            .map_err(|e| StoreError(e.to_string()))?
            .unwrap_or_default();
        (dim, t)
    }};
}

macro_rules! run_summary {
    ($db:ty, $row:ty, $pool:expr, $query:expr) => {{
        let (clause, params) = where_clause($query);
        let mut summary = UsageSummary::default();
        let mut times: BTreeMap<i64, Totals> = BTreeMap::new();
        for (name, sql) in queries($query, &clause) {
            // Built from constants, `$n` placeholders and integer widths only: values are bound.
            let mut q = sqlx::query::<$db>(sqlx::AssertSqlSafe(sql));
            for p in &params {
                q = match p {
                    Param::Int(n) => q.bind(*n),
                    Param::Text(s) => q.bind(s.clone()),
                };
            }
            let rows: Vec<$row> = q
                .fetch_all($pool)
                .await
                .map_err(|e| StoreError(e.to_string()))?;
            for row in &rows {
                let (dim, t) = totals_from_row!(row);
                match name {
                    "totals" => summary.totals = t,
                    "provider" => {
                        summary.by_provider.insert(dim, t);
                    }
                    "model" => {
                        summary.by_model.insert(dim, t);
                    }
                    "key" => {
                        summary.by_key.insert(dim, t);
                    }
                    _ => {
                        times.insert(dim.parse().unwrap_or(0), t);
                    }
                }
            }
        }
        summary.by_time = times
            .into_iter()
            .map(|(start, totals)| TimeBucket {
                start: rfc3339_ms(start),
                totals,
            })
            .collect();
        Ok(summary)
    }};
}

impl UsageStore for SqlUsageStore {
    fn write<'a>(&'a self, records: &'a [UsageRecord]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            match &self.db {
                Db::Sqlite(pool) => insert_sqlite(pool, records).await,
                Db::Postgres(pool) => insert_postgres(pool, records).await,
            }
        })
    }

    fn summary<'a>(&'a self, query: &'a UsageQuery) -> StoreFuture<'a, UsageSummary> {
        Box::pin(async move {
            match &self.db {
                Db::Sqlite(pool) => run_summary!(sqlx::Sqlite, SqliteRow, pool, query),
                Db::Postgres(pool) => run_summary!(sqlx::Postgres, PgRow, pool, query),
            }
        })
    }

    fn kind(&self) -> &'static str {
        self.db.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_of_any_size_are_stored_once_in_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&dir.path().join("u.db").display().to_string())
            .await
            .unwrap();
        let store = SqlUsageStore::new(db);
        // Two full chunks and a remainder, then the same again (idempotent on the id).
        let records: Vec<UsageRecord> = (0..SQLITE_CHUNK * 2 + 5)
            .map(|i| {
                let mut r = crate::usage::test_record(&format!("r{i}"), 2);
                r.key_id = (i % 2 == 0).then(|| "k".into());
                r
            })
            .collect();
        store.write(&records).await.unwrap();
        store.write(&records[..40]).await.unwrap();
        let s = store.summary(&UsageQuery::default()).await.unwrap();
        assert_eq!(s.totals.requests, records.len() as u64);
        assert_eq!(s.totals.prompt_tokens, 2 * records.len() as u64);
        assert_eq!(s.by_key["k"].requests, 35);
        // Every statement size, each once.
        let mut stored = records.len() as u64;
        for n in 1..=SQLITE_CHUNK + 1 {
            let batch: Vec<UsageRecord> = (0..n)
                .map(|i| crate::usage::test_record(&format!("n{n}-{i}"), 1))
                .collect();
            store.write(&batch).await.unwrap();
            stored += n as u64;
            let s = store.summary(&UsageQuery::default()).await.unwrap();
            assert_eq!(s.totals.requests, stored, "a batch of {n}");
        }
    }

    #[tokio::test]
    async fn every_bucket_sums_the_cost_per_meter_in_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&dir.path().join("u.db").display().to_string())
            .await
            .unwrap();
        let store = SqlUsageStore::new(db);
        let records: Vec<UsageRecord> = (0..3)
            .map(|i| {
                let mut r = crate::usage::test_record(&format!("m{i}"), 10);
                r.model = if i == 0 { "a/x" } else { "b/y" }.into();
                r.cost_breakdown = crate::usage::CostBreakdown {
                    input: 0.25,
                    cached_input: 0.125,
                    cache_write: f64::from(i) * 0.5,
                    output: 1.0,
                };
                r.cost_usd = r.cost_breakdown.total();
                r
            })
            .collect();
        store.write(&records).await.unwrap();
        let q = UsageQuery {
            bucket: Some(crate::usage::Bucket::Hour),
            ..UsageQuery::default()
        };
        let s = store.summary(&q).await.unwrap();
        let b = s.totals.cost_breakdown;
        assert_eq!(
            (b.input, b.cached_input, b.cache_write, b.output),
            (0.75, 0.375, 1.5, 3.0)
        );
        assert_eq!(b.total(), s.totals.cost_usd);
        let y = s.by_model["b/y"].cost_breakdown;
        assert_eq!((y.cache_write, y.output), (1.5, 2.0));
        for t in s
            .by_model
            .values()
            .chain(s.by_time.iter().map(|t| &t.totals))
        {
            assert!(
                (t.cost_breakdown.total() - t.cost_usd).abs() < 1e-12,
                "{t:?}"
            );
        }
    }
}
