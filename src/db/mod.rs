//! The relational store shared by usage records and virtual keys: SQLite by default (a file
//! created on first start), Postgres when `DATABASE_URL` is set. Migrations in `migrations/`
//! run at start (sqlx's migrator, which takes a lock so replicas can start together).

mod keys;
mod responses;
mod usage;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::BuildError;

pub use keys::SqlKeyStore;
pub use responses::{SqlResponseStore, StoredResponse};
pub use usage::SqlUsageStore;

/// WAL pages after which a commit checkpoints (SQLite's `wal_autocheckpoint`).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 64;

/// A connection pool to either backend.
#[derive(Clone, Debug)]
pub enum Db {
    /// An embedded SQLite file.
    Sqlite(SqlitePool),
    /// A Postgres server.
    Postgres(PgPool),
}

impl Db {
    /// Connects and migrates. `url` is a `postgres://` URL, a `sqlite:` URL, or a file path.
    pub async fn connect(url: &str) -> Result<Self, BuildError> {
        Self::open(url).await.map_err(BuildError::Database)
    }

    async fn open(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(|e| {
                    format!(
                        "DATABASE_URL: cannot connect to Postgres ({}): {e}",
                        redact_url(url)
                    )
                })?;
            sqlx::migrate!("migrations/postgres")
                .run(&pool)
                .await
                .map_err(|e| format!("DATABASE_URL: migrating Postgres failed: {e}"))?;
            return Ok(Self::Postgres(pool));
        }
        let options = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)
                .map_err(|e| format!("DATABASE_URL={url:?} is not a SQLite URL: {e}"))?
        } else {
            SqliteConnectOptions::new().filename(url)
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // A checkpoint copies every page the WAL holds back into the database in one go, on
        // the store's thread: at SQLite's default of 1,000 pages (4 MB) that was a run of
        // about 3 ms of CPU every few seconds under load, on the gateway's core, and it showed
        // in the latency of the requests waiting behind it. 64 pages keep each one short.
        .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
        .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| {
                format!("USAGE_DB_PATH: cannot open the SQLite database {url:?}: {e}; point USAGE_DB_PATH at a writable file")
            })?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| {
                format!("USAGE_DB_PATH: migrating the SQLite database {url:?} failed: {e}")
            })?;
        Ok(Self::Sqlite(pool))
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_checkpoints_in_small_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let Db::Sqlite(pool) = Db::connect(path.to_str().unwrap()).await.unwrap() else {
            panic!("a file path opens SQLite");
        };
        let pages: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(pages, i64::from(WAL_AUTOCHECKPOINT_PAGES));
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
