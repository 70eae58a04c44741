//! PostgreSQL user store with versioned migrations applied at start-up.
//!
//! Migrations live in [`MIGRATIONS`]; each runs once, in order, inside a transaction holding
//! an advisory lock, and is recorded in `schema_migrations`. If PostgreSQL is down at
//! start-up the service still starts; migrations run before the first query that succeeds.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::{with_timeout, NewUser, StoreError, User, UserStore};

/// Versioned schema migrations: `(version, SQL)`.
pub const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE users (
        id serial PRIMARY KEY,
        login varchar(20) NOT NULL,
        email varchar(30) NOT NULL,
        name varchar(30) NOT NULL,
        password_hash text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT users_login_key UNIQUE (login),
        CONSTRAINT users_email_key UNIQUE (email)
    )",
)];

const LOCK_KEY: i64 = 0x636f_7265_6361_7374; // "corecast"

/// Users in PostgreSQL (`users` table), via a deadpool connection pool.
#[derive(Debug)]
pub struct PgUserStore {
    pool: Pool,
    migrated: AtomicBool,
    migrating: Mutex<()>,
}

fn classify(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if db.code() == &SqlState::UNIQUE_VIOLATION {
            return match db.constraint() {
                Some("users_email_key") => StoreError::Conflict("email"),
                _ => StoreError::Conflict("login"),
            };
        }
        // Server-side but transient: shutting down, too many connections, etc.
        let c = db.code().code();
        if c.starts_with("57") || c.starts_with("08") || c.starts_with("53") {
            return StoreError::Unavailable(format!("postgres: {db}"));
        }
        return StoreError::Internal(format!("postgres: {db}"));
    }
    StoreError::Unavailable(format!("postgres: {e}"))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("postgres pool: {e}"))
}

impl PgUserStore {
    /// Builds the pool (no connection is made yet) and tries to migrate once.
    pub async fn connect(url: &str, max_conns: usize) -> Result<Self, StoreError> {
        let pg_config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Internal(format!("bad postgres url: {e}")))?;
        let mut pg_config = pg_config;
        pg_config.connect_timeout(Duration::from_secs(2));
        let mgr = Manager::from_config(pg_config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let timeouts = Timeouts {
            wait: Some(Duration::from_secs(2)),
            create: Some(Duration::from_secs(2)),
            recycle: Some(Duration::from_secs(1)),
        };
        let pool = Pool::builder(mgr)
            .max_size(max_conns.max(1))
            .timeouts(timeouts)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("postgres pool: {e}")))?;
        let s = PgUserStore { pool, migrated: AtomicBool::new(false), migrating: Mutex::new(()) };
        if let Err(e) = s.ensure_migrated().await {
            tracing::warn!(error = %e, "postgres not reachable at start-up; will migrate on first use");
        }
        Ok(s)
    }

    /// Applies pending migrations (idempotent, safe with several instances). While one
    /// request is migrating, concurrent ones get [`StoreError::Unavailable`] at once instead of
    /// queueing behind it (matters while PostgreSQL is down).
    pub async fn ensure_migrated(&self) -> Result<(), StoreError> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let Ok(_guard) = self.migrating.try_lock() else {
            return Err(StoreError::Unavailable("postgres: schema migration in progress".into()));
        };
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        with_timeout("postgres migrate", async {
            let mut c = self.pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(classify)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await.map_err(classify)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(classify)?;
            let rows = tx.query("SELECT version FROM schema_migrations", &[]).await.map_err(classify)?;
            let have: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
            for (v, sql) in MIGRATIONS {
                if have.contains(v) {
                    continue;
                }
                tx.batch_execute(sql).await.map_err(classify)?;
                tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[v]).await.map_err(classify)?;
                tracing::info!(version = v, "applied migration");
            }
            tx.commit().await.map_err(classify)?;
            Ok(())
        })
        .await?;
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// Current schema version (highest applied migration).
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        self.ensure_migrated().await?;
        with_timeout("postgres", async {
            let c = self.pool.get().await.map_err(pool_err)?;
            let r = c.query_one("SELECT max(version) FROM schema_migrations", &[]).await.map_err(classify)?;
            Ok(r.get::<_, Option<i32>>(0).unwrap_or(0))
        })
        .await
    }

    /// Deletes every user (tests only).
    pub async fn truncate_for_tests(&self) -> Result<(), StoreError> {
        self.ensure_migrated().await?;
        let c = self.pool.get().await.map_err(pool_err)?;
        c.batch_execute("TRUNCATE users RESTART IDENTITY").await.map_err(classify)
    }
}

fn row_to_user(r: &tokio_postgres::Row) -> User {
    User { id: r.get(0), login: r.get(1), email: r.get(2), name: r.get(3), password_hash: r.get(4) }
}

#[async_trait]
impl UserStore for PgUserStore {
    async fn create(&self, u: NewUser) -> Result<i32, StoreError> {
        self.ensure_migrated().await?;
        with_timeout("postgres insert", async {
            let c = self.pool.get().await.map_err(pool_err)?;
            let st = c
                .prepare_cached(
                    "INSERT INTO users (login, email, name, password_hash) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .await
                .map_err(classify)?;
            let r = c.query_one(&st, &[&u.login, &u.email, &u.name, &u.password_hash]).await.map_err(classify)?;
            Ok(r.get(0))
        })
        .await
    }

    async fn by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        self.ensure_migrated().await?;
        with_timeout("postgres select", async {
            let c = self.pool.get().await.map_err(pool_err)?;
            let st = c
                .prepare_cached("SELECT id, login, email, name, password_hash FROM users WHERE login = $1")
                .await
                .map_err(classify)?;
            Ok(c.query_opt(&st, &[&login]).await.map_err(classify)?.as_ref().map(row_to_user))
        })
        .await
    }

    async fn by_id(&self, id: i32) -> Result<Option<User>, StoreError> {
        self.ensure_migrated().await?;
        with_timeout("postgres select", async {
            let c = self.pool.get().await.map_err(pool_err)?;
            let st = c
                .prepare_cached("SELECT id, login, email, name, password_hash FROM users WHERE id = $1")
                .await
                .map_err(classify)?;
            Ok(c.query_opt(&st, &[&id]).await.map_err(classify)?.as_ref().map(row_to_user))
        })
        .await
    }
}
