//! Stored responses of `/v1/responses`: the `stored_responses` table. A row belongs to the
//! caller that created it (`owner`), and reads ignore rows past `expires_at_ms` (expired rows
//! are deleted as new ones are written).

use sqlx::Row;

use super::Db;
use crate::usage::StoreError;

/// One stored response: the `Response` object and the input items, as JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// `resp_...`.
    pub id: String,
    /// Who may read it: `key:<virtual key id>`, `master` or `open`.
    pub owner: String,
    /// When it was created.
    pub created_at_ms: i64,
    /// When it stops being readable.
    pub expires_at_ms: i64,
    /// The `Response` object.
    pub response: String,
    /// The input items (the previous conversation's included).
    pub input_items: String,
}

/// Stored responses in SQLite or Postgres.
#[derive(Clone, Debug)]
pub struct SqlResponseStore {
    db: Db,
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

const INSERT: &str = "INSERT INTO stored_responses (id, owner, created_at_ms, expires_at_ms, response, input_items) VALUES ($1, $2, $3, $4, $5, $6)";
const SELECT: &str = "SELECT id, owner, created_at_ms, expires_at_ms, response, input_items FROM stored_responses WHERE id = $1 AND owner = $2 AND expires_at_ms > $3";
const DELETE: &str =
    "DELETE FROM stored_responses WHERE id = $1 AND owner = $2 AND expires_at_ms > $3";
const PURGE: &str = "DELETE FROM stored_responses WHERE expires_at_ms <= $1";

macro_rules! run {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            Db::Sqlite($p) => $body,
            Db::Postgres($p) => $body,
        }
    };
}

impl SqlResponseStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Writes `r` (and deletes expired rows).
    pub async fn put(&self, r: &StoredResponse) -> Result<(), StoreError> {
        run!(&self.db, |p| {
            sqlx::query(PURGE)
                .bind(r.created_at_ms)
                .execute(p)
                .await
                .map_err(err)?;
            sqlx::query(INSERT)
                .bind(r.id.clone())
                .bind(r.owner.clone())
                .bind(r.created_at_ms)
                .bind(r.expires_at_ms)
                .bind(r.response.clone())
                .bind(r.input_items.clone())
                .execute(p)
                .await
                .map(drop)
                .map_err(err)
        })
    }

    /// The response `id` of `owner`, unless expired at `now_ms`.
    pub async fn get(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row = run!(&self.db, |p| {
            sqlx::query(SELECT)
                .bind(id.to_owned())
                .bind(owner.to_owned())
                .bind(now_ms)
                .fetch_optional(p)
                .await
                .map_err(err)?
                .map(|r| -> Result<StoredResponse, sqlx::Error> {
                    Ok(StoredResponse {
                        id: r.try_get("id")?,
                        owner: r.try_get("owner")?,
                        created_at_ms: r.try_get("created_at_ms")?,
                        expires_at_ms: r.try_get("expires_at_ms")?,
                        response: r.try_get("response")?,
                        input_items: r.try_get("input_items")?,
                    })
                })
        });
        row.transpose().map_err(err)
    }

    /// Deletes the response `id` of `owner`; false when there was none.
    pub async fn delete(&self, id: &str, owner: &str, now_ms: i64) -> Result<bool, StoreError> {
        run!(&self.db, |p| {
            sqlx::query(DELETE)
                .bind(id.to_owned())
                .bind(owner.to_owned())
                .bind(now_ms)
                .execute(p)
                .await
                .map(|r| r.rows_affected() > 0)
                .map_err(err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn scope_expiry_and_delete(db: Db, id: &str) {
        let store = SqlResponseStore::new(db);
        let row = StoredResponse {
            id: id.into(),
            owner: "key:k1".into(),
            created_at_ms: 1_000,
            expires_at_ms: 2_000,
            response: "{}".into(),
            input_items: "[]".into(),
        };
        store.put(&row).await.expect("put");
        assert_eq!(
            store.get(id, "key:k1", 1_500).await.ok().flatten(),
            Some(row.clone())
        );
        assert_eq!(store.get(id, "key:k2", 1_500).await.ok().flatten(), None);
        assert_eq!(store.get(id, "key:k1", 2_000).await.ok().flatten(), None);
        assert!(!store.delete(id, "open", 1_500).await.unwrap_or(true));
        assert!(store.delete(id, "key:k1", 1_500).await.unwrap_or(false));
        assert_eq!(store.get(id, "key:k1", 1_500).await.ok().flatten(), None);
    }

    #[tokio::test]
    async fn sqlite_scopes_expires_and_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        let db = Db::connect(path.to_str().unwrap_or("r.db"))
            .await
            .expect("sqlite");
        scope_expiry_and_delete(db, "resp_1").await;
    }

    #[tokio::test]
    async fn postgres_scopes_expires_and_deletes_when_available() {
        let Ok(db) = Db::connect("postgres://postgres@127.0.0.1:5432/test").await else {
            eprintln!("postgres not available; skipped");
            return;
        };
        // A random id, so parallel runs do not collide.
        let id = format!("resp_{:032x}", rand::random::<u128>());
        scope_expiry_and_delete(db, &id).await;
    }
}
