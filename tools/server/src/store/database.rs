//! The database behind [`Store`]: connecting to SQLite or PostgreSQL, applying the migrations,
//! and the helpers every table's module shares (the clock, URLs without passwords).

use super::running_rollouts::RunningRollouts;
use super::schema;
use anyhow::{Context, Result, bail};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most connections per server process. SQLite serialises writers anyway (WAL lets readers go on).
const SQLITE_CONNECTIONS: u32 = 8;
const POSTGRES_CONNECTIONS: u32 = 16;
/// How long a request waits for a database connection before it is answered 503 (the database
/// restarting or out of reach): shorter than the request timeout, so that devices learn to retry
/// rather than hold their connections.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a writer waits for SQLite's write lock before the request fails.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;
/// Bytes of the database file SQLite reads through a memory map instead of `pread` into each
/// connection's own 2 MiB page cache. The dashboard's searches walk every device: at 100,000
/// devices the same search took 70 ms or 400 ms depending on the connection that ran it (pages
/// copied in and evicted again), and 30-80 ms every time when mapped. The mapped pages are the
/// kernel's page cache (counted in the server's RSS once touched, but shared and reclaimable).
const SQLITE_MMAP_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone)]
pub struct Store {
    pub(super) pool: AnyPool,
    pub(super) postgres: bool,
    pub(super) running: Arc<RunningRollouts>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects and applies pending migrations. `url` is `sqlite://PATH` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !postgres && !url.starts_with("sqlite:") {
            bail!("database URL {url:?} is neither sqlite:// nor postgres://");
        }
        let options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        let pool = if postgres {
            options.max_connections(POSTGRES_CONNECTIONS).connect(url).await
        } else {
            options
                .max_connections(SQLITE_CONNECTIONS)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // WAL: readers never wait for the writer; NORMAL is durable across a
                        // process crash (not a power cut of the server host, which WAL+NORMAL may
                        // lose the last commits of: the devices resend what was not acknowledged).
                        conn.execute(sqlx::raw_sql(sql!(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                             PRAGMA mmap_size = {SQLITE_MMAP_BYTES};"
                        )))
                        .await?;
                        Ok(())
                    })
                })
                .connect(url)
                .await
        }
        .with_context(|| format!("connecting to database {}", redact(url)))?;
        let store = Store {
            pool,
            postgres,
            running: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    async fn migrate(&self) -> Result<()> {
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations \
                 (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .await
            .context("creating schema_migrations")?;
        for (index, sql) in schema::MIGRATIONS.iter().enumerate() {
            let version = index as i64 + 1;
            let mut tx = self.pool.begin().await?;
            // Claim the version first: a second server starting at the same time fails this
            // insert (unique key) and waits for ours instead of applying it twice.
            let claimed = sqlx::query(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2) \
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind(version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                tx.rollback().await?;
                continue;
            }
            let sql = sql
                .replace("{ID}", schema::id_column(self.postgres))
                .replace(
                    "{JSON_EACH_ATTRIBUTES}",
                    schema::json_each_attributes(self.postgres),
                );
            tx.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
                .await
                .with_context(|| format!("applying migration {version}"))?;
            tx.commit().await?;
            tracing::info!(event = %"migrated", version);
        }
        Ok(())
    }

    /// Checks that the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The URL without a password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
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

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
