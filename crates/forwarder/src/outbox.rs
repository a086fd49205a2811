//! The durable outbox: a SQLite file in the state directory. A record counts as accepted
//! once its transaction is committed here (WAL, `synchronous=FULL`: it survives a
//! SIGKILL and a power cut); it leaves only when the target has acknowledged it, or into
//! the dead-letter list with the reason.

use crate::mapping::Event;
use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::path::Path;
use std::time::Duration;

/// The file inside the state directory.
pub const FILE: &str = "outbox.db";

/// Rows a multi-row INSERT carries (3 values each; SQLite allows 32,766).
const ROWS_PER_INSERT: usize = 2_000;
/// A dead-letter copy of a record keeps at most this much of it.
const MAX_DEAD_TEXT: usize = 4_096;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    -- AUTOINCREMENT: a sequence number is never reused, so a batch is a range of them.
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event       TEXT NOT NULL,
    device_user INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    reason TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS progress (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    activated_at      INTEGER NOT NULL,
    send_since        INTEGER NOT NULL,
    delivered         INTEGER NOT NULL DEFAULT 0,
    device_users      INTEGER NOT NULL DEFAULT 0,
    ignored           INTEGER NOT NULL DEFAULT 0,
    before_activation INTEGER NOT NULL DEFAULT 0,
    last_delivery_at  INTEGER,
    last_error        TEXT,
    last_error_at     INTEGER
);
-- Where each followed file was read up to, committed with the records read from it.
CREATE TABLE IF NOT EXISTS inputs (
    name    TEXT PRIMARY KEY,
    file_id TEXT NOT NULL,
    offset  INTEGER NOT NULL,
    line    INTEGER NOT NULL
);
";

/// How far a followed file was read: which file (device and inode) and where.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub file_id: String,
    pub offset: u64,
    pub line: u64,
}

/// What an input read since its last commit.
#[derive(Debug, Default)]
pub struct Accepted {
    pub events: Vec<Event>,
    /// Lines that are not records, or records the target would refuse: (reason, text).
    pub dead: Vec<(String, String)>,
    pub ignored: u64,
    pub before_activation: u64,
    /// The input's position after these records, committed with them.
    pub position: Option<(String, Position)>,
}

impl Accepted {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.dead.is_empty()
            && self.ignored == 0
            && self.before_activation == 0
    }

    /// Lines read since the last commit, of every kind.
    pub fn len(&self) -> usize {
        self.events.len() + self.dead.len() + (self.ignored + self.before_activation) as usize
    }
}

/// A queued event.
#[derive(Debug, Clone)]
pub struct Queued {
    pub seq: i64,
    pub event: String,
    pub device_user: bool,
}

/// The counters and times `status` shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Progress {
    pub activated_at: i64,
    pub send_since: i64,
    pub delivered: i64,
    pub device_users: i64,
    pub ignored: i64,
    pub before_activation: i64,
    pub last_delivery_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

/// A dead-lettered record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Dead {
    pub at: i64,
    pub reason: String,
    pub record: String,
}

/// The outbox of one state directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// One connection: SQLite has one writer, and a queue in front of it is fairer than
    /// its busy handler.
    write: SqlitePool,
    read: SqlitePool,
}

impl Outbox {
    /// Opens (creating) the outbox in `dir`. The first opening is the activation: only
    /// records dated from `now_ms` on are sent, or from `backfill_since` when given (which
    /// a later opening may also set, to opt in to history).
    pub async fn open(
        dir: &Path,
        now_ms: i64,
        backfill_since: Option<i64>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join(FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the outbox in {}", dir.display()))?;
        sqlx::raw_sql(SCHEMA).execute(&write).await?;
        sqlx::query(
            "INSERT INTO progress (id, activated_at, send_since) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(now_ms)
        .bind(backfill_since.unwrap_or(now_ms))
        .execute(&write)
        .await?;
        if let Some(since) = backfill_since {
            sqlx::query("UPDATE progress SET send_since = $1")
                .bind(since)
                .execute(&write)
                .await?;
        }
        let read = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { write, read })
    }

    /// Opens an existing outbox to read its status; `None` when the directory has none.
    pub async fn open_existing(dir: &Path) -> anyhow::Result<Option<Self>> {
        if !dir.join(FILE).exists() {
            return Ok(None);
        }
        let options = SqliteConnectOptions::new()
            .filename(dir.join(FILE))
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let read = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the outbox in {}", dir.display()))?;
        Ok(Some(Self {
            write: read.clone(),
            read,
        }))
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Commits what an input read, with its position, in one transaction.
    pub async fn accept(&self, accepted: &Accepted, now_ms: i64) -> anyhow::Result<()> {
        let mut tx = self.write.begin().await?;
        for chunk in accepted.events.chunks(ROWS_PER_INSERT) {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO outbox (event, device_user) ");
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(&event.json).push_bind(event.device_user);
            });
            insert.build().execute(&mut *tx).await?;
        }
        for (reason, text) in &accepted.dead {
            insert_dead(&mut tx, now_ms, reason, text).await?;
        }
        if accepted.ignored > 0 || accepted.before_activation > 0 {
            sqlx::query(
                "UPDATE progress SET ignored = ignored + $1, \
                 before_activation = before_activation + $2",
            )
            .bind(accepted.ignored as i64)
            .bind(accepted.before_activation as i64)
            .execute(&mut *tx)
            .await?;
        }
        if let Some((name, p)) = &accepted.position {
            sqlx::query(
                "INSERT INTO inputs (name, file_id, offset, line) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET file_id = $2, offset = $3, line = $4",
            )
            .bind(name)
            .bind(&p.file_id)
            .bind(p.offset as i64)
            .bind(p.line as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Where an input was read up to.
    pub async fn position(&self, name: &str) -> anyhow::Result<Option<Position>> {
        let row = sqlx::query("SELECT file_id, offset, line FROM inputs WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.write)
            .await?;
        Ok(row.map(|row| Position {
            file_id: row.get(0),
            offset: row.get::<i64, _>(1) as u64,
            line: row.get::<i64, _>(2) as u64,
        }))
    }

    /// Up to `limit` queued events after `after`, oldest first.
    pub async fn next_batch(&self, after: i64, limit: usize) -> anyhow::Result<Vec<Queued>> {
        let rows = sqlx::query(
            "SELECT seq, event, device_user FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Queued {
                seq: row.get(0),
                event: row.get(1),
                device_user: row.get(2),
            })
            .collect())
    }

    /// The target acknowledged `batch` (a run of consecutive queued events), except the
    /// items it `rejected` (index in the batch, reason), which go to the dead letters.
    pub async fn delivered(
        &self,
        batch: &[Queued],
        rejected: &[(usize, String)],
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        let mut tx = self.write.begin().await?;
        for (index, reason) in rejected {
            if let Some(item) = batch.get(*index) {
                insert_dead(&mut tx, now_ms, reason, &item.event).await?;
            }
        }
        let is_rejected = |i: usize| rejected.iter().any(|(r, _)| *r == i);
        let accepted = batch.len() - rejected.len().min(batch.len());
        let device_users = batch
            .iter()
            .enumerate()
            .filter(|(i, q)| q.device_user && !is_rejected(*i))
            .count();
        sqlx::query("DELETE FROM outbox WHERE seq BETWEEN $1 AND $2")
            .bind(first.seq)
            .bind(last.seq)
            .execute(&mut *tx)
            .await?;
        if accepted > 0 {
            sqlx::query(
                "UPDATE progress SET delivered = delivered + $1, \
                 device_users = device_users + $2, last_delivery_at = $3",
            )
            .bind(accepted as i64)
            .bind(device_users as i64)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the latest failure, in words.
    pub async fn set_error(&self, error: &str, now_ms: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE progress SET last_error = $1, last_error_at = $2")
            .bind(error)
            .bind(now_ms)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub async fn progress(&self) -> anyhow::Result<Progress> {
        Ok(sqlx::query_as(
            "SELECT activated_at, send_since, delivered, device_users, ignored, \
             before_activation, last_delivery_at, last_error, last_error_at \
             FROM progress WHERE id = 1",
        )
        .fetch_one(&self.read)
        .await?)
    }

    /// Events waiting, and dead letters.
    pub async fn counts(&self) -> anyhow::Result<(i64, i64)> {
        let row = sqlx::query("SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM dead)")
            .fetch_one(&self.read)
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// The latest dead letters, newest first.
    pub async fn dead(&self, limit: usize) -> anyhow::Result<Vec<Dead>> {
        Ok(
            sqlx::query_as("SELECT at, reason, record FROM dead ORDER BY id DESC LIMIT $1")
                .bind(limit as i64)
                .fetch_all(&self.read)
                .await?,
        )
    }
}

async fn insert_dead(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    now_ms: i64,
    reason: &str,
    text: &str,
) -> anyhow::Result<()> {
    let mut end = text.len().min(MAX_DEAD_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    sqlx::query("INSERT INTO dead (at, reason, record) VALUES ($1, $2, $3)")
        .bind(now_ms)
        .bind(reason)
        .bind(&text[..end])
        .execute(&mut **tx)
        .await?;
    Ok(())
}
