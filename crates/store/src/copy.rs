//! Moving an installation (`coachloop db copy`): every row of every table from one
//! database to another, in any direction between the engines, checked row by row.
//!
//! * The target is migrated (migrations only: none of the seeding [`crate::Store::open`]
//!   does) and must then be empty; it is filled in ONE write transaction, so a failure at
//!   any point leaves it as it was, empty, and the copy can simply be run again.
//! * The source is read in one snapshot (a read transaction) through its engine's own
//!   driver, table by table in foreign key order ([`TABLES`]), in pages by primary key
//!   (`WHERE key > last ORDER BY key LIMIT n`); SQLite folds each page into one JSON text
//!   ([`JsonPage`]). A task of its own reads the next page while the previous one is
//!   written. Rows go into PostgreSQL by one binary `COPY … FROM STDIN` a table, into
//!   SQLite as multi-row inserts (as many rows per statement as its parameter limit
//!   allows). The target's secondary indexes are dropped while rows go in and made again
//!   after.
//! * Flags (0/1 on SQLite, booleans on PostgreSQL) are read and bound as booleans, which
//!   each engine writes in its own form.
//! * Before the commit, every table of the target is read back inside the transaction and
//!   compared with the source: the row count and a checksum, the sum of a SHA-256 of each
//!   row's values written in one canonical form (computed here, the same for both
//!   engines, and independent of row order: the engines order text keys differently). A
//!   mismatch rolls the copy back. PostgreSQL sends each table back as one binary `COPY …
//!   TO STDOUT`, hashed as it comes ([`BinaryRows`]).
//! * On PostgreSQL, the (empty) tables are truncated in the transaction so that `COPY`
//!   may write their rows frozen (`FREEZE`), each identity sequence is moved past the
//!   copied ids, so rows created later do not collide with them, and the tables are
//!   analysed after the commit.

use crate::db::Backend;
use crate::sql::{QueryBuilder, Separated};
use crate::{DatabaseUrl, Result, StoreError};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AnyConnection, ConnectOptions, Connection, Executor, Row};
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
        columns: &[
            ("id", Int),
            ("name", Text),
            ("created_at", Int),
            ("fact_version", Int),
            ("rules_version", Int),
        ],
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
            ("last_event_at", Int),
            ("last_error", Text),
            ("last_error_at", Int),
            ("lrs_key", Text),
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
            ("user_name", Text),
            ("user_name_norm", Text),
            ("display_name", Text),
            ("name_formatted", Text),
            ("manager_ref", Text),
            ("scim_deleted_at", Int),
        ],
    },
    Table {
        name: "user_emails",
        key: &["user_id", "position"],
        identity: false,
        columns: &[
            ("user_id", Int),
            ("position", Int),
            ("account_id", Int),
            ("value", Text),
            ("value_norm", Text),
            ("kind", Text),
            ("is_primary", Bool),
            ("display", Text),
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
            ("notices", Text),
        ],
    },
    Table {
        name: "notice_templates",
        key: &["account_id", "campaign_id", "notice", "language"],
        identity: false,
        columns: &[
            ("account_id", Int),
            ("campaign_id", Int),
            ("notice", Text),
            ("language", Text),
            ("subject", Text),
            ("body", Text),
            ("button", Text),
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
            ("format", Text),
            ("campaign_id", Int),
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
            ("claimed_by", Text),
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
            ("password_hash", Text),
            ("failed_sign_ins", Int),
            ("locked_until", Int),
        ],
    },
    Table {
        name: "console_sessions",
        key: &["token_hash"],
        identity: false,
        columns: &[
            ("token_hash", Text),
            ("account_id", Int),
            ("admin_id", Int),
            ("csrf", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("ended_at", Int),
        ],
    },
    Table {
        name: "audit_log",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("at", Int),
            ("actor_kind", Text),
            ("actor_id", Int),
            ("actor", Text),
            ("method", Text),
            ("path", Text),
            ("status", Int),
            ("before", Text),
            ("after", Text),
        ],
    },
    Table {
        name: "compliance_frameworks",
        key: &["account_id", "framework"],
        identity: false,
        columns: &[
            ("account_id", Int),
            ("framework", Text),
            ("enabled_at", Int),
        ],
    },
    Table {
        name: "compliance_requirements",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("kind", Text),
            ("title", Text),
            ("content", Text),
            ("campaigns", Text),
            ("recurrence", Text),
            ("new_hire_days", Int),
            ("scope_group", Int),
            ("tolerance_days", Int),
            ("due_soon_days", Int),
            ("completion_days", Int),
            ("status", Text),
            ("compliant", Int),
            ("at_risk", Int),
            ("non_compliant", Int),
            ("excepted", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "compliance_people",
        key: &["requirement_id", "user_id"],
        identity: false,
        columns: &[
            ("requirement_id", Int),
            ("user_id", Int),
            ("account_id", Int),
            ("status", Text),
            ("reason", Text),
            ("deadline", Int),
            ("last_completed", Int),
            ("changes_at", Int),
            ("since", Int),
            ("digest", Int),
        ],
    },
    Table {
        name: "compliance_exceptions",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("requirement_id", Int),
            ("user_id", Int),
            ("reason", Text),
            ("granted_by", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
        ],
    },
    Table {
        name: "compliance_history",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("framework", Text),
            ("control", Text),
            ("status", Text),
            ("compliant", Int),
            ("at_risk", Int),
            ("non_compliant", Int),
            ("excepted", Int),
            ("at", Int),
        ],
    },
    Table {
        name: "evidence_snapshots",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("framework", Text),
            ("control", Text),
            ("format", Text),
            ("period_from", Text),
            ("period_to", Text),
            ("collected_at", Int),
            ("body", Text),
            ("sha256", Text),
            ("previous_sha256", Text),
            ("chain_sha256", Text),
        ],
    },
    Table {
        name: "sync_connections",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("name", Text),
            ("region", Text),
            ("base_url", Text),
            ("key_sealed", Bytes),
            ("key_hint", Text),
            ("requirements", Text),
            ("interval_minutes", Int),
            ("next_sync_at", Int),
            ("lease_holder", Text),
            ("lease_until", Int),
            ("run_started_at", Int),
            ("stage", Text),
            ("next_page", Int),
            ("run_skipped", Int),
            ("last_success_at", Int),
            ("last_error", Text),
            ("last_error_at", Int),
            ("failures", Int),
            ("people", Int),
            ("campaigns", Int),
            ("enrollments", Int),
            ("skipped", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "sync_people",
        key: &["connection_id", "remote_id"],
        identity: false,
        columns: &[
            ("connection_id", Int),
            ("remote_id", Int),
            ("account_id", Int),
            ("user_id", Int),
            ("created", Bool),
            ("synced_at", Int),
        ],
    },
    Table {
        name: "sync_campaigns",
        key: &["connection_id", "remote_id"],
        identity: false,
        columns: &[
            ("connection_id", Int),
            ("remote_id", Int),
            ("name", Text),
            ("status", Text),
            ("end_date", Int),
            ("relative_duration", Text),
            ("synced_at", Int),
        ],
    },
    Table {
        name: "sync_enrollments",
        key: &["connection_id", "remote_id"],
        identity: false,
        columns: &[
            ("connection_id", Int),
            ("remote_id", Int),
            ("account_id", Int),
            ("user_id", Int),
            ("campaign_id", Int),
            ("campaign_name", Text),
            ("module_name", Text),
            ("content_type", Text),
            ("status", Text),
            ("enrolled_at", Int),
            ("due_at", Int),
            ("completed_at", Int),
            ("synced_at", Int),
        ],
    },
    Table {
        name: "xapi_statements",
        key: ID,
        identity: true,
        columns: &[
            ("id", Int),
            ("account_id", Int),
            ("statement_id", Text),
            ("body", Text),
            ("digest", Text),
            ("stored_at", Int),
            ("verb", Text),
            ("registration", Text),
            ("voided", Bool),
            ("voids", Text),
            ("refers_to", Text),
            ("standing", Text),
            ("note", Text),
            ("actor", Text),
            ("actor_key", Text),
            ("object_agent", Text),
            ("activity", Text),
            ("user_id", Int),
            ("enrollment_id", Int),
            ("finished", Bool),
        ],
    },
    Table {
        name: "xapi_statement_refs",
        key: &["account_id", "kind", "key", "seq"],
        identity: false,
        columns: &[
            ("account_id", Int),
            ("kind", Text),
            ("key", Text),
            ("seq", Int),
        ],
    },
    Table {
        name: "xapi_activities",
        key: &["account_id", "activity"],
        identity: false,
        columns: &[
            ("account_id", Int),
            ("activity", Text),
            ("content_id", Int),
            ("created_at", Int),
        ],
    },
    Table {
        name: "xapi_attachments",
        key: &["account_id", "sha2"],
        identity: false,
        columns: &[
            ("account_id", Int),
            ("sha2", Text),
            ("content_type", Text),
            ("content", Bytes),
            ("stored_at", Int),
        ],
    },
];

/// The migrations' own bookkeeping, which each side keeps for itself.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// What a running installation keeps about itself (its nodes, leases and the log its
/// nodes' caches check), not copied: the copy starts with none.
const RUNTIME_TABLES: &[&str] = &["nodes", "leases", "fact_log"];

impl Kind {
    /// The type PostgreSQL must give a column of this kind: the binary `COPY` format
    /// ([`Value::copy_binary`], [`BinaryRows`]) is that type's.
    fn postgres_type(self) -> &'static str {
        match self {
            Int => "bigint",
            Bool => "boolean",
            Real => "double precision",
            Text => "text",
            Bytes => "bytea",
        }
    }
}

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

    /// On SQLite: the page of [`Table::page_sql`] folded into one JSON array of rows,
    /// each an array of its values; floats as `quote` writes them (exactly: JSON's have
    /// 15 digits) and bytes in hex (JSON has none), both as strings. Read by [`JsonPage`].
    fn json_page_sql(&self, after: bool) -> String {
        let values: Vec<String> = self
            .columns
            .iter()
            .map(|(name, kind)| match kind {
                Real => format!("CASE WHEN {name} IS NULL THEN NULL ELSE quote({name}) END"),
                Bytes => format!("CASE WHEN {name} IS NULL THEN NULL ELSE hex({name}) END"),
                Int | Bool | Text => (*name).to_owned(),
            })
            .collect();
        format!(
            "SELECT json_group_array(json_array({})) FROM ({})",
            values.join(", "),
            self.page_sql(after)
        )
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
    /// Column `index` of `row`, read as `kind`.
    fn read<R>(row: &R, index: usize, kind: Kind) -> std::result::Result<Self, sqlx::Error>
    where
        R: Row,
        usize: sqlx::ColumnIndex<R>,
        for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(match kind {
            Int => row
                .try_get::<Option<i64>, _>(index)?
                .map_or(Self::Null, Self::Int),
            Bool => row
                .try_get::<Option<bool>, _>(index)?
                .map_or(Self::Null, Self::Bool),
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

    /// Appends the value as a field of PostgreSQL's binary `COPY` format: its length (-1
    /// for NULL), then the binary form of its column's type ([`Kind::postgres_type`]):
    /// integers and floats big-endian, a flag one byte, text and bytes as they are.
    fn copy_binary(&self, out: &mut Vec<u8>) -> Result<()> {
        let bytes: &[u8] = match self {
            Self::Null => {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                return Ok(());
            }
            Self::Int(v) => &v.to_be_bytes(),
            Self::Bool(v) => &[u8::from(*v)],
            Self::Real(v) => &v.to_bits().to_be_bytes(),
            Self::Text(v) => v.as_bytes(),
            Self::Bytes(v) => v,
        };
        let length = i32::try_from(bytes.len())
            .map_err(|_| StoreError::Corrupt("a value of 2 GiB or more".to_owned()))?;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(bytes);
        Ok(())
    }

    /// Appends the canonical form hashed for checksums: a tag, then the value (integers
    /// and floats as little-endian bytes, text and bytes with their length first).
    /// [`canonical_binary`] writes the same from a binary `COPY` field.
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

/// Appends the canonical form ([`Value::canonical`]) of a non-NULL field of a binary
/// `COPY` of a column of `kind`; `None` when the field is not of that type.
fn canonical_binary(kind: Kind, field: &[u8], out: &mut Vec<u8>) -> Option<()> {
    match kind {
        Int => {
            out.push(1);
            out.extend_from_slice(&i64::from_be_bytes(field.try_into().ok()?).to_le_bytes());
        }
        Bool => match field {
            [flag] => out.extend_from_slice(&[2, u8::from(*flag != 0)]),
            _ => return None,
        },
        Real => {
            out.push(3);
            out.extend_from_slice(&u64::from_be_bytes(field.try_into().ok()?).to_le_bytes());
        }
        Text | Bytes => {
            out.push(if kind == Text { 4 } else { 5 });
            out.extend_from_slice(&(field.len() as u64).to_le_bytes());
            out.extend_from_slice(field);
        }
    }
    Some(())
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
fn decode<R>(table: &Table, rows: &[R], after: Option<&[Value]>) -> Result<Vec<Value>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut values = Vec::with_capacity(rows.len() * table.columns.len());
    for row in rows {
        for (index, (column, kind)) in table.columns.iter().enumerate() {
            let value = Value::read(row, index, *kind).map_err(|e| {
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

/// A SQLite connection: the copy's target ([`Target::Sqlite`]) goes through `Any`.
impl Reader for AnyConnection {
    async fn page(&mut self, table: &Table, after: Option<&[Value]>) -> Result<Vec<Value>> {
        let sql = table.json_page_sql(after.is_some());
        let json: String = keyed::<sqlx::Any>(&sql, after.unwrap_or_default())
            .fetch_one(&mut *self)
            .await?
            .try_get(0)?;
        JsonPage::read(table, &json, after)
    }
}

impl Reader for SqliteConnection {
    async fn page(&mut self, table: &Table, after: Option<&[Value]>) -> Result<Vec<Value>> {
        let sql = table.json_page_sql(after.is_some());
        let json: String = keyed::<sqlx::Sqlite>(&sql, after.unwrap_or_default())
            .fetch_one(&mut *self)
            .await?
            .try_get(0)?;
        JsonPage::read(table, &json, after)
    }
}

/// A page of a SQLite table as [`Table::json_page_sql`] folds it, read into values:
/// SQLite hands over one text instead of a row at a time (each row a wake-up of the
/// thread that waits for it, each value a copy, together several times what reading it
/// from the file costs).
struct JsonPage<'t>(&'t Table);

impl JsonPage<'_> {
    fn read(table: &Table, json: &str, after: Option<&[Value]>) -> Result<Vec<Value>> {
        use serde::de::DeserializeSeed;
        let mut reader = serde_json::Deserializer::from_str(json);
        JsonPage(table)
            .deserialize(&mut reader)
            .and_then(|values| reader.end().map(|()| values))
            .map_err(|e| {
                StoreError::Corrupt(format!(
                    "{} (rows after key {after:?}) cannot be read: {e}",
                    table.name
                ))
            })
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for JsonPage<'_> {
    type Value = Vec<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonPage<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut rows: A) -> Result<Vec<Value>, A::Error> {
        let width = self.0.columns.len();
        let mut values = Vec::with_capacity(ROWS_PER_INSERT * width);
        while rows
            .next_element_seed(JsonRow(self.0, &mut values))?
            .is_some()
        {}
        Ok(values)
    }
}

/// A row of a [`JsonPage`]: its values appended to the page's.
struct JsonRow<'t, 'v>(&'t Table, &'v mut Vec<Value>);

impl<'de> serde::de::DeserializeSeed<'de> for JsonRow<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonRow<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a row of {} values", self.0.columns.len())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut row: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let JsonRow(table, values) = self;
        for (index, (column, kind)) in table.columns.iter().enumerate() {
            let value = row
                .next_element_seed(JsonValue(*kind))
                .map_err(|e| A::Error::custom(format!("{column}: {e}")))?
                .ok_or_else(|| {
                    A::Error::custom(format!(
                        "a row of {index} values, not {}",
                        table.columns.len()
                    ))
                })?;
            values.push(value);
        }
        if row.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(A::Error::custom(format!(
                "a row of more than {} values",
                table.columns.len()
            )));
        }
        Ok(())
    }
}

/// A value of a [`JsonRow`], of a column of this kind.
struct JsonValue(Kind);

impl<'de> serde::de::DeserializeSeed<'de> for JsonValue {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonValue {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.0 {
            Int | Bool => f.write_str("an integer"),
            Real => f.write_str("a float, quoted"),
            Text => f.write_str("a string"),
            Bytes => f.write_str("bytes in hex"),
        }
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        match self.0 {
            Int => Ok(Value::Int(v)),
            Bool => Ok(Value::Bool(v != 0)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(E::invalid_type(serde::de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        let unexpected = || E::invalid_value(serde::de::Unexpected::Str(v), &self);
        match self.0 {
            Text => Ok(Value::Text(v.to_owned())),
            Real => v.parse().map(Value::Real).map_err(|_| unexpected()),
            Bytes => hex::decode(v).map(Value::Bytes).map_err(|_| unexpected()),
            Int | Bool => Err(unexpected()),
        }
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        match self.0 {
            Text => Ok(Value::Text(v)),
            _ => self.visit_str(&v),
        }
    }
}

impl Reader for PgConnection {
    async fn page(&mut self, table: &Table, after: Option<&[Value]>) -> Result<Vec<Value>> {
        let sql = table.page_sql(after.is_some());
        let rows = keyed::<sqlx::Postgres>(&sql, after.unwrap_or_default())
            .fetch_all(&mut *self)
            .await?;
        decode(table, &rows, after)
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
    /// The canonical form of the row being added.
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
            self.add_buffer();
        }
    }

    /// Adds the row whose canonical form is in `buffer`.
    fn add_buffer(&mut self) {
        self.sha.update(&self.buffer);
        let digest = self.sha.finalize_reset();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        self.tally.rows += 1;
        self.tally.checksum = self.tally.checksum.wrapping_add(u128::from_le_bytes(first));
    }
}

/// PostgreSQL's binary `COPY` format begins with this signature, 32 bits of flags and a
/// header extension (its length in 32 bits, then its bytes). Each row follows as its
/// number of fields (16 bits), then each field's length (32 bits; -1 for NULL) and bytes;
/// -1 in place of a row's field count ends the data. Integers are big-endian.
const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// The rows of a binary `COPY … TO STDOUT` of a table, added to a [`Hasher`] as they come
/// in, in whatever pieces they come.
struct BinaryRows {
    table: &'static Table,
    /// What came but was not read yet: the start of a row (or of the header).
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
}

impl BinaryRows {
    fn new(table: &'static Table) -> Self {
        Self {
            table,
            pending: Vec::new(),
            header_read: false,
            ended: false,
        }
    }

    /// Adds every whole row of what is pending and `data`; returns how many.
    fn feed(&mut self, data: &[u8], hasher: &mut Hasher) -> Result<u64> {
        if self.pending.is_empty() {
            let (used, rows) = self.read(data, hasher)?;
            self.pending.extend_from_slice(&data[used..]);
            Ok(rows)
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(data);
            let (used, rows) = self.read(&pending, hasher)?;
            pending.drain(..used);
            self.pending = pending;
            Ok(rows)
        }
    }

    /// Reads the header (the first time) and whole rows from `data`; returns the bytes
    /// read and the rows added.
    fn read(&mut self, data: &[u8], hasher: &mut Hasher) -> Result<(usize, u64)> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!(
                "the binary COPY of {} cannot be read: {what}",
                self.table.name
            ))
        };
        let mut at = 0;
        if !self.header_read {
            let Some(extension) = be_u32(data, 15) else {
                return Ok((0, 0));
            };
            if &data[..11] != BINARY_SIGNATURE {
                return Err(corrupt("no signature"));
            }
            at = 19 + extension as usize;
            if data.len() < at {
                return Ok((0, 0));
            }
            self.header_read = true;
        }
        let mut rows = 0;
        while !self.ended {
            let Some(fields) = data.get(at..at + 2) else {
                break;
            };
            let fields = i16::from_be_bytes([fields[0], fields[1]]);
            if fields == -1 {
                self.ended = true;
                at += 2;
                break;
            }
            if fields as usize != self.table.columns.len() {
                return Err(corrupt(&format!("a row of {fields} fields")));
            }
            let mut next = at + 2;
            let mut whole = true;
            hasher.buffer.clear();
            for (column, kind) in self.table.columns {
                let Some(length) = be_u32(data, next) else {
                    whole = false;
                    break;
                };
                next += 4;
                if length == u32::MAX {
                    hasher.buffer.push(0);
                    continue;
                }
                let Some(field) = data.get(next..next + length as usize) else {
                    whole = false;
                    break;
                };
                next += length as usize;
                canonical_binary(*kind, field, &mut hasher.buffer)
                    .ok_or_else(|| corrupt(&format!("{column} is not {}", kind.postgres_type())))?;
            }
            if !whole {
                break;
            }
            hasher.add_buffer();
            rows += 1;
            at = next;
        }
        Ok((at, rows))
    }

    /// Fails unless the data ended where it should.
    fn end(&self) -> Result<()> {
        if self.ended && self.pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "the binary COPY of {} stopped part-way",
                self.table.name
            )))
        }
    }
}

/// The big-endian 32 bits of `data` at `at`, if it holds them.
fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
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
        // The greatest key of the page (its last row's, but SQLite's JSON need not keep
        // the order).
        let key_of = |row: &'_ [Value]| self.keys.iter().map(|k| row[*k].clone()).collect();
        let mut last: Vec<Value> = key_of(&values[..width]);
        for row in values.chunks(width).skip(1) {
            if key_order(self.keys.iter().map(|k| &row[*k]), &last).is_gt() {
                last = key_of(row);
            }
        }
        self.after = Some(last);
        Ok(Some(values))
    }
}

/// How a row's key compares with `other`, as the engines order keys: integers by value,
/// text by its bytes (SQLite's `BINARY` collation; PostgreSQL's keys are read in its own
/// order, so their last row's key is the greatest either way).
fn key_order<'a>(key: impl Iterator<Item = &'a Value>, other: &[Value]) -> std::cmp::Ordering {
    for (a, b) in key.zip(other) {
        let order = match (a, b) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (a, b) => unreachable!("keys are integers or text, not {a:?} and {b:?}"),
        };
        if order.is_ne() {
            return order;
        }
    }
    std::cmp::Ordering::Equal
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

/// Reads every row of `table` on PostgreSQL into a [`Tally`] by one binary `COPY … TO
/// STDOUT`: the server scans the table once and sends each value in its binary form,
/// hashed as it comes without being decoded into a [`Value`] (10 M events: 7.7 s, against
/// 16.3 s in pages as [`tally_table`] reads them).
async fn tally_postgres(
    conn: &mut PgConnection,
    table: &'static Table,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Tally> {
    use futures_util::TryStreamExt;
    let statement = format!(
        "COPY {} ({}) TO STDOUT (FORMAT binary)",
        table.name,
        table.column_list()
    );
    let mut hasher = Hasher::default();
    let mut rows = BinaryRows::new(table);
    let mut unreported = 0;
    let mut stream = conn.copy_out_raw(&statement).await?;
    while let Some(data) = stream.try_next().await? {
        unreported += rows.feed(&data, &mut hasher)?;
        if unreported >= ROWS_PER_INSERT as u64 {
            progress(Progress::Rows(unreported));
            unreported = 0;
        }
    }
    if unreported > 0 {
        progress(Progress::Rows(unreported));
    }
    rows.end()?;
    Ok(hasher.tally)
}

/// The connection the source is read through, each engine's own driver (on PostgreSQL,
/// [`tally`] reads tables back by `COPY`, which `Any` cannot).
enum Source {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Source {
    /// A connection that only reads `url`: no session settings (SQLite's would switch the
    /// journal mode, a write), and SQLite never creates a missing file.
    async fn open(backend: Backend, url: &DatabaseUrl) -> Result<Self> {
        let url = backend.read_only_options(url)?.database_url;
        Ok(match backend {
            Backend::Sqlite => {
                let options =
                    SqliteConnectOptions::from_url(&url)?.log_statements(log::LevelFilter::Trace);
                Self::Sqlite(SqliteConnection::connect_with(&options).await?)
            }
            Backend::Postgres => {
                let options =
                    PgConnectOptions::from_url(&url)?.log_statements(log::LevelFilter::Trace);
                Self::Postgres(PgConnection::connect_with(&options).await?)
            }
        })
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

    /// Starts the read transaction, one snapshot of the whole database.
    async fn begin(&mut self) -> Result<()> {
        self.execute(match self {
            Self::Sqlite(_) => "BEGIN",
            Self::Postgres(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })
        .await
    }

    /// The integers a query of one integer column answers.
    async fn integers(&mut self, sql: &str) -> Result<Vec<i64>> {
        Ok(match self {
            Self::Sqlite(conn) => sqlx::query_scalar(sql).fetch_all(conn).await?,
            Self::Postgres(conn) => sqlx::query_scalar(sql).fetch_all(conn).await?,
        })
    }

    /// The rows of a three-text-column query.
    async fn triples(&mut self, sql: &str) -> Result<Vec<(String, String, String)>> {
        Ok(match self {
            Self::Sqlite(conn) => sqlx::query_as(sql).fetch_all(conn).await?,
            Self::Postgres(conn) => sqlx::query_as(sql).fetch_all(conn).await?,
        })
    }

    async fn close(self) -> Result<()> {
        match self {
            Self::Sqlite(conn) => conn.close().await?,
            Self::Postgres(conn) => conn.close().await?,
        }
        Ok(())
    }
}

impl Reader for Source {
    async fn page(&mut self, table: &Table, after: Option<&[Value]>) -> Result<Vec<Value>> {
        match self {
            Self::Sqlite(conn) => conn.page(table, after).await,
            Self::Postgres(conn) => conn.page(table, after).await,
        }
    }
}

/// Reads every row of `table` into a [`Tally`]: on PostgreSQL by one binary `COPY`, on
/// SQLite page by page.
async fn tally_of(
    conn: &mut (impl Reader + AsPostgres),
    table: &'static Table,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Tally> {
    match conn.as_postgres() {
        Some(pg) => tally_postgres(pg, table, progress).await,
        None => tally_table(conn, table, progress).await,
    }
}

/// The PostgreSQL connection of a [`Source`] or [`Target`], if it is one.
trait AsPostgres {
    fn as_postgres(&mut self) -> Option<&mut PgConnection>;
}

impl AsPostgres for Source {
    fn as_postgres(&mut self) -> Option<&mut PgConnection> {
        match self {
            Self::Postgres(conn) => Some(conn),
            Self::Sqlite(_) => None,
        }
    }
}

impl AsPostgres for Target {
    fn as_postgres(&mut self) -> Option<&mut PgConnection> {
        match self {
            Self::Postgres(conn) => Some(conn),
            Self::Sqlite(_) => None,
        }
    }
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

    /// The rows of a three-text-column query.
    async fn triples(&mut self, sql: &str) -> Result<Vec<(String, String, String)>> {
        Ok(match self {
            Self::Sqlite(conn) => sqlx::query_as(sql).fetch_all(conn).await?,
            Self::Postgres(conn) => sqlx::query_as(sql).fetch_all(conn).await?,
        })
    }

    /// Writes `values` (rows of `table`) into SQLite, as multi-row inserts.
    async fn insert_sqlite(
        conn: &mut AnyConnection,
        table: &Table,
        values: &[Value],
    ) -> Result<()> {
        let width = table.columns.len();
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

/// Rows of `table` in PostgreSQL's binary `COPY` format (without the header).
fn encode_binary(table: &Table, values: &[Value], out: &mut Vec<u8>) -> Result<()> {
    let width = table.columns.len();
    let fields = i16::try_from(width).expect("fewer than 32,768 columns");
    for row in values.chunks(width) {
        out.extend_from_slice(&fields.to_be_bytes());
        for value in row {
            value.copy_binary(out)?;
        }
    }
    Ok(())
}

/// The header of binary `COPY` data: the signature, no flags, no extension.
fn binary_header() -> Vec<u8> {
    let mut header = BINARY_SIGNATURE.to_vec();
    header.extend_from_slice(&[0; 8]);
    header
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
    /// The whole copy, from opening the source to the end: the target's migrations, the
    /// rows, the indexes, the check, the commit and (on PostgreSQL) `ANALYZE`.
    pub total_time: Duration,
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

    /// Rows copied a second, counting everything the copy did ([`Report::total_time`]):
    /// the rate of the copy.
    pub fn rows_per_second(&self) -> f64 {
        self.rows() as f64 / self.total_time.as_secs_f64().max(1e-9)
    }

    /// Rows a second while rows were copied ([`Report::copy_time`] alone).
    pub fn rows_per_second_copying(&self) -> f64 {
        self.rows() as f64 / self.copy_time.as_secs_f64().max(1e-9)
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
    let started = Instant::now();
    if from.expose() == to.expose() {
        return Err(invalid("to", "the target is the source itself"));
    }
    let source_backend = Backend::of(from)?;
    let target_backend = Backend::of(to)?;
    let mut source = Source::open(source_backend, from).await?;
    check_migrations(&mut source, source_backend, from).await?;
    check_schema(&mut source, "from").await?;

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
    let migrator = target_backend.migrator();
    match &mut target {
        Target::Sqlite(conn) => migrator.run(conn).await,
        Target::Postgres(conn) => migrator.run(conn).await,
    }
    .map_err(StoreError::migrating)?;
    check_schema_of(&mut target).await?;

    // (On PostgreSQL this also takes the lock every coachloop writer takes.)
    target
        .execute(crate::Locks::none().begin(target_backend).as_str())
        .await?;
    let filled = fill(&mut target, source, progress).await;
    let report = match filled {
        Ok(report) if report.matches() => {
            target.execute("COMMIT").await?;
            report
        }
        Ok(report) => {
            target.execute("ROLLBACK").await?;
            return Ok(Report {
                total_time: started.elapsed(),
                ..report
            });
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
        total_time: started.elapsed(),
        ..report
    })
}

/// Inside the target's write transaction: refuses a target with rows, copies, moves the
/// sequences and reads the target back.
async fn fill(
    target: &mut Target,
    mut source: Source,
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
    // Even the cheapest to keep cost more than they save: with events_risk (one key for
    // all) and the two partial indexes of events (no rows) kept, the rows of 10 M events
    // took 13 s longer, to save 4 s of building.
    let indexes = secondary_indexes(target).await?;
    for (name, _) in &indexes {
        target.execute(&format!("DROP INDEX {name}")).await?;
    }
    if target.backend() == Backend::Postgres {
        // Emptied in this transaction (they hold no rows), the tables can take their rows
        // by `COPY … FREEZE`: written frozen and all-visible, so nothing rewrites them
        // later (hint bits, VACUUM) and index-only scans need not visit them.
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        target
            .execute(&format!("TRUNCATE {}", names.join(", ")))
            .await?;
    }

    // The source is read by a task of its own, a page ahead of the writer.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Message>>(2);
    let reader = tokio::spawn(async move {
        let read = async {
            source.begin().await?;
            let mut counts = Vec::with_capacity(TABLES.len());
            for table in TABLES {
                let sql = format!("SELECT COUNT(*) FROM {}", table.name);
                counts.push(source.integers(&sql).await?.first().copied().unwrap_or(0) as u64);
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
        // Each build sorts in runs of this much (split between the server's parallel
        // workers). More was not faster: with 1 GB, events_account_time of 10 M events
        // was sorted in memory in 9.4 s, against 7.4 s in runs of 256 MB and a merge.
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
            target: tally_of(target, table, progress).await?,
            elapsed: elapsed[index],
        });
    }
    Ok(Report {
        tables,
        copy_time,
        index_time,
        check_time: started.elapsed(),
        total_time: Duration::ZERO,
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

/// Each table's source tally and copy time, and the whole copy's time.
type Written = (Vec<Tally>, Vec<Duration>, Duration);

/// The writer's side: what the reader sends, inserted. Returns each table's source tally
/// and copy time, and the whole copy's time.
async fn write(
    target: &mut Target,
    rx: &mut tokio::sync::mpsc::Receiver<Result<Message>>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Written> {
    let mut sources = vec![None; TABLES.len()];
    let mut elapsed = vec![Duration::ZERO; TABLES.len()];
    let started = Instant::now();
    let mut table_started = started;
    let mut current = None;
    let mut ended = |index: usize, tally: Tally| {
        sources[index] = Some(tally);
        let now = Instant::now();
        elapsed[index] = now - table_started;
        table_started = now;
    };
    while let Some(message) = rx.recv().await {
        match message? {
            Message::Counts(counts) => {
                progress(Progress::Pass(Pass::Copy, counts.iter().sum()));
            }
            Message::Page(index, values) => {
                let table = &TABLES[index];
                if current != Some(index) {
                    current = Some(index);
                    progress(Progress::Table(table.name));
                }
                match target {
                    Target::Sqlite(conn) => {
                        Target::insert_sqlite(conn, table, &values).await?;
                        progress(Progress::Rows((values.len() / table.columns.len()) as u64));
                    }
                    Target::Postgres(conn) => {
                        let tally = copy_postgres(conn, index, values, rx, progress).await?;
                        ended(index, tally);
                    }
                }
            }
            Message::End(index, tally) => ended(index, tally),
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

/// Writes the rows of table `index` into PostgreSQL by one binary `COPY … FROM STDIN`: the
/// first page, then the pages the reader sends up to the table's end. Returns the source's
/// tally of the table (which came with its end).
async fn copy_postgres(
    conn: &mut PgConnection,
    index: usize,
    first: Vec<Value>,
    rx: &mut tokio::sync::mpsc::Receiver<Result<Message>>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Tally> {
    let table = &TABLES[index];
    let statement = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary, FREEZE)",
        table.name,
        table.column_list()
    );
    let mut copy = conn.copy_in_raw(&statement).await?;
    let sent = async {
        let mut data = binary_header();
        let mut page = Some(first);
        loop {
            if let Some(values) = page.take() {
                encode_binary(table, &values, &mut data)?;
                copy.send(data.as_slice()).await?;
                data.clear();
                progress(Progress::Rows((values.len() / table.columns.len()) as u64));
            }
            match rx.recv().await {
                Some(Ok(Message::Page(i, values))) if i == index => page = Some(values),
                Some(Ok(Message::End(i, tally))) if i == index => {
                    copy.send(&(-1i16).to_be_bytes()[..]).await?;
                    return Ok(tally);
                }
                Some(Ok(_)) => {
                    return Err(StoreError::Corrupt(format!(
                        "the source sent another table before the end of {}",
                        table.name
                    )));
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "the source stopped before the end of table {}",
                        table.name
                    )));
                }
            }
        }
    };
    let sent: Result<Tally> = sent.await;
    match sent {
        Ok(tally) => {
            copy.finish().await?;
            Ok(tally)
        }
        Err(e) => {
            copy.abort("the copy failed").await.ok();
            Err(e)
        }
    }
}

/// Refuses a source that is not at this build's schema version.
async fn check_migrations(source: &mut Source, backend: Backend, url: &DatabaseUrl) -> Result<()> {
    let sql = format!("SELECT version FROM {MIGRATIONS_TABLE} WHERE success ORDER BY version");
    let applied = source.integers(&sql).await.map_err(|e| {
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

/// What lists every (table, column, type) of a database.
fn columns_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "SELECT m.name, p.name, p.type FROM sqlite_master AS m, pragma_table_info(m.name) AS p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
        }
        Backend::Postgres => {
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        }
    }
}

async fn check_schema(source: &mut Source, side: &str) -> Result<()> {
    let backend = match source {
        Source::Sqlite(_) => Backend::Sqlite,
        Source::Postgres(_) => Backend::Postgres,
    };
    let rows = source.triples(columns_sql(backend)).await?;
    compare_schema(rows, backend, side)
}

async fn check_schema_of(target: &mut Target) -> Result<()> {
    let backend = target.backend();
    let rows = target.triples(columns_sql(backend)).await?;
    compare_schema(rows, backend, "to")
}

/// Refuses a database whose tables and columns are not exactly those of [`TABLES`] (on
/// PostgreSQL, of the types [`Kind::postgres_type`] says).
fn compare_schema(rows: Vec<(String, String, String)>, backend: Backend, side: &str) -> Result<()> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut differences = Vec::new();
    for (table, column, found_type) in rows {
        if table == MIGRATIONS_TABLE || RUNTIME_TABLES.contains(&table.as_str()) {
            continue;
        }
        let kind = TABLES
            .iter()
            .find(|t| t.name == table)
            .and_then(|t| t.columns.iter().find(|(c, _)| *c == column))
            .map(|(_, kind)| *kind);
        if let Some(kind) = kind
            && backend == Backend::Postgres
            && found_type != kind.postgres_type()
        {
            differences.push(format!(
                "column {table}.{column} is {found_type}, not {}",
                kind.postgres_type()
            ));
        }
        found.entry(table).or_default().insert(column);
    }
    let listed: BTreeMap<String, BTreeSet<String>> = TABLES
        .iter()
        .map(|t| {
            let columns = t.columns.iter().map(|(c, _)| (*c).to_owned()).collect();
            (t.name.to_owned(), columns)
        })
        .collect();
    if found == listed && differences.is_empty() {
        return Ok(());
    }
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
    let mut source = Source::open(backend, url).await?;
    source.begin().await?;
    let mut tallies = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        tallies.push((table.name, tally_of(&mut source, table, &|_| {}).await?));
    }
    source.execute("COMMIT").await?;
    source.close().await?;
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

    /// A table of every kind of column, keyed by `id`.
    static EVERY_KIND: Table = Table {
        name: "every_kind",
        key: ID,
        identity: false,
        columns: &[
            ("id", Int),
            ("flag", Bool),
            ("score", Real),
            ("name", Text),
            ("data", Bytes),
        ],
    };

    async fn sqlite_memory() -> SqliteConnection {
        SqliteConnection::connect("sqlite::memory:").await.unwrap()
    }

    /// SQLite's JSON pages read the same values as its rows do, floats to the last bit.
    #[tokio::test]
    async fn a_json_page_reads_what_the_rows_hold() {
        let mut conn = sqlite_memory().await;
        conn.execute(
            "CREATE TABLE every_kind (id INTEGER PRIMARY KEY, flag INTEGER, score REAL, \
             name TEXT, data BLOB)",
        )
        .await
        .unwrap();
        let scores = [
            0.1,
            1.0 / 3.0,
            -0.0,
            1e300,
            5e-324,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            123_456_789.123_456_79,
            2.0,
        ];
        for (n, score) in scores.into_iter().enumerate() {
            sqlx::query("INSERT INTO every_kind VALUES ($1, $2, $3, $4, $5)")
                .bind(if n == 0 {
                    i64::MIN
                } else {
                    n as i64 * 1_000_000_007
                })
                .bind(n % 2 == 0)
                .bind(score)
                .bind(format!("é ✓ \t\\N \"{n}\" \u{1} \r\n"))
                .bind(vec![0u8, n as u8, 255])
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO every_kind VALUES ($1, NULL, NULL, NULL, NULL)")
            .bind(i64::MAX)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO every_kind VALUES (-1, 1, 0.5, '', x'')")
            .execute(&mut conn)
            .await
            .unwrap();

        let rows = sqlx::query(&EVERY_KIND.page_sql(false))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let expected = decode(&EVERY_KIND, &rows, None).unwrap();
        assert_eq!(expected.len(), 12 * EVERY_KIND.columns.len());
        let page = conn.page(&EVERY_KIND, None).await.unwrap();
        assert_eq!(page.len(), expected.len());
        for (read, expected) in page.iter().zip(&expected) {
            match (read, expected) {
                // (0.0 == -0.0: the bits must match too.)
                (Value::Real(a), Value::Real(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                (a, b) => assert_eq!(a, b),
            }
        }
        let after = [Value::Int(2_000_000_014)];
        let rest = conn.page(&EVERY_KIND, Some(&after)).await.unwrap();
        assert_eq!(rest, expected[4 * EVERY_KIND.columns.len()..]);
    }

    /// A table keyed by text, read in pages: every row once, whatever its key's bytes.
    #[tokio::test]
    async fn pages_by_a_text_key_read_every_row_once() {
        static KEYED_BY_TEXT: Table = Table {
            name: "keyed_by_text",
            key: &["a", "b"],
            identity: false,
            columns: &[("a", Int), ("b", Text)],
        };
        let mut conn = sqlite_memory().await;
        conn.execute("CREATE TABLE keyed_by_text (a INTEGER, b TEXT, PRIMARY KEY (a, b))")
            .await
            .unwrap();
        let rows = 2 * ROWS_PER_INSERT + 17;
        let names = ["Zoë", "zoe", "ZOE", "é", "e", "~", "", " ", "日本", "Ω"];
        conn.execute(
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {rows}) \
                 INSERT INTO keyed_by_text SELECT i % 3, ({}) || i FROM n",
                names
                    .iter()
                    .enumerate()
                    .fold("CASE i % 10".to_owned(), |sql, (k, name)| {
                        format!("{sql} WHEN {k} THEN '{name}'")
                    })
                    + " END"
            )
            .as_str(),
        )
        .await
        .unwrap();
        let mut pages = Pages::new(&KEYED_BY_TEXT);
        let mut seen = BTreeSet::new();
        let mut read = 0;
        while let Some(values) = pages.next(&mut conn).await.unwrap() {
            for row in values.chunks(2) {
                read += 1;
                seen.insert(format!("{:?}", row));
            }
        }
        assert_eq!(read, rows);
        assert_eq!(seen.len(), rows);
    }

    /// Rows written in the binary COPY format and read back from it, in pieces of every
    /// size, hash as the values themselves do.
    #[test]
    fn the_binary_copy_format_reads_back_to_the_same_checksum() {
        let table = &EVERY_KIND;
        let values = [
            Value::Int(-1),
            Value::Bool(true),
            Value::Real(0.1),
            Value::Text("é\t\\N\n".into()),
            Value::Bytes(vec![0, 255]),
            Value::Int(i64::MAX),
            Value::Bool(false),
            Value::Real(f64::NEG_INFINITY),
            Value::Text(String::new()),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Bytes(Vec::new()),
        ];
        let mut expected = Hasher::default();
        expected.add(&values, table.columns.len());
        let mut data = binary_header();
        encode_binary(table, &values, &mut data).unwrap();
        data.extend_from_slice(&(-1i16).to_be_bytes());
        for piece in 1..=data.len() {
            let mut hasher = Hasher::default();
            let mut rows = BinaryRows::new(table);
            let mut read = 0;
            for chunk in data.chunks(piece) {
                read += rows.feed(chunk, &mut hasher).unwrap();
            }
            rows.end().unwrap();
            assert_eq!(read, 3, "pieces of {piece}");
            assert_eq!(hasher.tally, expected.tally, "pieces of {piece}");
        }
        // Cut short, it is refused.
        let mut rows = BinaryRows::new(table);
        rows.feed(&data[..data.len() - 3], &mut Hasher::default())
            .unwrap();
        assert!(rows.end().is_err());
    }
}
