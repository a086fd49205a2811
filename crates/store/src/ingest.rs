//! The event write path: group commit.
//!
//! Handlers validate events and hand them to one writer task over a channel. The writer
//! takes whatever has queued up, stores it all in one `BEGIN IMMEDIATE … COMMIT` (one
//! fsync), and only then answers each request. Under load many requests share a commit,
//! which is where throughput comes from; durability stays `synchronous=FULL`. A second
//! connection copies the WAL into the database file in the background, so no commit
//! waits behind a large checkpoint.
//!
//! When the writer's connection breaks (PostgreSQL stopped, the network cut), the batch
//! in flight is answered that the database cannot be reached (nothing of it was
//! acknowledged), and so is everything that comes while the writer reconnects, at once
//! rather than after a wait; it tries again with a growing wait (at most
//! `MAX_RECONNECT_WAIT`) and goes on where it was when the database answers.

use crate::db::{Backend, ListOf};
use crate::engine::{Engine, Outcome, When};
use crate::fact_change::{Checked, Order};
use crate::locks::Locks;
use crate::notices::{Attempt, Job, JobRecord, push_records};
use crate::outage::Retry;
use crate::script::Script;
use crate::sql::QueryBuilder;
use crate::wakes::Wakes;
use crate::{Result, Store, StoreError};
use coachloop_core::FieldError;
use coachloop_core::criteria::EventFact;
use coachloop_core::event::NewEvent;
use coachloop_core::event_id::{EventId, EventIdGenerator, pack};
use coachloop_core::ids::AccountId;
use serde::Serialize;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, Connection, Executor};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, warn};
use uuid::Uuid;

/// The most events one transaction takes; more wait for the next commit.
const MAX_BATCH_EVENTS: usize = 32_000;
/// Rows per multi-row INSERT are powers of two up to this, so a few prepared
/// statements serve every batch size.
const MAX_CHUNK: usize = 2048;
/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// WAL length (pages) past which the writer is asked to finish a checkpoint.
const WAL_RESTART_FRAMES: i64 = 1_024;
/// Batches up to this many rows take one statement of their exact size.
const WHOLE_UP_TO: usize = 64;
/// Requests waiting for the writer before senders are held back.
const QUEUE_DEPTH: usize = 8_192;
/// The first wait before reconnecting after the writer's connection broke; it doubles
/// up to [`MAX_RECONNECT_WAIT`]. A restart of PostgreSQL takes a second or two.
const FIRST_RECONNECT_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between two tries to reconnect: after an outage, the writer stores
/// events again at most this long after the database answers.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(2);

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
    pub events: Vec<EventId>,
    pub failures: Vec<Failure>,
}

type Reply = oneshot::Sender<Result<Receipt, Refusal>>;
type AttemptsReply = (
    Vec<(Job, Attempt, i64)>,
    oneshot::Sender<Result<(), Refusal>>,
);

/// Why the writer did not store what it was given (a `StoreError` is not `Clone`, and
/// one failure may answer many requests).
#[derive(Debug, Clone)]
struct Refusal {
    message: String,
    /// The database could not be reached: the caller answers 503, not 500.
    unavailable: bool,
}

impl Refusal {
    fn of(error: &StoreError) -> Self {
        Self {
            message: error.to_string(),
            unavailable: error.is_unavailable(),
        }
    }

    /// The writer's connection is gone (whatever `cause` said).
    fn unreachable(cause: impl std::fmt::Display) -> Self {
        Self {
            message: cause.to_string(),
            unavailable: true,
        }
    }
}

impl From<Refusal> for StoreError {
    fn from(refusal: Refusal) -> Self {
        if refusal.unavailable {
            StoreError::Unavailable(refusal.message)
        } else {
            StoreError::Database(sqlx::Error::Protocol(refusal.message))
        }
    }
}

/// What the writer is given: events to store, or attempts at notice jobs to record
/// (job, attempt, milliseconds it took), which go in the next commit with the events.
enum Work {
    Events(Submission, Reply),
    Attempts(AttemptsReply),
}

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
    queue: mpsc::Sender<Work>,
}

impl Ingestor {
    /// Opens the writer's own connection and starts the writer task.
    pub async fn start(store: &Store, observer: CommitObserver) -> Result<(Self, JoinHandle<()>)> {
        let mut conn = open_writer(store.backend, &store.options).await?;
        let checkpointer = match store.backend {
            // A large checkpoint inside a commit would stall every request of the batch:
            // a second connection copies the WAL in the background (`checkpoint_loop`).
            Backend::Sqlite => Some(store.backend.connect(&store.options).await?),
            // PostgreSQL checkpoints on its own.
            Backend::Postgres => None,
        };
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let ids = id_generator(&mut conn).await?;
        let writer = Writer {
            conn,
            backend: store.backend,
            options: store.options.clone(),
            broken: None,
            retry: Retry::new("the event writer", FIRST_RECONNECT_WAIT, MAX_RECONNECT_WAIT),
            now: store.clock.clone(),
            types: HashMap::new(),
            type_generation: store.type_generation.clone(),
            seen_generation: 0,
            ids,
            observer,
            restart_wal: Arc::default(),
            engine: store.engine.clone(),
            wakes: store.wakes.clone(),
        };
        // The writer gets a thread and a runtime of its own: each of its statements is an
        // await, and on the server's runtime every wake-up queued behind the request
        // handlers it was answering, which made a batch's dozen round trips slow.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(sqlx::Error::Io)?;
        let (finished, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || {
                runtime.block_on(writer.run(rx, checkpointer));
                let _ = finished.send(());
            })
            .map_err(sqlx::Error::Io)?;
        let task = tokio::spawn(async move {
            let _ = done.await;
        });
        Ok((Self { queue }, task))
    }

    /// Stores a submission durably and returns its receipt.
    pub async fn submit(&self, submission: Submission) -> Result<Receipt> {
        let (reply, answer) = oneshot::channel();
        self.ask(Work::Events(submission, reply), answer).await
    }

    /// Records attempts at notice jobs (job, attempt, milliseconds it took) and what
    /// becomes of each job, in the writer's next commit: a transaction of their own
    /// would take the write lock between two of the writer's, and hold up events.
    pub async fn record_attempts(&self, done: Vec<(Job, Attempt, i64)>) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.ask(Work::Attempts((done, reply)), answer).await
    }

    async fn ask<T>(&self, work: Work, answer: oneshot::Receiver<Result<T, Refusal>>) -> Result<T> {
        self.queue
            .send(work)
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        match answer.await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(refusal)) => Err(refusal.into()),
            Err(_) => Err(StoreError::Database(sqlx::Error::PoolClosed)),
        }
    }
}

/// Opens the writer's connection: the engine's session settings, and on SQLite its own
/// checkpointing and cache (a group commit of tens of thousands of rows dirties more
/// pages than the default cache holds; spilling them to the WAL mid-transaction cost a
/// tenth of the time).
async fn open_writer(backend: Backend, options: &AnyConnectOptions) -> Result<AnyConnection> {
    let mut conn = backend.connect(options).await?;
    if backend == Backend::Sqlite {
        conn.execute("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -65536")
            .await?;
    }
    Ok(conn)
}

struct Writer {
    conn: AnyConnection,
    backend: Backend,
    options: Arc<AnyConnectOptions>,
    /// Set when `conn` broke: the next try to reconnect is due then. Until it succeeds,
    /// work is answered at once that the database cannot be reached.
    broken: Option<Instant>,
    /// The waits between tries to reconnect, and the outage's log lines.
    retry: Retry,
    now: Arc<dyn coachloop_core::clock::Clock>,
    /// Event type ids by account and name. Cleared when a type is renamed or deleted
    /// (`type_generation` moves) and after a failed transaction.
    types: HashMap<i64, HashMap<String, i64>>,
    type_generation: Arc<AtomicU64>,
    seen_generation: u64,
    ids: EventIdGenerator,
    observer: CommitObserver,
    /// Set by the background checkpointer when the WAL is long and nearly all copied:
    /// the writer then copies the rest between two batches, so the WAL starts over.
    restart_wal: Arc<AtomicBool>,
    engine: Arc<Mutex<Engine>>,
    wakes: Wakes,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Work>, checkpointer: Option<AnyConnection>) {
        let checkpoints =
            checkpointer.map(|conn| tokio::spawn(checkpoint_loop(conn, self.restart_wal.clone())));
        let mut batch = Vec::new();
        let mut attempts = Vec::new();
        loop {
            let next = match self.broken {
                None => rx.recv().await,
                // Reconnect when due, even with no work waiting: the first request after
                // the database is back finds the writer ready.
                Some(due) => tokio::select! {
                    work = rx.recv() => work,
                    () = tokio::time::sleep_until(due) => {
                        self.reconnect().await;
                        continue;
                    }
                },
            };
            let Some(first) = next else { break };
            // Events taken, up to the batch's limit.
            let mut take = |work| match work {
                Work::Events(submission, reply) => {
                    let size = submission.events.len();
                    batch.push((submission, reply));
                    size
                }
                Work::Attempts(attempt) => {
                    attempts.push(attempt);
                    0
                }
            };
            let mut size = take(first);
            while size < MAX_BATCH_EVENTS {
                match rx.try_recv() {
                    Ok(next) => size += take(next),
                    Err(_) => break,
                }
            }
            if self.broken.is_some() {
                refuse(
                    &mut batch,
                    &mut attempts,
                    "the event writer is reconnecting",
                );
                continue;
            }
            self.commit_batch(&mut batch, &mut attempts).await;
            if self.broken.is_none() && self.restart_wal.swap(false, Ordering::SeqCst) {
                self.finish_checkpoint().await;
            }
        }
        if let Some(checkpoints) = checkpoints {
            checkpoints.abort();
            // Leave a clean database file behind.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut self.conn)
                .await
            {
                warn!(error = %e, "final checkpoint failed");
            }
        }
        let _ = self.conn.close().await;
    }

    /// Tries once to open a new connection in place of the broken one.
    async fn reconnect(&mut self) {
        let reopened = async {
            let mut conn = open_writer(self.backend, &self.options).await?;
            let ids = id_generator(&mut conn).await?;
            Ok::<_, StoreError>((conn, ids))
        };
        match reopened.await {
            Ok((conn, ids)) => {
                self.conn = conn;
                self.ids = ids;
                self.broken = None;
                self.retry.succeeded();
            }
            Err(e) => {
                let wait = self.retry.failed("reconnecting", &e);
                self.broken = Some(Instant::now() + wait);
            }
        }
    }

    /// After a failed write: whether the connection is gone, because the database cannot
    /// be reached or the connection no longer answers. Then the writer stops using it and
    /// reconnects (see [`Writer::reconnect`]).
    async fn lost(&mut self, error: &StoreError) -> bool {
        if self.broken.is_some() {
            return true;
        }
        if !error.is_unavailable() && self.conn.ping().await.is_ok() {
            return false;
        }
        let wait = self.retry.failed("storing events", error);
        self.broken = Some(Instant::now() + wait);
        true
    }

    /// Copies the few WAL frames the background checkpoint has not, so the next commit
    /// starts the WAL over. Runs between batches, after the replies went out.
    async fn finish_checkpoint(&mut self) {
        let done: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut self.conn)
            .await;
        match done {
            // Busy (the background one is running) or not all copied: try after the next batch.
            Ok((busy, frames, copied)) if busy != 0 || copied < frames => {
                self.restart_wal.store(true, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "checkpoint failed"),
        }
    }

    /// Commits the batch and the attempts in one transaction; if that fails, each
    /// submission is tried alone so one bad request cannot fail its neighbours, and the
    /// attempts alone after them.
    async fn commit_batch(
        &mut self,
        batch: &mut Vec<(Submission, Reply)>,
        attempts: &mut Vec<AttemptsReply>,
    ) {
        let records = JobRecord::all(
            attempts.iter().flat_map(|(done, _)| done),
            self.now.now_ms(),
        );
        let with_events = !batch.is_empty() && self.commit_events(batch, &records).await;
        let recorded = if with_events || records.is_empty() {
            Ok(())
        } else if self.broken.is_some() {
            Err(Refusal::unreachable("the event writer is reconnecting"))
        } else {
            match self.record(&records).await {
                Ok(()) => Ok(()),
                Err(e) if self.lost(&e).await => Err(Refusal::unreachable(e)),
                Err(e) => {
                    error!(error = %e, "could not record notice attempts");
                    Err(Refusal::of(&e))
                }
            }
        };
        for (_, reply) in attempts.drain(..) {
            let _ = reply.send(recorded.clone());
        }
    }

    /// Commits the batch, with `records`, in one transaction; returns whether that
    /// succeeded (else the submissions are answered one by one, without the records).
    async fn commit_events(
        &mut self,
        batch: &mut Vec<(Submission, Reply)>,
        records: &[JobRecord<'_>],
    ) -> bool {
        let submissions: Vec<&Submission> = batch.iter().map(|(s, _)| s).collect();
        let e = match self.write(&submissions, records).await {
            Ok(receipts) => {
                for ((_, reply), receipt) in batch.drain(..).zip(receipts) {
                    let _ = reply.send(Ok(receipt));
                }
                return true;
            }
            Err(e) => e,
        };
        if self.lost(&e).await {
            // Nothing of the batch was acknowledged; trying its requests one by one on a
            // broken connection would only fail them slower.
            let refusal = Refusal::unreachable(&e);
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(refusal.clone()));
            }
        } else if batch.len() > 1 || !records.is_empty() {
            warn!(error = %e, size = batch.len(), "group commit failed; retrying one by one");
            for (submission, reply) in batch.drain(..) {
                let result = match self.broken {
                    Some(_) => Err(Refusal::unreachable("the event writer is reconnecting")),
                    None => self.write_alone(&submission).await,
                };
                let _ = reply.send(result);
            }
        } else {
            error!(error = %e, "could not store events");
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(Refusal::of(&e)));
            }
        }
        false
    }

    /// Stores one submission in a transaction of its own.
    async fn write_alone(&mut self, submission: &Submission) -> Result<Receipt, Refusal> {
        match self.write(&[submission], &[]).await {
            Ok(mut receipts) => Ok(receipts.remove(0)),
            Err(e) if self.lost(&e).await => Err(Refusal::unreachable(e)),
            Err(e) => {
                error!(error = %e, "could not store events");
                Err(Refusal::of(&e))
            }
        }
    }

    /// Records attempts at notice jobs in a transaction of their own (no events came
    /// with them, or the commit with the events failed).
    async fn record(&mut self, records: &[JobRecord<'_>]) -> Result<()> {
        let mut script = Script::new(&self.conn);
        // Recording attempts changes no account's facts: no account's lock.
        script.begin_write(&Locks::none());
        let result = async {
            push_records(&mut self.conn, &mut script, records).await?;
            script.statement(0).push("COMMIT");
            script.run(&mut self.conn).await
        }
        .await;
        if result.is_err() {
            // Fails harmlessly when the transaction never began.
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
        }
        result
    }

    async fn write(
        &mut self,
        batch: &[&Submission],
        records: &[JobRecord<'_>],
    ) -> Result<Vec<Receipt>> {
        // Held until the commit is done, so the engine's cache equals what is committed.
        let asked = std::time::Instant::now();
        let mut engine = Order::lock(&self.engine).await;
        let locked = std::time::Instant::now();
        let generation = self.type_generation.load(Ordering::SeqCst);
        if generation != self.seen_generation {
            // Event types were renamed or deleted (the change dropped the engine's state
            // of the account itself).
            self.types.clear();
            self.seen_generation = generation;
        }
        let result = self.write_once(batch, records, &mut engine).await;
        tracing::debug!(
            requests = batch.len(),
            attempts = records.len(),
            gate_ms = (locked - asked).as_secs_f64() * 1000.0,
            write_ms = locked.elapsed().as_secs_f64() * 1000.0,
            "event batch"
        );
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

    /// Writes a batch in one transaction: begins it holding the locks of the batch's
    /// accounts (see `locks`), checks the engine's cache of them, settles ids, event types
    /// and earlier `external_id`s, and sends the inserts with the COMMIT (on SQLite one
    /// multi-statement query); people are matched by a join inside the insert.
    async fn write_once(
        &mut self,
        batch: &[&Submission],
        records: &[JobRecord<'_>],
        engine: &mut Order,
    ) -> Result<Vec<Receipt>> {
        let accounts: BTreeSet<i64> = (batch.iter())
            .filter(|s| !s.events.is_empty())
            .map(|s| s.account.0)
            .collect();
        loop {
            let mut locks = Locks::none();
            for account in &accounts {
                if engine.shares(*account) {
                    locks.share(*account);
                } else {
                    locks.lock(*account);
                }
            }
            let result = match engine.begin(&mut self.conn, &locks).await {
                Ok(checked) => self.write_begun(batch, records, engine, checked).await,
                Err(e) => Err(e),
            };
            if !matches!(result, Ok(Some(_))) {
                // Fails harmlessly when the transaction is gone already.
                let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
            }
            // None: an account locked shared got its first smart group meanwhile; the
            // check that found it out made the next round lock it exclusively.
            if let Some(receipts) = result.transpose() {
                return receipts;
            }
        }
    }

    /// [`Self::write_once`] in the transaction it began; `None` when it must begin again.
    async fn write_begun(
        &mut self,
        batch: &[&Submission],
        records: &[JobRecord<'_>],
        engine: &mut Order,
        checked: Checked,
    ) -> Result<Option<Vec<Receipt>>> {
        for account in &checked.rules_changed {
            // Another node renamed or deleted event types, or changed smart groups.
            self.types.remove(account);
        }
        if !checked.lock_exclusively.is_empty() {
            return Ok(None);
        }
        let now = self.now.now_ms();
        let mut seen = existing_external_ids(&mut self.conn, batch).await?;
        let mut rows = Vec::new();
        let mut receipts = Vec::with_capacity(batch.len());
        for submission in batch {
            let account = submission.account.0;
            let mut events = Vec::with_capacity(submission.events.len());
            for event in &submission.events {
                let key = event.external_id.as_ref().map(|x| (account, x.clone()));
                if let Some(earlier) = key.as_ref().and_then(|k| seen.get(k)) {
                    events.push(*earlier);
                    continue;
                }
                let type_id = self.event_type_id(account, &event.event_type, now).await?;
                let id = self.ids.next(now, rand::random());
                if let Some(key) = key {
                    seen.insert(key, id);
                }
                rows.push(Row {
                    id,
                    account,
                    event,
                    type_id,
                });
                events.push(id);
            }
            receipts.push(Receipt {
                events,
                failures: submission.failures.clone(),
            });
        }

        let pairs: Vec<_> = batch.iter().zip(&receipts).collect();
        let mut ruled = HashSet::new();
        for row in &rows {
            if !ruled.contains(&row.account)
                && !engine
                    .account(&mut self.conn, row.account)
                    .await?
                    .is_empty()
            {
                ruled.insert(row.account);
            }
        }
        let stored: Vec<(i64, i64)> = match engine.locks_accounts() {
            true => rows.iter().map(|row| (row.account, row.id.hi)).collect(),
            false => Vec::new(),
        };
        let writes = Writes {
            rows: &rows,
            pairs: &pairs,
            records,
            now,
            versions: &engine.versions_sql(now, &stored),
        };
        if ruled.is_empty() {
            insert_and_commit(&mut self.conn, writes).await?;
            engine.committed();
        } else {
            let outcome = commit_with_groups(&mut self.conn, engine, &ruled, writes).await?;
            engine.committed();
            outcome.committed(&self.wakes);
        }
        Ok(Some(receipts))
    }

    /// The id of an event type, creating the type when a sender names a new one. New
    /// types are committed on their own: a type that outlives a failed batch is harmless.
    async fn event_type_id(&mut self, account: i64, name: &str, now: i64) -> Result<i64> {
        if let Some(id) = self.types.get(&account).and_then(|names| names.get(name)) {
            return Ok(*id);
        }
        sqlx::query(
            "INSERT INTO event_types (account_id, name, built_in, created_at) \
             VALUES ($1, $2, FALSE, $3) ON CONFLICT (account_id, name) DO NOTHING",
        )
        .bind(account)
        .bind(name)
        .bind(now)
        .execute(&mut self.conn)
        .await?;
        let id: i64 =
            sqlx::query_scalar("SELECT id FROM event_types WHERE account_id = $1 AND name = $2")
                .bind(account)
                .bind(name)
                .fetch_one(&mut self.conn)
                .await?;
        self.types
            .entry(account)
            .or_default()
            .insert(name.to_owned(), id);
        Ok(id)
    }
}

/// The writer's event ids on `conn`, after the largest key stored: on PostgreSQL in a
/// slot of its own, so writers of several nodes never hand out the same id.
async fn id_generator(conn: &mut AnyConnection) -> Result<EventIdGenerator> {
    let slot = crate::locks::claim_writer_slot(conn).await?;
    let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    let ids = EventIdGenerator::after(last);
    Ok(match slot {
        Some(slot) => ids.in_slot(slot),
        None => ids,
    })
}

/// Answers everything taken that the database cannot be reached (`why`).
fn refuse(batch: &mut Vec<(Submission, Reply)>, attempts: &mut Vec<AttemptsReply>, why: &str) {
    for (_, reply) in batch.drain(..) {
        let _ = reply.send(Err(Refusal::unreachable(why)));
    }
    for (_, reply) in attempts.drain(..) {
        let _ = reply.send(Err(Refusal::unreachable(why)));
    }
}

/// Copies committed WAL frames into the database file off the writer's path. A passive
/// checkpoint takes no lock and waits for no one, but under steady writing it never
/// quite finishes, and a WAL that never starts over grows without end. So once the WAL
/// is longer than [`WAL_RESTART_FRAMES`], this asks the writer to copy the last few
/// frames itself between two batches (`restart`), after which the WAL starts over.
async fn checkpoint_loop(mut conn: AnyConnection, restart: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let passive: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut conn)
            .await;
        match passive {
            Ok((_, frames, _)) if frames > WAL_RESTART_FRAMES => {
                restart.store(true, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "background checkpoint failed"),
        }
    }
}

struct Row<'a> {
    id: EventId,
    account: i64,
    event: &'a NewEvent,
    type_id: i64,
}

/// The events already stored under the `external_id`s this batch names, per account.
/// Only this writer inserts events, so what it reads here still holds when it commits.
async fn existing_external_ids(
    conn: &mut AnyConnection,
    batch: &[&Submission],
) -> Result<HashMap<(i64, String), EventId>> {
    let mut wanted: HashMap<i64, Vec<&str>> = HashMap::new();
    for submission in batch {
        for event in &submission.events {
            if let Some(external_id) = &event.external_id {
                wanted
                    .entry(submission.account.0)
                    .or_default()
                    .push(external_id);
            }
        }
    }
    let mut found = HashMap::new();
    let existing = format!(
        "SELECT external_id, id, id_low FROM events WHERE account_id = $1 AND {}",
        Backend::of_connection(conn).in_list("external_id", 2, ListOf::Texts)
    );
    for (account, names) in wanted {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(&existing)
            .bind(account)
            .bind(Backend::list(&names))
            .fetch_all(&mut *conn)
            .await?;
        for (external_id, hi, lo) in rows {
            found.insert((account, external_id), EventId { hi, lo });
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

/// Stores the rows and statuses in one `BEGIN IMMEDIATE … COMMIT`.
/// What a batch's transaction writes besides the smart groups' outcome.
#[derive(Clone, Copy)]
struct Writes<'a> {
    rows: &'a [Row<'a>],
    /// Each submission with its receipt, for the request log.
    pairs: &'a [(&'a &'a Submission, &'a Receipt)],
    /// Notice attempts recorded in the same commit.
    records: &'a [JobRecord<'a>],
    now: i64,
    /// The accounts' new versions (see `Order::versions_sql`), sent with the COMMIT.
    versions: &'a str,
}

impl<'a> Writes<'a> {
    /// Queues the records of notice attempts, the accounts' new versions and the COMMIT.
    async fn push_commit(&self, conn: &mut AnyConnection, script: &mut Script<'a>) -> Result<()> {
        push_records(conn, script, self.records).await?;
        if !self.versions.is_empty() {
            script.statement(0).push(self.versions);
        }
        script.statement(0).push("COMMIT");
        Ok(())
    }

    fn is_small(&self) -> bool {
        self.rows.len() <= WHOLE_UP_TO && self.pairs.len() <= WHOLE_UP_TO
    }

    /// Queues the rows' and statuses' inserts as one statement (for a small batch).
    fn push_inserts(&self, script: &mut Script<'a>) {
        let backend = script.backend();
        if backend == Backend::Postgres && !self.rows.is_empty() {
            // One statement, one round trip: the events' insert as a data-modifying
            // `WITH`, which runs whether or not the outer insert reads it.
            let query = script.statement(4);
            query.push("WITH stored AS (");
            push_events(backend, query, self.rows, self.now);
            query.push(") ");
            push_requests(backend, query, self.pairs, self.now);
            return;
        }
        if !self.rows.is_empty() {
            let query = script.statement(self.rows.len() * 15);
            push_events(backend, query, self.rows, self.now);
        }
        let query = script.statement(self.pairs.len() * 7);
        push_requests(backend, query, self.pairs, self.now);
    }
}

/// Stores the rows and statuses and commits the open transaction. A small batch goes
/// as one multi-statement query (one round trip to SQLite's thread); a large one
/// statement by statement, so the prepared-statement cache holds a few shapes rather
/// than every mix of chunk sizes.
async fn insert_and_commit(conn: &mut AnyConnection, writes: Writes<'_>) -> Result<()> {
    let mut script = Script::new(conn);
    if writes.is_small() || script.backend() == Backend::Postgres {
        writes.push_inserts(&mut script);
    } else {
        insert(conn, writes.rows, writes.pairs, writes.now).await?;
    }
    writes.push_commit(conn, &mut script).await?;
    script.run(conn).await
}

/// Stores the rows and statuses, statement by statement, in the open transaction.
async fn insert(
    conn: &mut AnyConnection,
    rows: &[Row<'_>],
    pairs: &[(&&Submission, &Receipt)],
    now: i64,
) -> Result<()> {
    let backend = Backend::of_connection(conn);
    for chunk in chunks(rows) {
        let mut query = QueryBuilder::with(backend, "");
        push_events(backend, &mut query, chunk, now);
        query.build().execute(&mut *conn).await?;
    }
    for chunk in chunks(pairs) {
        let mut query = QueryBuilder::with(backend, "");
        push_requests(backend, &mut query, chunk, now);
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`commit`] for a batch in which some accounts have smart groups: inside the same
/// transaction, matches each event's person (as the insert's join will), adds the event
/// to their cached facts, re-evaluates the rules it can affect, and writes the joins,
/// leaves and schedule entries. The people whose cache changed are touched in `engine`,
/// forgotten should the commit fail.
async fn commit_with_groups(
    conn: &mut AnyConnection,
    engine: &mut Order,
    ruled: &HashSet<i64>,
    writes: Writes<'_>,
) -> Result<Outcome> {
    let Writes { rows, now, .. } = writes;
    let people = match_people(conn, ruled, rows).await?;
    // Everyone the batch's events may move, loaded together per account (a person seen
    // for the first time costs four reads; a batch of them, four in all).
    let mut reached: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in rows {
        let user = people
            .get(&row.account)
            .and_then(|names| names.get(row.event.target_norm.as_str()));
        let Some(&user) = user else {
            continue;
        };
        let rules = engine.account(conn, row.account).await?;
        if !rules.event_type(&row.event.event_type).1.is_empty() {
            reached.entry(row.account).or_default().push(user);
        }
    }
    for (account, users) in &reached {
        let rules = engine.account(conn, *account).await?;
        rules.preload(conn, *account, now).await?;
        rules.load_people(conn, *account, users, now).await?;
    }
    let mut pending: HashMap<(i64, i64), BTreeSet<usize>> = HashMap::new();
    for row in rows {
        let user = people
            .get(&row.account)
            .and_then(|names| names.get(row.event.target_norm.as_str()));
        let Some(&user) = user else {
            continue;
        };
        let rules = engine.account(conn, row.account).await?;
        let (event_type, affected) = rules.event_type(&row.event.event_type);
        if affected.is_empty() {
            continue;
        }
        rules.preload(conn, row.account, now).await?;
        engine.touch(row.account, user);
        let rules = engine.account(conn, row.account).await?;
        rules.person(conn, row.account, user, now).await?;
        let fact = EventFact {
            id: row.id,
            event_type,
            description: rules.description(row.event.description.as_deref()),
            occurred_ms: row.event.occurred_ms,
        };
        rules.add_event(user, fact, &affected, now);
        pending
            .entry((row.account, user))
            .or_default()
            .extend(affected.iter().copied());
    }
    let mut outcome = Outcome::default();
    let evaluate = async |engine: &mut Engine, outcome: &mut Outcome| {
        for (i, ((account, user), indices)) in pending.into_iter().enumerate() {
            if i % 64 == 63 {
                tokio::task::yield_now().await;
            }
            if let Some(rules) = engine.loaded(account) {
                rules.evaluate(account, user, indices, When::fact(now), outcome);
            }
        }
    };
    // The rows' inserts and the outcome's writes go with the COMMIT in one round trip
    // (the enrolments, whose ids notices name, and the reads go before).
    let mut script = Script::new(conn);
    if writes.is_small() {
        evaluate(engine, &mut outcome).await;
        writes.push_inserts(&mut script);
    } else {
        // SQLite runs on its own thread: evaluate the rules while it stores the rows,
        // yielding now and then so the insert's next statement is sent as the last is done.
        let (inserted, ()) = tokio::join!(
            insert(conn, rows, writes.pairs, now),
            evaluate(engine, &mut outcome)
        );
        inserted?;
    }
    outcome.write_into(conn, now, &mut script).await?;
    // Joins, leaves and the enrolments they made can change people's compliance: in an
    // account with requirements, the writes go first, then the recheck, then the COMMIT.
    let moved: Vec<(i64, i64)> = outcome
        .changes
        .iter()
        .map(|c| (c.account, c.user))
        .collect();
    if !moved.is_empty() && crate::compliance::any_requirements(conn, ruled).await? {
        script.run(conn).await?;
        script = Script::new(conn);
        outcome.compliance_due = crate::compliance::recheck(conn, &moved, now).await?;
    }
    writes.push_commit(conn, &mut script).await?;
    script.run(conn).await?;
    Ok(outcome)
}

/// Reads the person each row's target names, for rows of accounts with smart groups:
/// read in the write transaction, under the accounts' locks, it is what the insert's join
/// finds.
async fn match_people(
    conn: &mut AnyConnection,
    ruled: &HashSet<i64>,
    rows: &[Row<'_>],
) -> Result<HashMap<i64, HashMap<String, i64>>> {
    let mut wanted: HashMap<i64, Vec<&str>> = HashMap::new();
    for row in rows.iter().filter(|r| ruled.contains(&r.account)) {
        wanted
            .entry(row.account)
            .or_default()
            .push(row.event.target_norm.as_str());
    }
    let matches = format!(
        // CROSS JOIN: SQLite takes it as "the list first", each value then found by the
        // key; given the choice it reads every identity of the account once per value.
        "SELECT i.identity, i.user_id FROM {} CROSS JOIN user_identities i \
         WHERE i.account_id = $1 AND i.identity = w.value",
        Backend::of_connection(conn).list_rows(2, ListOf::Texts)
    );
    let mut found: HashMap<i64, HashMap<String, i64>> = HashMap::new();
    for (account, names) in wanted {
        let matched: Vec<(String, i64)> = sqlx::query_as(&matches)
            .bind(account)
            .bind(Backend::list(&names))
            .fetch_all(&mut *conn)
            .await?;
        found.entry(account).or_default().extend(matched);
    }
    Ok(found)
}

/// Appends one insert of events, in the engine's fastest form: bound values row by row
/// on SQLite; on PostgreSQL one JSON array read by `json_to_recordset`, so the statement's
/// text never changes (prepared once) and a batch is one value to send and parse instead
/// of fifteen per row.
fn push_events<'a>(backend: Backend, query: &mut QueryBuilder<'a>, rows: &'a [Row<'a>], now: i64) {
    match backend {
        Backend::Sqlite => push_event_values(query, rows, now),
        Backend::Postgres => push_event_records(query, rows, now),
    }
}

/// Appends one insert of request statuses (see [`push_events`]).
fn push_requests<'a>(
    backend: Backend,
    query: &mut QueryBuilder<'a>,
    pairs: &'a [(&&'a Submission, &'a Receipt)],
    now: i64,
) {
    match backend {
        Backend::Sqlite => push_request_values(query, pairs, now),
        Backend::Postgres => push_request_records(query, pairs, now),
    }
}

/// One event as `json_to_recordset` reads it (see [`EVENT_RECORDS`]).
#[derive(Serialize)]
struct EventRecord<'a> {
    id: i64,
    lo: i64,
    a: i64,
    t: i64,
    u: &'a str,
    n: &'a str,
    x: Option<&'a str>,
    s: Option<&'a str>,
    d: Option<&'a str>,
    o: i64,
    rl: Option<i64>,
    rd: Option<i64>,
    re: Option<i64>,
    m: Option<&'a str>,
}

/// PostgreSQL's insert of a batch of events: around the creation stamp and the JSON array.
const EVENT_RECORDS: [&str; 3] = [
    "INSERT INTO events (id, id_low, account_id, event_type_id, user_id, target_user, \
     target_norm, external_id, source, description, occurred_at, risk_level, \
     risk_decay_mode, risk_expire_date, metadata, created_at) \
     SELECT v.id, v.lo, v.a, v.t, i.user_id, v.u, CASE WHEN i.user_id IS NULL THEN v.n END, \
     v.x, v.s, v.d, v.o, v.rl, v.rd, v.re, v.m, ",
    " FROM json_to_recordset(",
    "::json) AS v(id bigint, lo bigint, a bigint, t bigint, u text, n text, x text, s text, \
     d text, o bigint, rl bigint, rd bigint, re bigint, m text) \
     LEFT JOIN user_identities i ON i.account_id = v.a AND i.identity = v.n \
     ON CONFLICT (account_id, external_id) WHERE external_id IS NOT NULL DO NOTHING",
];

fn push_event_records(query: &mut QueryBuilder<'_>, rows: &[Row<'_>], now: i64) {
    let records: Vec<EventRecord<'_>> = rows
        .iter()
        .map(|row| {
            let event = row.event;
            let risk = event.risk.as_ref();
            EventRecord {
                id: row.id.hi,
                lo: row.id.lo,
                a: row.account,
                t: row.type_id,
                u: &event.target_user,
                n: &event.target_norm,
                x: event.external_id.as_deref(),
                s: event.source.as_deref(),
                d: event.description.as_deref(),
                o: event.occurred_ms,
                rl: risk.map(|r| r.level),
                rd: risk.and_then(|r| r.decay_mode).map(|m| m as i64),
                re: risk.map(|r| coachloop_core::time::date_start_ms(r.expire_date)),
                m: event.metadata.as_deref(),
            }
        })
        .collect();
    let json = serde_json::to_string(&records).unwrap_or_else(|_| "[]".to_owned());
    let [head, middle, tail] = EVENT_RECORDS;
    query
        .push(head)
        .push_bind(now)
        .push(middle)
        .push_bind(json)
        .push(tail);
}

/// One request status as `json_to_recordset` reads it (see [`REQUEST_RECORDS`]).
#[derive(Serialize)]
struct RequestRecord<'a> {
    id: String,
    a: i64,
    t: &'a str,
    i: Option<&'a str>,
    /// The packed event ids, in hex.
    e: String,
    f: String,
}

/// PostgreSQL's insert of a batch of request statuses (see [`EVENT_RECORDS`]).
const REQUEST_RECORDS: [&str; 3] = [
    "INSERT INTO event_requests (uuid, account_id, token_name, integration, events, \
     failures, processed_at) SELECT v.id, v.a, v.t, v.i, decode(v.e, 'hex'), v.f, ",
    " FROM json_to_recordset(",
    "::json) AS v(id text, a bigint, t text, i text, e text, f text)",
];

fn push_request_records(
    query: &mut QueryBuilder<'_>,
    pairs: &[(&&Submission, &Receipt)],
    now: i64,
) {
    let records: Vec<RequestRecord<'_>> = pairs
        .iter()
        .map(|(submission, receipt)| RequestRecord {
            id: submission.request_id.to_string(),
            a: submission.account.0,
            t: &submission.token_name,
            i: submission.integration.as_deref(),
            e: hex::encode(pack(&receipt.events)),
            f: serde_json::to_string(&receipt.failures).unwrap_or_default(),
        })
        .collect();
    let json = serde_json::to_string(&records).unwrap_or_else(|_| "[]".to_owned());
    let [head, middle, tail] = REQUEST_RECORDS;
    query
        .push(head)
        .push_bind(now)
        .push(middle)
        .push_bind(json)
        .push(tail);
}

/// Appends one multi-row insert of events. The person is found by a join on their
/// identities; the match key is kept only for events that matched no one.
fn push_event_values<'a>(query: &mut QueryBuilder<'a>, rows: &'a [Row<'a>], now: i64) {
    query.push(
        "INSERT INTO events (id, id_low, account_id, event_type_id, user_id, target_user, \
         target_norm, external_id, source, description, occurred_at, risk_level, \
         risk_decay_mode, risk_expire_date, metadata, created_at) \
         SELECT v.column1, v.column2, v.column3, v.column4, i.user_id, v.column5, \
         CASE WHEN i.user_id IS NULL THEN v.column6 END, v.column7, v.column8, v.column9, \
         v.column10, v.column11, v.column12, v.column13, v.column14, v.column15 FROM (",
    );
    query.push_values(rows, |mut values, row| {
        let event = row.event;
        let risk = event.risk.as_ref();
        values
            .push_bind(row.id.hi)
            .push_bind(row.id.lo)
            .push_bind(row.account)
            .push_bind(row.type_id)
            .push_bind(event.target_user.as_str())
            .push_bind(event.target_norm.as_str())
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
    // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.
    query.push(
        ") AS v LEFT JOIN user_identities i ON i.account_id = v.column3 \
         AND i.identity = v.column6 WHERE true \
         ON CONFLICT (account_id, external_id) WHERE external_id IS NOT NULL DO NOTHING",
    );
}

/// Appends one multi-row insert of request statuses.
fn push_request_values<'a>(
    query: &mut QueryBuilder<'a>,
    pairs: &'a [(&&'a Submission, &'a Receipt)],
    now: i64,
) {
    query.push(
        "INSERT INTO event_requests (uuid, account_id, token_name, integration, events, \
         failures, processed_at) ",
    );
    query.push_values(pairs, |mut values, (submission, receipt)| {
        values
            .push_bind(submission.request_id.to_string())
            .push_bind(submission.account.0)
            .push_bind(submission.token_name.as_str())
            .push_bind(submission.integration.as_deref())
            .push_bind(pack(&receipt.events))
            .push_bind(serde_json::to_string(&receipt.failures).unwrap_or_default())
            .push_bind(now);
    });
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
