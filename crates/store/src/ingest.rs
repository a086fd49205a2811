//! The event write path: group commit.
//!
//! Handlers validate events and hand them to one writer task over a channel. The writer
//! takes whatever has queued up, stores it all in one `BEGIN IMMEDIATE … COMMIT` (one
//! fsync), and only then answers each request. Under load many requests share a commit,
//! which is where throughput comes from; durability stays `synchronous=FULL`.

use crate::{Result, Store, StoreError};
use coachloop_core::FieldError;
use coachloop_core::event::NewEvent;
use coachloop_core::event_id::{EventId, EventIdGenerator};
use coachloop_core::ids::AccountId;
use serde::Serialize;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{error, warn};
use uuid::Uuid;

/// The most events one transaction takes; more wait for the next commit.
const MAX_BATCH_EVENTS: usize = 16_000;
/// Rows per multi-row INSERT are powers of two up to this, so a few prepared
/// statements serve every batch size.
const MAX_CHUNK: usize = 1024;
/// Batches up to this many rows take one statement of their exact size.
const WHOLE_UP_TO: usize = 64;
/// Requests waiting for the writer before senders are held back.
const QUEUE_DEPTH: usize = 8_192;

/// An item of a submission that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Position in the submitted array (0 for a single object).
    pub index: usize,
    pub reason: String,
    pub errors: Vec<FieldError>,
}

impl Failure {
    pub fn new(index: usize, errors: Vec<FieldError>) -> Self {
        let reason = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            index,
            reason,
            errors,
        }
    }
}

/// One accepted `POST /events` request, validated.
#[derive(Debug, Clone)]
pub struct Submission {
    pub account: AccountId,
    pub request_id: Uuid,
    pub token_name: String,
    pub integration: Option<String>,
    pub events: Vec<NewEvent>,
    /// Items that failed validation, already known.
    pub failures: Vec<Failure>,
}

/// What a submission stored: event ids in submission order (an `external_id` seen before
/// gives the earlier event's id) and the failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub events: Vec<String>,
    pub failures: Vec<Failure>,
}

type Reply = oneshot::Sender<Result<Receipt, String>>;

/// One committed transaction of the writer, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub requests: usize,
    pub events: usize,
}

/// Told of every commit (after it is durable).
pub type CommitObserver = Arc<dyn Fn(Commit) + Send + Sync>;

/// The handle handlers submit through. Cheap to clone; the writer stops when the last
/// handle is dropped, after finishing what was queued.
#[derive(Clone)]
pub struct Ingestor {
    queue: mpsc::Sender<(Submission, Reply)>,
}

impl Ingestor {
    /// Opens the writer's own connection and starts the writer task.
    pub async fn start(store: &Store, observer: CommitObserver) -> Result<(Self, JoinHandle<()>)> {
        let mut conn = SqliteConnection::connect_with(&*store.options).await?;
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(&mut conn)
            .await?;
        let writer = Writer {
            conn,
            now: store.clock.clone(),
            types: HashMap::new(),
            type_generation: store.type_generation.clone(),
            seen_generation: 0,
            ids: EventIdGenerator::after(last),
            observer,
        };
        let task = tokio::spawn(writer.run(rx));
        Ok((Self { queue }, task))
    }

    /// Stores a submission durably and returns its receipt.
    pub async fn submit(&self, submission: Submission) -> Result<Receipt> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((submission, reply))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        match answer.await {
            Ok(Ok(receipt)) => Ok(receipt),
            Ok(Err(cause)) => Err(StoreError::Database(sqlx::Error::Protocol(cause))),
            Err(_) => Err(StoreError::Database(sqlx::Error::PoolClosed)),
        }
    }
}

struct Writer {
    conn: SqliteConnection,
    now: Arc<dyn coachloop_core::clock::Clock>,
    /// Event type ids by account and name. Cleared when a type is renamed or deleted
    /// (`type_generation` moves) and after a failed transaction.
    types: HashMap<i64, HashMap<String, i64>>,
    type_generation: Arc<AtomicU64>,
    seen_generation: u64,
    ids: EventIdGenerator,
    observer: CommitObserver,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<(Submission, Reply)>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut size = first.0.events.len();
            batch.push(first);
            while size < MAX_BATCH_EVENTS {
                match rx.try_recv() {
                    Ok(next) => {
                        size += next.0.events.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch).await;
        }
        let _ = self.conn.close().await;
    }

    /// Commits the batch in one transaction; if that fails, each submission is tried
    /// alone so one bad request cannot fail its neighbours.
    async fn commit_batch(&mut self, batch: &mut Vec<(Submission, Reply)>) {
        let submissions: Vec<&Submission> = batch.iter().map(|(s, _)| s).collect();
        match self.write(&submissions).await {
            Ok(receipts) => {
                for ((_, reply), receipt) in batch.drain(..).zip(receipts) {
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(e) if batch.len() > 1 => {
                warn!(error = %e, size = batch.len(), "group commit failed; retrying one by one");
                for (submission, reply) in batch.drain(..) {
                    let result = self.write(&[&submission]).await;
                    let _ = reply.send(result.map(|mut r| r.remove(0)).map_err(|e| {
                        error!(error = %e, "could not store events");
                        e.to_string()
                    }));
                }
            }
            Err(e) => {
                error!(error = %e, "could not store events");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }

    async fn write(&mut self, batch: &[&Submission]) -> Result<Vec<Receipt>> {
        let generation = self.type_generation.load(Ordering::SeqCst);
        if generation != self.seen_generation {
            self.types.clear();
            self.seen_generation = generation;
        }
        let result = self.write_once(batch).await;
        match &result {
            Ok(_) => (self.observer)(Commit {
                requests: batch.len(),
                events: batch.iter().map(|s| s.events.len()).sum(),
            }),
            // Types created by the failed transaction do not exist.
            Err(_) => self.types.clear(),
        }
        result
    }

    async fn write_once(&mut self, batch: &[&Submission]) -> Result<Vec<Receipt>> {
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        let now = self.now.now_ms();

        let users = resolve_users(&mut tx, batch).await?;
        let mut rows = Vec::new();
        for submission in batch {
            for event in &submission.events {
                let type_id = event_type_id(
                    &mut tx,
                    &mut self.types,
                    submission.account,
                    &event.event_type,
                    now,
                )
                .await?;
                rows.push(Row {
                    id: self.ids.next(now, rand::random()),
                    submission,
                    event,
                    type_id,
                    user_id: users
                        .get(&(submission.account.0, event.target_norm.as_str()))
                        .copied(),
                });
            }
        }

        let mut stored = 0;
        for chunk in chunks(&rows) {
            stored += insert_events(&mut tx, chunk, now).await?;
        }
        let mut ids: Vec<EventId> = rows.iter().map(|r| r.id).collect();
        if stored < rows.len() as u64 {
            // Some external ids were seen before: report the earlier events' ids.
            resolve_duplicates(&mut tx, &rows, &mut ids).await?;
        }

        let mut receipts = Vec::with_capacity(batch.len());
        let mut ids = ids.into_iter();
        for submission in batch {
            receipts.push(Receipt {
                events: ids
                    .by_ref()
                    .take(submission.events.len())
                    .map(|id| id.to_string())
                    .collect(),
                failures: submission.failures.clone(),
            });
        }
        let pairs: Vec<_> = batch.iter().zip(&receipts).collect();
        for chunk in chunks(&pairs) {
            insert_requests(&mut tx, chunk, now).await?;
        }
        tx.commit().await?;
        Ok(receipts)
    }
}

struct Row<'a> {
    id: EventId,
    submission: &'a Submission,
    event: &'a NewEvent,
    type_id: i64,
    user_id: Option<i64>,
}

/// The user of every identity the batch names, per account, in one query each.
async fn resolve_users<'a>(
    conn: &mut SqliteConnection,
    batch: &[&'a Submission],
) -> Result<HashMap<(i64, &'a str), i64>> {
    let mut wanted: HashMap<i64, Vec<&'a str>> = HashMap::new();
    for submission in batch {
        let names = wanted.entry(submission.account.0).or_default();
        names.extend(submission.events.iter().map(|e| e.target_norm.as_str()));
    }
    let mut found = HashMap::new();
    for (account, mut names) in wanted {
        names.sort_unstable();
        names.dedup();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT identity, user_id FROM user_identities \
             WHERE account_id = $1 AND identity IN (SELECT value FROM json_each($2))",
        )
        .bind(account)
        .bind(serde_json::to_string(&names).unwrap_or_default())
        .fetch_all(&mut *conn)
        .await?;
        for (identity, user_id) in rows {
            if let Ok(i) = names.binary_search(&identity.as_str()) {
                found.insert((account, names[i]), user_id);
            }
        }
    }
    Ok(found)
}

/// Splits `items` into runs for multi-row statements: small batches go whole (one
/// statement; each size's statement stays prepared), larger ones in power-of-two runs of
/// at most [`MAX_CHUNK`], so a few prepared statements serve every size.
fn chunks<T>(items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let size = if rest.len() <= WHOLE_UP_TO {
            rest.len()
        } else {
            MAX_CHUNK.min(1 << rest.len().ilog2())
        };
        let (head, tail) = rest.split_at(size);
        out.push(head);
        rest = tail;
    }
    out
}

/// The id of an event type, creating the type when a sender names a new one.
async fn event_type_id(
    conn: &mut SqliteConnection,
    cache: &mut HashMap<i64, HashMap<String, i64>>,
    account: AccountId,
    name: &str,
    now: i64,
) -> Result<i64> {
    if let Some(id) = cache.get(&account.0).and_then(|names| names.get(name)) {
        return Ok(*id);
    }
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT id FROM event_types WHERE account_id = $1 AND name = $2")
            .bind(account.0)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    let id = match existing {
        Some(id) => id,
        None => {
            sqlx::query_scalar(
                "INSERT INTO event_types (account_id, name, built_in, created_at) \
                 VALUES ($1, $2, 0, $3) RETURNING id",
            )
            .bind(account.0)
            .bind(name)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?
        }
    };
    cache
        .entry(account.0)
        .or_default()
        .insert(name.to_owned(), id);
    Ok(id)
}

async fn insert_events(conn: &mut SqliteConnection, rows: &[Row<'_>], now: i64) -> Result<u64> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (id, id_low, account_id, event_type_id, user_id, target_user, target_norm, \
         external_id, source, description, occurred_at, risk_level, risk_decay_mode, \
         risk_expire_date, metadata, created_at) ",
    );
    insert.push_values(rows, |mut values, row| {
        let event = row.event;
        let account = row.submission.account.0;
        let risk = event.risk.as_ref();
        values
            .push_bind(row.id.hi)
            .push_bind(row.id.lo)
            .push_bind(account)
            .push_bind(row.type_id)
            .push_bind(row.user_id)
            .push_bind(event.target_user.as_str())
            .push_bind(row.user_id.is_none().then_some(event.target_norm.as_str()))
            .push_bind(event.external_id.as_deref())
            .push_bind(event.source.as_deref())
            .push_bind(event.description.as_deref())
            .push_bind(event.occurred_ms)
            .push_bind(risk.map(|r| r.level))
            .push_bind(risk.and_then(|r| r.decay_mode).map(|m| m as i64))
            .push_bind(risk.map(|r| coachloop_core::time::date_start_ms(r.expire_date)))
            .push_bind(event.metadata.as_deref())
            .push_bind(now);
    });
    insert.push(" ON CONFLICT (account_id, external_id) WHERE external_id IS NOT NULL DO NOTHING");
    Ok(insert.build().execute(&mut *conn).await?.rows_affected())
}

/// Replaces the ids of rows that were not inserted (their `external_id` existed) with the
/// id of the event that holds that `external_id`.
async fn resolve_duplicates(
    conn: &mut SqliteConnection,
    rows: &[Row<'_>],
    ids: &mut [EventId],
) -> Result<()> {
    for (row, id) in rows.iter().zip(ids.iter_mut()) {
        let Some(external_id) = &row.event.external_id else {
            continue;
        };
        let (hi, lo): (i64, i64) = sqlx::query_as(
            "SELECT id, id_low FROM events WHERE account_id = $1 AND external_id = $2",
        )
        .bind(row.submission.account.0)
        .bind(external_id)
        .fetch_one(&mut *conn)
        .await?;
        *id = EventId { hi, lo };
    }
    Ok(())
}

async fn insert_requests(
    conn: &mut SqliteConnection,
    pairs: &[(&&Submission, &Receipt)],
    now: i64,
) -> Result<()> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO event_requests (uuid, account_id, token_name, integration, events, failures, \
         processed_at) ",
    );
    insert.push_values(pairs, |mut values, (submission, receipt)| {
        values
            .push_bind(submission.request_id.to_string())
            .push_bind(submission.account.0)
            .push_bind(submission.token_name.as_str())
            .push_bind(submission.integration.as_deref())
            .push_bind(serde_json::to_string(&receipt.events).unwrap_or_default())
            .push_bind(serde_json::to_string(&receipt.failures).unwrap_or_default())
            .push_bind(now);
    });
    insert.build().execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunks_are_powers_of_two() {
        let items: Vec<u32> = (0..1000).collect();
        let sizes: Vec<usize> = chunks(&items).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [512, 256, 128, 64, 40]);
        assert!(chunks::<u32>(&[]).is_empty());
        assert_eq!(chunks(&[1]).len(), 1);
        let sizes: Vec<usize> = chunks(&items[..100]).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [64, 36]);
        assert_eq!(chunks(&items[..63]).len(), 1);
    }
}
