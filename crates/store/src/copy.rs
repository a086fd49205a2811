//! Moving an installation (`coachloop db copy`): every row of every table from one
//! database to another, in any direction between the engines, checked row by row.
//!
//! * The target is migrated (migrations only: none of the seeding [`crate::Store::open`]
//!   does) and must then be empty; it is filled in ONE write transaction, so a failure at
//!   any point leaves it as it was, empty, and the copy can simply be run again.
//! * The source is read in one snapshot (a read transaction), table by table in foreign
//!   key order ([`TABLES`]), in pages by primary key (`WHERE key > last ORDER BY key LIMIT
//!   n`); a task of its own reads the next page while the previous one is written.
//!   Rows go into PostgreSQL by `COPY … FROM STDIN` (a page at a time), into SQLite as
//!   multi-row inserts (as many rows per statement as its parameter limit allows). The
//!   target's secondary indexes are dropped while rows go in and made again after.
//! * Flags are read through [`Flag`] (0/1 on SQLite, booleans on PostgreSQL) and bound as
//!   booleans, which each engine writes in its own form.
//! * Before the commit, every table of the target is read back inside the transaction and
//!   compared with the source: the row count and a checksum, the sum of a SHA-256 of each
//!   row's values written in one canonical form (computed here, the same for both
//!   engines, and independent of row order: the engines order text keys differently). A
//!   mismatch rolls the copy back.
//! * On PostgreSQL, each identity sequence is moved past the copied ids, so rows created
//!   later do not collide with them, and the tables are analysed after the commit.

use crate::db::{Backend, Flag};
use crate::sql::{QueryBuilder, Separated};
use crate::{DatabaseUrl, Result, StoreError};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AnyConnection, Connection, Executor, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Rows read per page, and the most written per statement.
pub const ROWS_PER_INSERT: usize = 4000;

/// What a column holds, and so how it is read, hashed and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    /// INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL.
    Bool,
    Real,
    Text,
    Bytes,
}

use Kind::{Bool, Bytes, Int, Real, Text};

/// A table as the copy sees it.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// The primary key: pages are read in its order.
    key: &'static [&'static str],
    columns: &'static [(&'static str, Kind)],
    /// Whether `id` is an identity column (PostgreSQL's sequence is moved past the copy).
    identity: bool,
}

const ID: &[&str] = &["id"];

/// Every table of the schema, parents before children (each table's foreign keys point
/// only at tables above it). A copy refuses to run when a database has a table or column
/// that is not listed here, so a migration that adds one fails the copy tests until it
/// is listed.
pub static TABLES: &[Table] = &[
    Table {
        name: "accounts",
        key: ID,
        identity: true,
        columns: &[("id", Int), ("name", Text), ("created_at", Int)],
    },
    Table {
        name: "tokens",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("name", Text),
            ("secret_hash", Text),
            ("scopes", Text),
            ("expires_at", Int),
            ("created_at", Int),
            ("last_used_at", Int),
            ("revoked_at", Int),
            ("rate_per_second", Int),
            ("rate_per_day", Int),
        ],
    },
    Table {
        name: "users",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("email", Text),
            ("email_norm", Text),
            ("employee_number", Text),
            ("first_name", Text),
            ("last_name", Text),
            ("job_title", Text),
            ("phone_number", Text),
            ("extension", Text),
            ("mobile_phone_number", Text),
            ("location", Text),
            ("division", Text),
            ("department", Text),
            ("organization", Text),
            ("manager_name", Text),
            ("manager_email", Text),
            ("language", Text),
            ("comment", Text),
            ("employee_start_date", Text),
            ("custom_field_1", Text),
            ("custom_field_2", Text),
            ("custom_field_3", Text),
            ("custom_field_4", Text),
            ("custom_date_1", Text),
            ("custom_date_2", Text),
            ("provisioning_managed", Bool),
            ("provisioning_guid", Text),
            ("status", Text),
            ("joined_on", Int),
            ("last_sign_in", Int),
            ("archived_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "user_identities",
        key: &["account_id", "identity"],
        identity: false,
        columns: &[
            ("account_id", Int),
            ("identity", Text),
            ("display", Text),
            ("user_id", Int),
            ("is_alias", Bool),
        ],
    },
    Table {
        name: "event_types",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("name", Text),
            ("description", Text),
            ("built_in", Bool),
            ("created_at", Int),
        ],
    },
    Table {
        name: "events",
        key: ID,
        // The id is the upper half of the event's UUIDv7, not a sequence.
        identity: false,
        columns: &[
            ("id", Int),
            ("id_low", Int),
            ("account_id", Int),
            ("event_type_id", Int),
            ("user_id", Int),
            ("target_user", Text),
            ("target_norm", Text),
            ("external_id", Text),
            ("source", Text),
            ("description", Text),
            ("occurred_at", Int),
            ("risk_level", Int),
            ("risk_decay_mode", Int),
            ("risk_expire_date", Int),
            ("metadata", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "event_requests",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("account_id", Int),
            ("token_name", Text),
            ("integration", Text),
            ("events", Bytes),
            ("failures", Text),
            ("processed_at", Int),
        ],
    },
    Table {
        name: "groups",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("name", Text),
            ("description", Text),
            ("group_type", Text),
            ("provisioning_guid", Text),
            ("version", Int),
            ("status", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("archived_at", Int),
        ],
    },
    Table {
        name: "group_versions",
        key: &["group_id", "version"],
        identity: false,
        columns: &[
            ("group_id", Int),
            ("version", Int),
            ("criteria", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "group_members",
        key: &["group_id", "user_id"],
        identity: false,
        columns: &[
            ("group_id", Int),
            ("user_id", Int),
            ("account_id", Int),
            ("joined_at", Int),
            ("version", Int),
        ],
    },
    Table {
        name: "group_history",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("group_id", Int),
            ("user_id", Int),
            ("change", Text),
            ("at", Int),
            ("version", Int),
            ("reason", Text),
            ("recorded_at", Int),
        ],
    },
    Table {
        name: "group_schedule",
        key: &["group_id", "user_id"],
        identity: false,
        columns: &[
            ("group_id", Int),
            ("user_id", Int),
            ("account_id", Int),
            ("due_at", Int),
        ],
    },
    Table {
        name: "risk_scores",
        key: &["account_id", "user_id", "day"],
        identity: false,
        columns: &[
            ("account_id", Int),
            ("user_id", Int),
            ("day", Text),
            ("score", Real),
        ],
    },
    Table {
        name: "group_risk_scores",
        key: &["account_id", "group_id", "day"],
        identity: false,
        columns: &[
            ("account_id", Int),
            ("group_id", Int),
            ("day", Text),
            ("score", Real),
        ],
    },
    Table {
        name: "content",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("kind", Text),
            ("slug", Text),
            ("builtin", Bool),
            ("title", Text),
            ("summary", Text),
            ("minutes", Int),
            ("pass_mark", Int),
            ("quiz", Text),
            ("version", Text),
            ("body", Text),
            ("published_at", Int),
            ("retired_at", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "campaigns",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("name", Text),
            ("status", Text),
            ("all_users", Bool),
            ("auto_enroll", Bool),
            ("allow_multiple", Bool),
            ("cooldown", Text),
            ("start_at", Int),
            ("end_at", Int),
            ("relative_duration", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "campaign_content",
        key: &["campaign_id", "content_id"],
        identity: false,
        columns: &[("campaign_id", Int), ("content_id", Int), ("position", Int)],
    },
    Table {
        name: "campaign_groups",
        key: &["campaign_id", "group_id"],
        identity: false,
        columns: &[("campaign_id", Int), ("group_id", Int)],
    },
    Table {
        name: "enrollments",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("campaign_id", Int),
            ("content_id", Int),
            ("user_id", Int),
            ("status", Text),
            ("enrolled_at", Int),
            ("due_at", Int),
            ("started_at", Int),
            ("completed_at", Int),
            ("past_due_at", Int),
            ("time_spent", Int),
            ("score", Int),
            ("attempts", Int),
            ("policy_acknowledged", Bool),
            ("cause", Text),
        ],
    },
    Table {
        name: "secrets",
        key: &["name"],
        identity: false,
        columns: &[("name", Text), ("value", Bytes), ("created_at", Int)],
    },
    Table {
        name: "webhooks",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("url", Text),
            ("secret", Text),
            ("events", Text),
            ("active", Bool),
            ("created_at", Int),
        ],
    },
    Table {
        name: "jobs",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("kind", Text),
            ("dedupe", Text),
            ("payload", Text),
            ("run_at", Int),
            ("attempts", Int),
            ("status", Text),
            ("last_error", Text),
            ("created_at", Int),
            ("done_at", Int),
        ],
    },
    Table {
        name: "deliveries",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("job_id", Int),
            ("account_id", Int),
            ("attempt", Int),
            ("at", Int),
            ("ok", Bool),
            ("status_code", Int),
            ("error", Text),
            ("took_ms", Int),
        ],
    },
    Table {
        name: "admins",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("email", Text),
            ("email_norm", Text),
            ("first_name", Text),
            ("last_name", Text),
            ("created_at", Int),
        ],
    },
];

/// The migrations' own bookkeeping, which each side keeps for itself.
/// The migrations' own bookkeeping, which each side keeps for itself.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

impl Table {
    fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }

    /// Where each key column is in a row.
    fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .map(|key| {
                self.columns
                    .iter()
                    .position(|(name, _)| name == key)
                    .unwrap_or_else(|| panic!("key {key} of {} is not a column", self.name))
            })
            .collect()
    }

    /// The page after the key bound as `$1…` (the first page without `after`).
    fn page_sql(&self, after: bool) -> String {
        let key = self.key.join(", ");
        let mut sql = format!("SELECT {} FROM {}", self.column_list(), self.name);
        if after {
            let places: Vec<String> = (1..=self.key.len()).map(|n| format!("${n}")).collect();
            sql.push_str(&format!(" WHERE ({key}) > ({})", places.join(", ")));
        }
        sql.push_str(&format!(" ORDER BY {key} LIMIT {ROWS_PER_INSERT}"));
        sql
    }
}

/// One value as read: typed by its column, the same whichever engine it came from.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    /// Column `index` of `row`, read as `kind`; flags through `B` (the engine's type that
    /// reads them: [`Flag`] through `Any`, `bool` on a PostgreSQL connection).
    fn read<R, B>(row: &R, index: usize, kind: Kind) -> std::result::Result<Self, sqlx::Error>
    where
        R: Row,
        usize: sqlx::ColumnIndex<R>,
        B: Into<bool>,
        for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<B>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(match kind {
            Int => row
                .try_get::<Option<i64>, _>(index)?
                .map_or(Self::Null, Self::Int),
            Bool => row
                .try_get::<Option<B>, _>(index)?
                .map_or(Self::Null, |flag| Self::Bool(flag.into())),
            Real => row
                .try_get::<Option<f64>, _>(index)?
                .map_or(Self::Null, Self::Real),
            Text => row
                .try_get::<Option<String>, _>(index)?
                .map_or(Self::Null, Self::Text),
            Bytes => row
                .try_get::<Option<Vec<u8>>, _>(index)?
                .map_or(Self::Null, Self::Bytes),
        })
    }

    /// Binds the value as a parameter of a column of `kind` (a NULL keeps the column's
    /// type, which PostgreSQL needs).
    fn bind<'a>(&'a self, kind: Kind, values: &mut Separated<'_, 'a>) {
        match (self, kind) {
            (Self::Int(v), _) => values.push_bind(*v),
            (Self::Bool(v), _) => values.push_bind(*v),
            (Self::Real(v), _) => values.push_bind(*v),
            (Self::Text(v), _) => values.push_bind(v.as_str()),
            (Self::Bytes(v), _) => values.push_bind(v.as_slice()),
            (Self::Null, Int) => values.push_bind(None::<i64>),
            (Self::Null, Bool) => values.push_bind(None::<bool>),
            (Self::Null, Real) => values.push_bind(None::<f64>),
            (Self::Null, Text) => values.push_bind(None::<&str>),
            (Self::Null, Bytes) => values.push_bind(None::<&[u8]>),
        };
    }

    /// Appends the value in the text format of PostgreSQL's `COPY`: `\N` for NULL,
    /// backslash escapes for the characters that separate fields and rows.
    fn copy_text(&self, out: &mut Vec<u8>) {
        match self {
            Self::Null => out.extend_from_slice(b"\\N"),
            Self::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Self::Bool(v) => out.push(if *v { b't' } else { b'f' }),
            // Rust writes the shortest text that reads back as the same float.
            Self::Real(v) if v.is_nan() => out.extend_from_slice(b"NaN"),
            Self::Real(v) if v.is_infinite() => {
                out.extend_from_slice(if *v > 0.0 { b"Infinity" } else { b"-Infinity" })
            }
            Self::Real(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Self::Text(v) => {
                for byte in v.bytes() {
                    match byte {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        other => out.push(other),
                    }
                }
            }
            // bytea's hex form, its backslash escaped for COPY.
            Self::Bytes(v) => {
                out.extend_from_slice(b"\\\\x");
                out.extend_from_slice(hex::encode(v).as_bytes());
            }
        }
    }

    /// Appends the canonical form hashed for checksums: a tag, then the value (integers
    /// and floats as little-endian bytes, text and bytes with their length first).
    fn canonical(&self, out: &mut Vec<u8>) {
        match self {
            Self::Null => out.push(0),
            Self::Int(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Self::Bool(v) => out.extend_from_slice(&[2, u8::from(*v)]),
            Self::Real(v) => {
                out.push(3);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            Self::Text(v) => {
                out.push(4);
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                out.extend_from_slice(v.as_bytes());
            }
            Self::Bytes(v) => {
                out.push(5);
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
    }
}

/// `sql` with the key values bound (keys are integers or text).
fn keyed<'q, DB>(
    sql: &'q str,
    after: &'q [Value],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::query::<DB>(sql);
    for value in after {
        query = match value {
            Value::Int(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.as_str()),
            other => unreachable!("keys are integers or text, not {other:?}"),
        };
    }
    query
}

/// Decodes the rows of a page of `table`, row after row.
fn decode<R, B>(table: &Table, rows: &[R], after: Option<&[Value]>) -> Result<Vec<Value>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    B: Into<bool>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<B>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut values = Vec::with_capacity(rows.len() * table.columns.len());
    for row in rows {
        for (index, (column, kind)) in table.columns.iter().enumerate() {
            let value = Value::read::<R, B>(row, index, *kind).map_err(|e| {
                StoreError::Corrupt(format!(
                    "{}.{column} (a row after key {after:?}) cannot be read as {kind:?}: {e}",
                    table.name
                ))
            })?;
            values.push(value);
        }
    }
    Ok(values)
}

/// A connection pages of a table are read from.
trait Reader {
    /// Up to [`ROWS_PER_INSERT`] rows of `table` after the key `after`, in key order, row
    /// after row.
    async fn page(&mut self, table: &Table, after: Option<&[Value]>) -> Result<Vec<Value>>;
}

impl Reader for AnyConnection {
    async fn page(&mut self, table: &Table, after: Option<&[Value]>) -> Result<Vec<Value>> {
        let sql = table.page_sql(after.is_some());
        let rows = keyed::<sqlx::Any>(&sql, after.unwrap_or_default())
            .fetch_all(&mut *self)
            .await?;
        decode::<_, Flag>(table, &rows, after)
    }
}

impl Reader for PgConnection {
    async fn page(&mut self, table: &Table, after: Option<&[Value]>) -> Result<Vec<Value>> {
        let sql = table.page_sql(after.is_some());
        let rows = keyed::<sqlx::Postgres>(&sql, after.unwrap_or_default())
            .fetch_all(&mut *self)
            .await?;
        decode::<_, bool>(table, &rows, after)
    }
}

/// The row count and checksum of a table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub rows: u64,
    /// The wrapping sum of the first 128 bits of each row's SHA-256.
    pub checksum: u128,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.checksum)
    }
}

/// Adds rows to a [`Tally`].
#[derive(Default)]
struct Hasher {
    tally: Tally,
    sha: Sha256,
    buffer: Vec<u8>,
}

impl Hasher {
    /// Adds each row of `values` (`width` values a row).
    fn add(&mut self, values: &[Value], width: usize) {
        for row in values.chunks(width) {
            self.buffer.clear();
            for value in row {
                value.canonical(&mut self.buffer);
            }
            self.sha.update(&self.buffer);
            let digest = self.sha.finalize_reset();
            let mut first = [0u8; 16];
            first.copy_from_slice(&digest[..16]);
            self.tally.rows += 1;
            self.tally.checksum = self.tally.checksum.wrapping_add(u128::from_le_bytes(first));
        }
    }
}

/// A table read page by page in key order.
struct Pages {
    table: &'static Table,
    keys: Vec<usize>,
    /// The key of the last row read.
    after: Option<Vec<Value>>,
    done: bool,
}

impl Pages {
    fn new(table: &'static Table) -> Self {
        Self {
            table,
            keys: table.key_positions(),
            after: None,
            done: false,
        }
    }

    /// The next page: its values, row after row; `None` after the last row.
    async fn next(&mut self, conn: &mut impl Reader) -> Result<Option<Vec<Value>>> {
        if self.done {
            return Ok(None);
        }
        let width = self.table.columns.len();
        let values = conn.page(self.table, self.after.as_deref()).await?;
        self.done = values.len() < ROWS_PER_INSERT * width;
        if values.is_empty() {
            return Ok(None);
        }
        let last = &values[values.len() - width..];
        self.after = Some(self.keys.iter().map(|k| last[*k].clone()).collect());
        Ok(Some(values))
    }
}

/// Reads every row of `table` on `conn` into a [`Tally`], telling `progress` as it goes.
async fn tally_table(
    conn: &mut impl Reader,
    table: &'static Table,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Tally> {
    let mut pages = Pages::new(table);
    let mut hasher = Hasher::default();
    while let Some(values) = pages.next(conn).await? {
        hasher.add(&values, table.columns.len());
        progress(Progress::Rows((values.len() / table.columns.len()) as u64));
    }
    Ok(hasher.tally)
}

/// The connection the copy writes through. PostgreSQL's is its own driver's, for `COPY …
/// FROM STDIN`: several times faster than multi-row inserts, which `Any` is limited to.
enum Target {
    Sqlite(AnyConnection),
    Postgres(PgConnection),
}

impl Target {
    fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    async fn execute(&mut self, sql: &str) -> Result<()> {
        match self {
            Self::Sqlite(conn) => {
                conn.execute(sql).await?;
            }
            Self::Postgres(conn) => {
                conn.execute(sql).await?;
            }
        }
        Ok(())
    }

    /// Whether `sql` answers a row.
    async fn any_row(&mut self, sql: &str) -> Result<bool> {
        Ok(match self {
            Self::Sqlite(conn) => sqlx::query(sql).fetch_optional(conn).await?.is_some(),
            Self::Postgres(conn) => sqlx::query(sql).fetch_optional(conn).await?.is_some(),
        })
    }

    /// The rows of a two-text-column query.
    async fn pairs(&mut self, sql: &str) -> Result<Vec<(String, String)>> {
        Ok(match self {
            Self::Sqlite(conn) => sqlx::query_as(sql).fetch_all(conn).await?,
            Self::Postgres(conn) => sqlx::query_as(sql).fetch_all(conn).await?,
        })
    }

    /// Writes `values` (rows of `table`).
    async fn insert(&mut self, table: &Table, values: &[Value]) -> Result<()> {
        let width = table.columns.len();
        match self {
            Self::Sqlite(conn) => {
                let rows_per_insert = (SQLITE_MAX_BINDS / width).min(ROWS_PER_INSERT);
                let head = format!("INSERT INTO {} ({}) ", table.name, table.column_list());
                for chunk in values.chunks(width * rows_per_insert) {
                    let mut query = QueryBuilder::new(head.as_str());
                    query.push_values(chunk.chunks(width), |mut tuple, row| {
                        for (value, (_, kind)) in row.iter().zip(table.columns) {
                            value.bind(*kind, &mut tuple);
                        }
                    });
                    query.build().execute(&mut *conn).await?;
                }
            }
            Self::Postgres(conn) => {
                let mut text = Vec::with_capacity(values.len() * 16);
                for row in values.chunks(width) {
                    for (i, value) in row.iter().enumerate() {
                        if i > 0 {
                            text.push(b'\t');
                        }
                        value.copy_text(&mut text);
                    }
                    text.push(b'\n');
                }
                let statement = format!("COPY {} ({}) FROM STDIN", table.name, table.column_list());
                let mut copy = conn.copy_in_raw(&statement).await?;
                if let Err(e) = copy.send(text).await {
                    copy.abort("the copy failed").await.ok();
                    return Err(e.into());
                }
                copy.finish().await?;
            }
        }
        Ok(())
    }

    async fn close(self) -> Result<()> {
        match self {
            Self::Sqlite(conn) => conn.close().await?,
            Self::Postgres(conn) => conn.close().await?,
        }
        Ok(())
    }
}

impl Reader for Target {
    async fn page(&mut self, table: &Table, after: Option<&[Value]>) -> Result<Vec<Value>> {
        match self {
            Self::Sqlite(conn) => conn.page(table, after).await,
            Self::Postgres(conn) => conn.page(table, after).await,
        }
    }
}

/// Parameters bound per SQLite statement. SQLite allows 32,766, but it finds a `$N`
/// parameter's name by a linear search of the statement's names, which sqlx does for
/// each parameter it binds: a statement of n parameters costs n²/2 steps. At 32,766 a
/// copy into SQLite managed 1,400 rows a second; at 999 the search is a small part of
/// the cost.
const SQLITE_MAX_BINDS: usize = 999;

/// What a copy tells as it goes (for a progress bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A pass over every table begins, over this many rows in all.
    Pass(Pass, u64),
    /// The pass reached this table (or, named `(indexes)`, the target's indexes are
    /// being made).
    Table(&'static str),
    /// This many more rows were copied (or checked).
    Rows(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Copy,
    Check,
}

/// One table of a copy: what the source held, what the target holds.
#[derive(Debug, Clone)]
pub struct TableReport {
    pub table: &'static str,
    pub source: Tally,
    pub target: Tally,
    /// Time spent copying this table's rows (reading, writing).
    pub elapsed: Duration,
}

impl TableReport {
    pub fn matches(&self) -> bool {
        self.source == self.target
    }
}

/// The outcome of [`copy`].
#[derive(Debug, Clone)]
pub struct Report {
    pub tables: Vec<TableReport>,
    /// From the first row read to the last row written.
    pub copy_time: Duration,
    /// Making the target's secondary indexes once the rows are in.
    pub index_time: Duration,
    /// Reading the target back and comparing.
    pub check_time: Duration,
    /// True when every table matched and the copy was committed; when false, it was
    /// rolled back and the target is empty.
    pub committed: bool,
}

impl Report {
    /// Rows copied.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.source.rows).sum()
    }

    pub fn matches(&self) -> bool {
        self.tables.iter().all(TableReport::matches)
    }

    /// Rows copied a second, while rows were copied.
    pub fn rows_per_second(&self) -> f64 {
        self.rows() as f64 / self.copy_time.as_secs_f64().max(1e-9)
    }

    /// Rows copied a second, counting the time the indexes took too.
    pub fn rows_per_second_with_indexes(&self) -> f64 {
        self.rows() as f64 / (self.copy_time + self.index_time).as_secs_f64().max(1e-9)
    }
}

/// What the source reader hands the writer.
enum Message {
    /// The rows of each table (in [`TABLES`] order), counted in the source's snapshot.
    Counts(Vec<u64>),
    Page(usize, Vec<Value>),
    /// A table was read to its end: its count and checksum.
    End(usize, Tally),
}

fn invalid(side: &str, message: impl Into<String>) -> StoreError {
    StoreError::invalid(side, message)
}

/// Copies everything from `from` to `to`, which must be empty (it is migrated first),
/// checks it and commits (see the module's documentation). A mismatch is not an error:
/// the report says which tables differ, and nothing was committed.
pub async fn copy(
    from: &DatabaseUrl,
    to: &DatabaseUrl,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report> {
    if from.expose() == to.expose() {
        return Err(invalid("to", "the target is the source itself"));
    }
    let source_backend = Backend::of(from)?;
    let target_backend = Backend::of(to)?;
    let mut source = open_source(source_backend, from).await?;
    check_migrations(&mut source, source_backend, from).await?;
    check_schema(&mut source, source_backend, "from").await?;

    let mut target = match target_backend {
        Backend::Sqlite => {
            let mut conn = target_backend.connect(&target_backend.options(to)?).await?;
            // 256 MiB of page cache: index pages of a large table stay in memory while
            // the copy appends to it.
            conn.execute("PRAGMA cache_size = -262144").await?;
            Target::Sqlite(conn)
        }
        Backend::Postgres => {
            let options = PgConnectOptions::from_str(to.expose())?;
            let mut conn = PgConnection::connect_with(&options).await?;
            conn.execute("SET TIME ZONE 'UTC'").await?;
            Target::Postgres(conn)
        }
    };
    match &mut target {
        Target::Sqlite(conn) => target_backend.migrator().run(conn).await?,
        Target::Postgres(conn) => target_backend.migrator().run(conn).await?,
    }
    check_schema_of(&mut target).await?;

    // (On PostgreSQL this also takes the lock every coachloop writer takes.)
    target.execute(target_backend.begin_write()).await?;
    let filled = fill(&mut target, source, source_backend, progress).await;
    let report = match filled {
        Ok(report) if report.matches() => {
            target.execute("COMMIT").await?;
            report
        }
        Ok(report) => {
            target.execute("ROLLBACK").await?;
            return Ok(report);
        }
        Err(e) => {
            // The error is what the caller needs; a failed rollback means the connection
            // is gone, and the transaction with it.
            let _ = target.execute("ROLLBACK").await;
            return Err(e);
        }
    };
    if target_backend == Backend::Postgres {
        // Fresh statistics, so the planner knows the copied tables' sizes at once.
        target.execute("ANALYZE").await?;
    }
    target.close().await?;
    Ok(Report {
        committed: true,
        ..report
    })
}

/// Inside the target's write transaction: refuses a target with rows, copies, moves the
/// sequences and reads the target back.
async fn fill(
    target: &mut Target,
    mut source: AnyConnection,
    source_backend: Backend,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report> {
    let mut occupied = Vec::new();
    for table in TABLES {
        if target
            .any_row(&format!("SELECT 1 FROM {} LIMIT 1", table.name))
            .await?
        {
            occupied.push(table.name);
        }
    }
    if !occupied.is_empty() {
        return Err(StoreError::conflict(
            "to",
            format!(
                "the target database already holds data (in {}); copy into an empty \
                 database (a new PostgreSQL database, or a SQLite path with no file yet)",
                occupied.join(", ")
            ),
        ));
    }

    // Secondary indexes are made again once the rows are in: building one from all the
    // rows (a sort) costs a fraction of updating it row by row. Unique ones among them
    // check their rows then; a duplicate fails the copy like any other error.
    let indexes = secondary_indexes(target).await?;
    for (name, _) in &indexes {
        target.execute(&format!("DROP INDEX {name}")).await?;
    }

    // The source is read by a task of its own, a page ahead of the writer.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Message>>(2);
    let reader = tokio::spawn(async move {
        let read = async {
            source
                .execute(match source_backend {
                    Backend::Sqlite => "BEGIN",
                    Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                })
                .await?;
            let mut counts = Vec::with_capacity(TABLES.len());
            for table in TABLES {
                let sql = format!("SELECT COUNT(*) FROM {}", table.name);
                let count: i64 = sqlx::query_scalar(&sql).fetch_one(&mut source).await?;
                counts.push(count as u64);
            }
            if tx.send(Ok(Message::Counts(counts))).await.is_err() {
                return Ok(());
            }
            for (index, table) in TABLES.iter().enumerate() {
                let mut pages = Pages::new(table);
                let mut hasher = Hasher::default();
                while let Some(values) = pages.next(&mut source).await? {
                    hasher.add(&values, table.columns.len());
                    if tx.send(Ok(Message::Page(index, values))).await.is_err() {
                        return Ok(());
                    }
                }
                if tx
                    .send(Ok(Message::End(index, hasher.tally)))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            source.execute("COMMIT").await?;
            Ok(())
        };
        let read: Result<()> = read.await;
        if let Err(e) = read {
            let _ = tx.send(Err(e)).await;
        }
        let _ = source.close().await;
    });
    let written = write(target, &mut rx, progress).await;
    drop(rx);
    if written.is_err() {
        reader.abort();
    }
    let _ = reader.await;
    let (sources, elapsed, copy_time) = written?;

    let started = Instant::now();
    progress(Progress::Table("(indexes)"));
    if target.backend() == Backend::Postgres {
        target
            .execute("SET LOCAL maintenance_work_mem = '256MB'")
            .await?;
    }
    for (_, definition) in &indexes {
        target.execute(definition).await?;
    }
    let index_time = started.elapsed();

    if target.backend() == Backend::Postgres {
        for table in TABLES.iter().filter(|t| t.identity) {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), COALESCE(MAX(id), 0) + 1, \
                 false) FROM {0}",
                table.name
            );
            target.execute(&sql).await?;
        }
    }

    let started = Instant::now();
    progress(Progress::Pass(
        Pass::Check,
        sources.iter().map(|t| t.rows).sum(),
    ));
    let mut tables = Vec::with_capacity(TABLES.len());
    for (index, table) in TABLES.iter().enumerate() {
        progress(Progress::Table(table.name));
        tables.push(TableReport {
            table: table.name,
            source: sources[index],
            target: tally_table(target, table, progress).await?,
            elapsed: elapsed[index],
        });
    }
    Ok(Report {
        tables,
        copy_time,
        index_time,
        check_time: started.elapsed(),
        committed: false,
    })
}

/// The target's indexes other than primary keys and UNIQUE constraints: (name, the
/// statement that creates it).
async fn secondary_indexes(target: &mut Target) -> Result<Vec<(String, String)>> {
    target
        .pairs(match target.backend() {
            // Indexes made by a constraint have no SQL of their own.
            Backend::Sqlite => {
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
                 ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index AS x \
                 JOIN pg_class AS i ON i.oid = x.indexrelid \
                 JOIN pg_class AS t ON t.oid = x.indrelid \
                 JOIN pg_namespace AS n ON n.oid = t.relnamespace \
                 WHERE n.nspname = current_schema() AND t.relname <> '_sqlx_migrations' \
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.oid) \
                 ORDER BY 1"
            }
        })
        .await
}

/// The writer's side: what the reader sends, inserted. Returns each table's source tally
/// and copy time, and the whole copy's time.
async fn write(
    target: &mut Target,
    rx: &mut tokio::sync::mpsc::Receiver<Result<Message>>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<(Vec<Tally>, Vec<Duration>, Duration)> {
    let mut sources = vec![None; TABLES.len()];
    let mut elapsed = vec![Duration::ZERO; TABLES.len()];
    let started = Instant::now();
    let mut table_started = started;
    let mut current = None;
    while let Some(message) = rx.recv().await {
        match message? {
            Message::Counts(counts) => {
                progress(Progress::Pass(Pass::Copy, counts.iter().sum()));
            }
            Message::Page(index, values) => {
                if current != Some(index) {
                    current = Some(index);
                    progress(Progress::Table(TABLES[index].name));
                }
                target.insert(&TABLES[index], &values).await?;
                progress(Progress::Rows(
                    (values.len() / TABLES[index].columns.len()) as u64,
                ));
            }
            Message::End(index, tally) => {
                sources[index] = Some(tally);
                let now = Instant::now();
                elapsed[index] = now - table_started;
                table_started = now;
            }
        }
    }
    let copy_time = started.elapsed();
    let sources = sources
        .into_iter()
        .zip(TABLES)
        .map(|(tally, table)| {
            tally.ok_or_else(|| {
                StoreError::Corrupt(format!("the source stopped before table {}", table.name))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((sources, elapsed, copy_time))
}

/// A connection that only reads `url`: no session settings (SQLite's would switch the
/// journal mode, a write), and SQLite never creates a missing file.
async fn open_source(backend: Backend, url: &DatabaseUrl) -> Result<AnyConnection> {
    Ok(AnyConnection::connect_with(&backend.read_only_options(url)?).await?)
}

/// Refuses a source that is not at this build's schema version.
async fn check_migrations(
    conn: &mut AnyConnection,
    backend: Backend,
    url: &DatabaseUrl,
) -> Result<()> {
    let sql = format!("SELECT version FROM {MIGRATIONS_TABLE} WHERE success ORDER BY version");
    let applied: Vec<i64> = sqlx::query_scalar(&sql)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| {
            invalid(
                "from",
                format!("{url:?} is not a coachloop database (its migrations cannot be read: {e})"),
            )
        })?;
    let known: Vec<i64> = backend.migrator().iter().map(|m| m.version).collect();
    if let Some(unknown) = applied.iter().find(|v| !known.contains(v)) {
        return Err(invalid(
            "from",
            format!(
                "the source has migration {unknown}, which this coachloop does not know: \
                 copy with the version that wrote it"
            ),
        ));
    }
    if applied.len() < known.len() {
        return Err(invalid(
            "from",
            format!(
                "the source is not migrated to this version of coachloop: run \
                 `coachloop migrate --database-url {}` first",
                url.expose()
            ),
        ));
    }
    Ok(())
}

/// What lists every (table, column) of a database.
fn columns_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
        }
        Backend::Postgres => {
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        }
    }
}

async fn check_schema(conn: &mut AnyConnection, backend: Backend, side: &str) -> Result<()> {
    let rows: Vec<(String, String)> = sqlx::query_as(columns_sql(backend))
        .fetch_all(&mut *conn)
        .await?;
    compare_schema(rows, side)
}

async fn check_schema_of(target: &mut Target) -> Result<()> {
    let rows = target.pairs(columns_sql(target.backend())).await?;
    compare_schema(rows, "to")
}

/// Refuses a database whose tables and columns are not exactly those of [`TABLES`].
fn compare_schema(rows: Vec<(String, String)>, side: &str) -> Result<()> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (table, column) in rows {
        if table != MIGRATIONS_TABLE {
            found.entry(table).or_default().insert(column);
        }
    }
    let listed: BTreeMap<String, BTreeSet<String>> = TABLES
        .iter()
        .map(|t| {
            let columns = t.columns.iter().map(|(c, _)| (*c).to_owned()).collect();
            (t.name.to_owned(), columns)
        })
        .collect();
    if found == listed {
        return Ok(());
    }
    let mut differences = Vec::new();
    for (table, columns) in &found {
        match listed.get(table) {
            None => differences.push(format!("table {table} is not copied")),
            Some(known) => {
                for column in columns.difference(known) {
                    differences.push(format!("column {table}.{column} is not copied"));
                }
                for column in known.difference(columns) {
                    differences.push(format!("column {table}.{column} is missing"));
                }
            }
        }
    }
    for table in listed.keys().filter(|t| !found.contains_key(*t)) {
        differences.push(format!("table {table} is missing"));
    }
    Err(invalid(
        side,
        format!(
            "the schema is not the one this coachloop copies: {}",
            differences.join("; ")
        ),
    ))
}

/// The count and checksum of every table of the database at `url`, read in one snapshot
/// and computed as [`copy`] computes them (to compare two databases).
pub async fn tally(url: &DatabaseUrl) -> Result<Vec<(&'static str, Tally)>> {
    let backend = Backend::of(url)?;
    let mut conn = open_source(backend, url).await?;
    conn.execute(match backend {
        Backend::Sqlite => "BEGIN",
        Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    })
    .await?;
    let mut tallies = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        tallies.push((table.name, tally_table(&mut conn, table, &|_| {}).await?));
    }
    conn.execute("COMMIT").await?;
    conn.close().await?;
    Ok(tallies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_a_column_and_every_table_is_listed_once() {
        let mut names = BTreeSet::new();
        for table in TABLES {
            assert!(names.insert(table.name), "{} listed twice", table.name);
            assert_eq!(table.key_positions().len(), table.key.len());
            assert_eq!(table.identity, table.key == ID && table.name != "events");
        }
    }

    #[test]
    fn a_checksum_sees_every_value_and_not_the_row_order() {
        let rows = |values: &[Value]| {
            let mut hasher = Hasher::default();
            hasher.add(values, 2);
            hasher.tally
        };
        let a = [Value::Int(1), Value::Text("x".into())];
        let b = [Value::Int(2), Value::Null];
        let ab = rows(&[a.clone(), b.clone()].concat());
        assert_eq!(ab, rows(&[b.clone(), a.clone()].concat()));
        assert_eq!(ab.rows, 2);
        for changed in [
            [Value::Int(1), Value::Text("y".into())],
            [Value::Int(1), Value::Bytes(b"x".to_vec())],
            [Value::Int(1), Value::Null],
            [Value::Bool(true), Value::Text("x".into())],
        ] {
            assert_ne!(ab, rows(&[changed, b.clone()].concat()));
        }
        // Text is length-prefixed: moving a character between two columns shows.
        let split = |x: &str, y: &str| rows(&[Value::Text(x.into()), Value::Text(y.into())]);
        assert_ne!(split("ab", "c"), split("a", "bc"));
    }
}
