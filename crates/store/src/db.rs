//! The two database engines and what differs between them. Queries that read the same on
//! both run through sqlx's `Any` driver, written once; the few places where SQL or the
//! fast path differs ask the [`Backend`] here for their engine's text, so an engine's
//! differences live in one place instead of `if sqlite … else …` spread through modules.
//!
//! * **SQLite** (the embedded default): one writer connection, `BEGIN IMMEDIATE` takes the
//!   database's write lock, pragmas set per connection, group commit in multi-statement
//!   scripts (see `script`).
//! * **PostgreSQL 15+**: a pool of connections, shared by several nodes; a write
//!   transaction that changes an account's facts takes that account's advisory lock (see
//!   `locks`); `synchronous_commit` is on, so a commit is durable before it is
//!   acknowledged.

use crate::locks::Locks;
use crate::{DatabaseUrl, Result, StoreError};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor};
use std::str::FromStr;
use std::time::Duration;

/// Which engine a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Per-connection settings of SQLite. A 201 means the event is on disk: every commit is
/// fsynced (`synchronous = FULL`).
const SQLITE_SESSION: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
    PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000; PRAGMA cache_size = -16384; \
    PRAGMA wal_autocheckpoint = 10000; PRAGMA journal_size_limit = 67108864; \
    PRAGMA temp_store = memory";
// (`wal_autocheckpoint = 10000`: checkpoint every ~40 MiB of WAL instead of 4 MiB, so a
// page rewritten by many commits is copied back once; `journal_size_limit`: the WAL is cut
// back to 64 MiB when it starts over; `temp_store`: statement journals of multi-row
// inserts stay off the disk.)

/// How long a request waits for a PostgreSQL connection (from the pool, or a new one)
/// before it is answered that the database cannot be reached: while the server is away,
/// requests fail in seconds instead of hanging. SQLite keeps sqlx's 30 s: there a wait
/// for the pool is another writer at work, never a network.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-connection settings of PostgreSQL: commits wait for the WAL flush, times are read
/// in UTC, and a quote is the only character a string literal escapes (scripts write
/// their values as literals, see `Script`).
const POSTGRES_SESSION: &str = "SET synchronous_commit = on; SET TIME ZONE 'UTC'; \
     SET standard_conforming_strings = on";

impl Backend {
    /// The engine of `url`: `sqlite:` or `postgres:`/`postgresql:`.
    pub fn of(url: &DatabaseUrl) -> Result<Self> {
        let url = url.expose();
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::invalid(
                "database_url",
                "must start with sqlite:// (a file) or postgres:// (a PostgreSQL server)",
            ))
        }
    }

    /// Rows per insert of `QueryBuilder::push_records` (in `sql`): SQLite binds each
    /// value (a statement takes at most 32,766); PostgreSQL takes them as one value.
    pub(crate) fn rows_per_insert(self) -> usize {
        match self {
            Self::Sqlite => 500,
            Self::Postgres => 100_000,
        }
    }

    /// The engine `conn` is connected to.
    pub(crate) fn of_connection(conn: &AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("postgresql") {
            Self::Postgres
        } else {
            Self::Sqlite
        }
    }

    /// What opens a read transaction that sees one consistent state throughout (SQLite's
    /// read transactions do in WAL mode).
    pub(crate) fn begin_snapshot(self) -> &'static str {
        match self {
            Self::Sqlite => "BEGIN",
            Self::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    /// Opens a write transaction on `conn` holding `locks` (see `locks`).
    pub(crate) async fn begin(conn: &mut AnyConnection, locks: &Locks) -> Result<()> {
        let sql = locks.begin(Self::of_connection(conn));
        conn.execute(sql.as_str()).await?;
        Ok(())
    }

    /// `column` is one of a list of values bound as one text parameter `$n` (see
    /// [`Backend::list`]). On PostgreSQL as `= ANY(array)`, which an index answers value
    /// by value; `IN (SELECT …)` over a set-returning function is planned as a join and,
    /// guessing its size, may scan the whole table.
    pub(crate) fn in_list(self, column: &str, n: usize, kind: ListOf) -> String {
        match (self, kind) {
            (Self::Sqlite, _) => format!("{column} IN (SELECT value FROM json_each(${n}))"),
            (Self::Postgres, ListOf::Integers) => format!(
                "{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb)::bigint))"
            ),
            (Self::Postgres, ListOf::Texts) => {
                format!("{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb)))")
            }
        }
    }

    /// The list bound as parameter `$n` (see [`Backend::list`]) as a relation `w` of one
    /// column, `value`, to `CROSS JOIN` first: each value is then looked up by the index on
    /// the other side, however few rows the planner expects there (PostgreSQL checks a
    /// filter `= ANY(…)` row by row when stale statistics make it read the rows by a
    /// shorter key; SQLite runs a `CROSS JOIN` in the order written).
    pub(crate) fn list_rows(self, n: usize, kind: ListOf) -> String {
        match (self, kind) {
            (Self::Sqlite, _) => format!("json_each(${n}) AS w"),
            (Self::Postgres, ListOf::Integers) => {
                format!("(SELECT jsonb_array_elements_text(${n}::jsonb)::bigint AS value) AS w")
            }
            (Self::Postgres, ListOf::Texts) => {
                format!("jsonb_array_elements_text(${n}::jsonb) AS w(value)")
            }
        }
    }

    /// ` FROM table t WHERE … AND `: the rows of `table` whose `column` is one of a list
    /// of integers bound as `$n`, each found by an index on `column`. On SQLite the list
    /// is read first (`CROSS JOIN`: given an `IN` list, SQLite may read the table by
    /// another index); on PostgreSQL as `= ANY(array)` (a join with the list, guessed at
    /// a hundred rows, is planned as a scan of the table).
    pub(crate) fn rows_listed(self, table: &str, column: &str, n: usize) -> String {
        match self {
            Self::Sqlite => format!(
                " FROM {} CROSS JOIN {table} t WHERE t.{column} = w.value AND ",
                self.list_rows(n, ListOf::Integers)
            ),
            Self::Postgres => format!(
                " FROM {table} t WHERE {} AND ",
                self.in_list(&format!("t.{column}"), n, ListOf::Integers)
            ),
        }
    }

    /// A list bound as one parameter: a JSON array (both engines read it in SQL).
    pub(crate) fn list<T: serde::Serialize>(items: &[T]) -> String {
        serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
    }

    /// The position of `needle` in `haystack` (1-based, 0 when absent).
    pub(crate) fn position(self, needle: &str, haystack: &str) -> String {
        match self {
            Self::Sqlite => format!("instr({haystack}, {needle})"),
            Self::Postgres => format!("strpos({haystack}, {needle})"),
        }
    }

    /// An aggregate of `expr` (which may end in `ORDER BY …`) into a JSON array as text;
    /// `[]` over no rows.
    pub(crate) fn json_list(self, expr: &str) -> String {
        match self {
            Self::Sqlite => format!("json_group_array({expr})"),
            Self::Postgres => format!("COALESCE(json_agg({expr})::text, '[]')"),
        }
    }

    /// `table` read with the index named (SQLite's planner guesses wrong for a few
    /// bulk reads; `None` is a full pass over the table). PostgreSQL plans from its
    /// statistics and takes no hints.
    pub(crate) fn table_using(self, table: &str, index: Option<&str>) -> String {
        match (self, index) {
            (Self::Sqlite, Some(index)) => format!("{table} INDEXED BY {index}"),
            (Self::Sqlite, None) => format!("{table} NOT INDEXED"),
            (Self::Postgres, _) => table.to_owned(),
        }
    }

    /// An aggregate of rows of `columns` into one JSON array of arrays, in `order`, as
    /// text (`[]` over no rows).
    pub(crate) fn json_rows(self, columns: &str, order: &str) -> String {
        match self {
            Self::Sqlite => format!("json_group_array(json_array({columns}))"),
            Self::Postgres => format!(
                "COALESCE(json_agg(json_build_array({columns}) ORDER BY {order})::text, '[]')"
            ),
        }
    }

    /// Whether the JSON text in `column` has, at any depth, the key `key` with the
    /// integer bound as `$n`.
    pub(crate) fn json_names(self, column: &str, key: &str, n: usize) -> String {
        match self {
            Self::Sqlite => format!(
                "EXISTS (SELECT 1 FROM json_tree({column}) WHERE key = '{key}' AND value = ${n})"
            ),
            Self::Postgres => format!(
                "jsonb_path_exists({column}::jsonb, '$.**.{key} ? (@ == $v)', \
                 jsonb_build_object('v', ${n}::bigint))"
            ),
        }
    }

    /// Opens one connection with the engine's session settings, giving up after
    /// [`CONNECT_TIMEOUT`] (an unreachable host may never answer a connect).
    pub(crate) async fn connect(self, options: &AnyConnectOptions) -> Result<AnyConnection> {
        let open = async {
            let mut conn = AnyConnection::connect_with(options).await?;
            conn.execute(self.session()).await?;
            Ok(conn)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
            Ok(opened) => opened,
            Err(_) => Err(StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {CONNECT_TIMEOUT:?}"),
            )))),
        }
    }

    fn session(self) -> &'static str {
        match self {
            Self::Sqlite => SQLITE_SESSION,
            Self::Postgres => POSTGRES_SESSION,
        }
    }

    /// The connection options of `url`, with statements logged at trace and slow ones
    /// warned about.
    pub(crate) fn options(self, url: &DatabaseUrl) -> Result<AnyConnectOptions> {
        // Create the SQLite file on first start.
        self.options_with(url, "rwc")
    }

    /// The options of `url` for a connection that only reads (SQLite opens the file
    /// read-only and never creates it).
    pub(crate) fn read_only_options(self, url: &DatabaseUrl) -> Result<AnyConnectOptions> {
        self.options_with(url, "ro")
    }

    /// The schema migrations of this engine (what [`crate::Store::open`] runs; a copy
    /// target is prepared with these alone, without the seeding that follows them).
    pub fn migrator(self) -> sqlx::migrate::Migrator {
        match self {
            Self::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Self::Postgres => sqlx::migrate!("./migrations/postgres"),
        }
    }

    /// The options of `url`; for SQLite opened in `mode` (`rwc`, or `ro` for readers).
    fn options_with(self, url: &DatabaseUrl, mode: &str) -> Result<AnyConnectOptions> {
        sqlx::any::install_default_drivers();
        let mut text = url.expose().to_owned();
        if self == Self::Sqlite && !text.contains("mode=") {
            text.push(if text.contains('?') { '&' } else { '?' });
            text.push_str("mode=");
            text.push_str(mode);
        }
        let options = AnyConnectOptions::from_str(&text)?
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(10));
        Ok(options)
    }

    /// The pools of an installation: where writes go and where reads go.
    pub(crate) async fn pools(self, url: &DatabaseUrl) -> Result<(AnyPool, AnyPool)> {
        let options = self.options(url)?;
        let session = self.session();
        let pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_slow_threshold(Duration::from_secs(10))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        conn.execute(session).await?;
                        Ok(())
                    })
                })
        };
        match self {
            Self::Sqlite => {
                // Writers are serialized by SQLite anyway; one pooled writer avoids busy
                // waits inside this process. The event path has its own connection. Its
                // cache is the event writer's size: a group commit of statements or
                // SCIM creates inserts into indexes on random keys (statement ids,
                // actors, userNames), whose pages beyond 16 MiB were read from the
                // kernel for every insert.
                let write = pool(1)
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            conn.execute(session).await?;
                            conn.execute("PRAGMA cache_size = -65536").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                let read_only = self.options_with(url, "ro")?;
                let read = pool(4).min_connections(1).connect_with(read_only).await?;
                Ok((write, read))
            }
            Self::Postgres => {
                let shared = pool(16)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await?;
                Ok((shared.clone(), shared))
            }
        }
    }
}

/// What a bound list holds (PostgreSQL casts the elements).
#[derive(Debug, Clone, Copy)]
pub(crate) enum ListOf {
    Integers,
    Texts,
}

/// A yes/no column: `BOOLEAN` on PostgreSQL, 0/1 on SQLite (which has no boolean type and
/// reads back integers). Decode such columns through this, e.g.
/// `#[sqlx(try_from = "Flag")] active: bool`; bind plain `bool`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub bool);

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0
    }
}

impl sqlx::Type<sqlx::Any> for Flag {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <bool as sqlx::Type<sqlx::Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <bool as sqlx::Type<sqlx::Any>>::compatible(ty)
            || <i64 as sqlx::Type<sqlx::Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for Flag {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        use sqlx::ValueRef;
        if <bool as sqlx::Type<sqlx::Any>>::compatible(&value.type_info()) {
            Ok(Self(<bool as sqlx::Decode<sqlx::Any>>::decode(value)?))
        } else {
            Ok(Self(<i64 as sqlx::Decode<sqlx::Any>>::decode(value)? != 0))
        }
    }
}

/// A nullable id column, e.g. `#[sqlx(try_from = "crate::db::NullableId")] user_id:
/// Option<UserId>` (`try_from = "i64"` serves the columns that are never NULL). Bind
/// `id.map(|id| id.0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NullableId(pub Option<i64>);

impl From<NullableId> for Option<coachloop_core::ids::UserId> {
    fn from(id: NullableId) -> Self {
        id.0.map(coachloop_core::ids::UserId)
    }
}

impl sqlx::Type<sqlx::Any> for NullableId {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<sqlx::Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<sqlx::Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for NullableId {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Self(<Option<i64> as sqlx::Decode<sqlx::Any>>::decode(
            value,
        )?))
    }
}
