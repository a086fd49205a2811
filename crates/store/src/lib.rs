//! coachloop-store: persistence. One [`Store`] handle over SQLite (the embedded default)
//! or PostgreSQL; SQL lives in one module per domain and is written once where the
//! engines agree (`$1` placeholders, `ON CONFLICT`, `RETURNING`, epoch milliseconds,
//! flags as 0/1 integers); `db` holds what differs.

pub mod accounts;
pub mod activity;
pub mod admins;
pub mod audit;
pub mod campaigns;
pub mod compliance;
pub mod console;
pub mod content;
pub mod copy;
pub mod db;
mod deadlines;
pub mod engine;
pub mod event_types;
pub mod events;
pub mod evidence;
mod fact_change;
pub mod groups;
pub mod identities;
pub mod ingest;
pub mod learning;
pub mod leases;
mod locks;
mod membership;
pub mod nodes;
pub mod notice_texts;
pub mod notices;
pub mod outage;
pub mod page;
pub mod reporting;
pub mod risk;
mod scan;
pub mod scim;
mod script;
mod signals;
mod sql;
pub mod statuses;
pub mod success;
pub mod sync;
pub mod testing;
pub mod tokens;
pub mod users;
pub mod wakes;
pub mod xapi;

use coachloop_core::FieldError;
use coachloop_core::clock::Clock;
use sqlx::AnyPool;
use sqlx::any::AnyConnectOptions;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use db::Backend;
use locks::Locks;
pub use page::Page;

/// The name of the account every store starts with.
pub const DEFAULT_ACCOUNT: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(FieldError),
    #[error("invalid input: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value that cannot be read (JSON that does not parse, a name no longer
    /// known); the message names the row.
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error("could not migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database holds a migration this build does not know: a newer coachloop has
    /// migrated it, and this one would misread what that one writes.
    #[error(
        "the database was migrated by a newer coachloop (migration {migration} is not known \
         to version {version}); run that version or newer"
    )]
    NewerDatabase {
        migration: i64,
        version: &'static str,
    },
    /// The database could not be reached (relayed from the event writer, which saw the
    /// `sqlx` error itself; see [`StoreError::is_unavailable`]).
    #[error("the database cannot be reached: {0}")]
    Unavailable(String),
}

impl StoreError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        Self::Conflict(FieldError::new(field, message))
    }

    /// What a failed migration means: a database migrated by a newer coachloop is told
    /// apart from other failures.
    pub(crate) fn migrating(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::VersionMissing(migration) => Self::NewerDatabase {
                migration,
                version: nodes::VERSION,
            },
            other => Self::Migrate(other),
        }
    }

    /// True when the store was closed (the process is shutting down).
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::PoolClosed))
    }

    /// True when the database cannot be reached right now: the connection is refused,
    /// broke or timed out, or the server is shutting down or starting up. The request
    /// may well succeed when tried again later; nothing of it was committed (or, when
    /// the connection broke during COMMIT, all of it may have been). The one place that
    /// decides this: the server answers these with 503, the event writer reconnects,
    /// executors wait and retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database(e) => unreachable(e),
            _ => false,
        }
    }
}

/// Whether `err` means the database cannot be reached (see [`StoreError::is_unavailable`]).
fn unreachable(err: &sqlx::Error) -> bool {
    match err {
        // Refused, reset, closed mid-query (EOF), timed out connecting.
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // SQLSTATE class 08: connection exception; 57P01 admin_shutdown, 57P02
            // crash_shutdown, 57P03 cannot_connect_now (starting up or in recovery);
            // 53300 too_many_connections; 25006 read_only_sql_transaction (a standby
            // during a failover). (SQLite's codes are plain numbers, never these.)
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300" | "25006")
        }),
        _ => false,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where the database lives. `Debug` never shows credentials.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The SQLite file `coachloop.db` inside a data directory.
    pub fn in_data_dir(dir: &Path) -> Self {
        Self(format!("sqlite://{}", dir.join("coachloop.db").display()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keep the scheme and path, hide anything between `://` and `@`.
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(start), Some(at)) if at > start => {
                write!(f, "{}://***{}", &self.0[..start], &self.0[at..])
            }
            _ => f.write_str(&self.0),
        }
    }
}

/// The handle every surface shares. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    read: AnyPool,
    write: AnyPool,
    options: Arc<AnyConnectOptions>,
    clock: Arc<dyn Clock>,
    /// Bumped whenever an event type is renamed or deleted, so the event writer's
    /// name → id cache knows to start over.
    type_generation: Arc<AtomicU64>,
    /// The smart-group engine; every path that changes facts locks it before its write
    /// transaction begins (see `engine`).
    engine: Arc<tokio::sync::Mutex<engine::Engine>>,
    /// Wakes the group executor when something is due earlier than it thought.
    /// Wake the smart-group and training executors and the notice runner.
    wakes: wakes::Wakes,
    /// Signing keys read once (see [`Store::secret`]).
    secrets: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
    /// This process among the installation's nodes (see [`Store::node`]).
    node: Arc<str>,
    /// Tasks that live as long as the store (PostgreSQL: cross-node wake-ups).
    tasks: Arc<Vec<tokio::task::AbortHandle>>,
    /// SCIM creates waiting to be written together (see `scim::creates`).
    scim_creates: Arc<scim::creates::Creates>,
    /// xAPI statements waiting to be written together (see `xapi`).
    xapi_writes: Arc<xapi::Writes>,
}

impl Store {
    /// Opens (creating if needed) the database, runs migrations and makes sure the
    /// `default` account exists.
    pub async fn open(url: &DatabaseUrl, clock: Arc<dyn Clock>) -> Result<Self> {
        let backend = Backend::of(url)?;
        let options = backend.options(url)?;
        let (write, read) = backend.pools(url).await?;
        backend
            .migrator()
            .run(&write)
            .await
            .map_err(StoreError::migrating)?;
        let node: Arc<str> = node_id().into();
        let (wakes, tasks) = match backend {
            Backend::Sqlite => (wakes::Wakes::default(), Vec::new()),
            Backend::Postgres => {
                let (others, queued) = tokio::sync::mpsc::unbounded_channel();
                let wakes = wakes::Wakes::across(others);
                let tasks = signals::start(url, write.clone(), node.clone(), &wakes, queued);
                (wakes, tasks.into())
            }
        };
        let store = Self {
            backend,
            read,
            write,
            options: Arc::new(options),
            clock,
            type_generation: Arc::default(),
            engine: Arc::default(),
            wakes,
            secrets: Arc::default(),
            node,
            tasks: Arc::new(tasks),
            scim_creates: Arc::default(),
            xapi_writes: Arc::default(),
        };
        store.ensure_account(DEFAULT_ACCOUNT).await?;
        store.sync_content_library().await?;
        Ok(store)
    }

    /// How much the smart-group engine holds in memory; `None` if a change of facts
    /// holds the engine longer than a tenth of a second (a group change may, for seconds).
    pub async fn engine_cache(&self) -> Option<engine::CacheSize> {
        let engine = std::time::Duration::from_millis(100);
        let engine = tokio::time::timeout(engine, self.engine.lock())
            .await
            .ok()?;
        Some(engine.size())
    }

    /// This process's name among the nodes of the installation: host, process id and a
    /// random suffix, so a restarted node is a new one.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// How many revocations of tokens this node has seen, its own and (PostgreSQL) other
    /// nodes': a cache of token lookups made at another count is stale.
    pub fn revocations(&self) -> u64 {
        self.wakes.revocations()
    }

    /// What the group executor sleeps on.
    pub fn group_wake(&self) -> &Arc<wakes::Wake> {
        &self.wakes.groups
    }

    /// What the training executor sleeps on.
    pub fn training_wake(&self) -> &Arc<wakes::Wake> {
        &self.wakes.training
    }

    /// Woken when a remote sync becomes due sooner than the runner expects.
    pub fn sync_wake(&self) -> &Arc<wakes::Wake> {
        &self.wakes.syncs
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A write transaction that holds the write lock from its first statement (so it
    /// never fails half-way on a lock upgrade when another process writes too) and, on
    /// PostgreSQL, `locks`.
    async fn begin_write(&self, locks: &Locks) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.write.begin_with(locks.begin(self.backend)).await?)
    }

    /// After a committed write of `rows` rows to `tables` (names of ours, comma-separated):
    /// when that is many, PostgreSQL's statistics of them are brought up to date at once.
    /// Autovacuum would do it within a minute or so; until then the planner takes a
    /// just-filled table for empty and reads, for example, a campaign's 90,000 new
    /// enrolments whole to show 50 of them (300 ms instead of 3 ms). SQLite keeps no
    /// statistics unless asked and plans by its indexes alone.
    pub(crate) async fn analyze_after(&self, tables: &str, rows: usize) {
        const MANY: usize = 10_000;
        if self.backend != db::Backend::Postgres || rows < MANY {
            return;
        }
        // The write is committed whatever happens here: a failure only leaves the
        // statistics to autovacuum, and is said.
        if let Err(e) = sqlx::raw_sql(&format!("ANALYZE {tables}"))
            .execute(&self.read)
            .await
        {
            tracing::warn!(error = %e, tables, "could not update the statistics after a bulk write");
        }
    }

    /// Answers whether the database can be read (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        for task in self.tasks.iter() {
            task.abort();
        }
        self.read.close().await;
        self.write.close().await;
    }
}

/// A new node's name (see [`Store::node`]).
fn node_id() -> String {
    format!(
        "{}:{}:{:04x}",
        hostname(),
        std::process::id(),
        rand::random::<u16>()
    )
}

/// The name of the host this process runs on (`localhost` when it cannot be read).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// True when `err` is a unique-constraint violation.
fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::StoreError;
    use std::borrow::Cow;

    /// A database error with only a SQLSTATE, as PostgreSQL sends them.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn coded(code: &'static str) -> StoreError {
        StoreError::Database(sqlx::Error::Database(Box::new(Coded(code))))
    }

    #[test]
    fn unreachable_databases_are_told_apart_from_failing_requests() {
        let io = |kind| StoreError::Database(sqlx::Error::Io(std::io::Error::from(kind)));
        let unavailable = [
            io(std::io::ErrorKind::ConnectionRefused),
            io(std::io::ErrorKind::UnexpectedEof),
            StoreError::Database(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable("the event writer is reconnecting".into()),
            // connection_failure, admin_shutdown, crash_shutdown, cannot_connect_now,
            // too_many_connections
            coded("08006"),
            coded("57P01"),
            coded("57P02"),
            coded("57P03"),
            coded("53300"),
            coded("25006"),
        ];
        for error in &unavailable {
            assert!(error.is_unavailable(), "{error} is unavailability");
        }
        let failing = [
            // Shutting down is not an outage.
            StoreError::Database(sqlx::Error::PoolClosed),
            StoreError::Database(sqlx::Error::RowNotFound),
            // unique_violation, undefined_table, query_canceled; SQLite's busy
            coded("23505"),
            coded("42P01"),
            coded("57014"),
            coded("5"),
            StoreError::NotFound("user"),
            StoreError::Corrupt("row 1".into()),
        ];
        for error in &failing {
            assert!(!error.is_unavailable(), "{error} is no unavailability");
        }
    }
}
