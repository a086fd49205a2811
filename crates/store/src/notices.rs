//! The durable notice queue: emails and signed webhooks, written as jobs in the
//! transaction of the fact they tell and keyed by that fact (`dedupe`), so a fact is
//! queued once however often the code that records it runs. The server's runner reads
//! due jobs, keeps what it is sending in memory, and records every attempt in batches
//! (a crash before the record leaves the job pending, to be sent again); failures are
//! retried with backoff.

use crate::script::Script;
use crate::{Result, Store, StoreError};
use coachloop_core::ids::{AccountId, CampaignId, DeliveryId, JobId, WebhookId};
use coachloop_core::notice::Notice;
use rand::RngCore;
use serde_json::{Value, json};
use sqlx::{AnyConnection, FromRow};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

pub const ENROLLMENT_CREATED: &str = "enrollment.created";
pub const ENROLLMENT_COMPLETED: &str = "enrollment.completed";
pub const ENROLLMENT_PAST_DUE: &str = "enrollment.past_due";
pub const MEMBER_JOINED: &str = "group.member_joined";
pub const MEMBER_LEFT: &str = "group.member_left";
/// Every event a webhook may subscribe to.
pub const WEBHOOK_EVENTS: [&str; 5] = [
    ENROLLMENT_CREATED,
    ENROLLMENT_COMPLETED,
    ENROLLMENT_PAST_DUE,
    MEMBER_JOINED,
    MEMBER_LEFT,
];

/// A webhook's body: coachloop's own signed JSON of a fact.
pub const FORMAT_JSON: &str = "json";
/// Chat: the text of notices, as a Slack or Microsoft Teams incoming webhook takes it.
pub const FORMAT_SLACK: &str = "slack";
pub const FORMAT_TEAMS: &str = "teams";

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Webhook {
    #[sqlx(try_from = "i64")]
    pub id: WebhookId,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    pub url: String,
    pub secret: String,
    /// JSON array of event names.
    pub events: String,
    #[sqlx(try_from = "crate::db::Flag")]
    pub active: bool,
    pub created_at: i64,
    /// [`FORMAT_JSON`], [`FORMAT_SLACK`] or [`FORMAT_TEAMS`].
    pub format: String,
    /// A chat webhook's one campaign (none: all of the account's).
    pub campaign_id: Option<i64>,
}

impl Webhook {
    pub fn event_names(&self) -> Result<Vec<String>> {
        event_names(self.id.0, &self.events)
    }
}

/// A webhook's stored events; ones that cannot be read are an error naming the webhook,
/// never a webhook that subscribes to nothing.
fn event_names(webhook: i64, events: &str) -> Result<Vec<String>> {
    serde_json::from_str(events).map_err(|e| {
        StoreError::Corrupt(format!("webhook {webhook}: its events cannot be read: {e}"))
    })
}

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Job {
    #[sqlx(try_from = "i64")]
    pub id: JobId,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    pub kind: String,
    pub dedupe: String,
    pub payload: String,
    pub run_at: i64,
    pub attempts: i64,
    pub status: String,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub done_at: Option<i64>,
    /// The node sending it now (PostgreSQL; see [`Store::claim_jobs`]).
    pub claimed_by: Option<String>,
}

impl Job {
    /// The stored payload, read as `T`; one that cannot be read is an error naming the
    /// job.
    pub fn read_payload<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.payload).map_err(|e| {
            StoreError::Corrupt(format!("job {}: its payload cannot be read: {e}", self.id))
        })
    }
}

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Delivery {
    #[sqlx(try_from = "i64")]
    pub id: DeliveryId,
    #[sqlx(try_from = "i64")]
    pub job_id: JobId,
    pub attempt: i64,
    pub at: i64,
    #[sqlx(try_from = "crate::db::Flag")]
    pub ok: bool,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub took_ms: i64,
}

/// How one attempt at a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered {
        status_code: Option<i64>,
    },
    /// Try again at `retry_at`, or give up when `None`.
    Failed {
        status_code: Option<i64>,
        error: String,
        retry_at: Option<i64>,
    },
    /// Nothing to send (no address, no SMTP server, already finished); said why.
    Skipped {
        reason: String,
    },
}

const WEBHOOK_COLUMNS: &str =
    "id, account_id, url, secret, events, active, created_at, format, campaign_id";

const JOB_COLUMNS: &str = "id, account_id, kind, dedupe, payload, run_at, attempts, status, \
    last_error, created_at, done_at, claimed_by";

/// The notices a transaction queues, written with its other writes (see [`Script`]).
/// An account's active webhooks are read once, however many facts it tells.
#[derive(Default)]
pub(crate) struct Notices {
    /// Active webhooks per account.
    hooks: HashMap<i64, Vec<Hook>>,
    jobs: Vec<NewJob>,
}

/// An active webhook, as the queue needs it.
struct Hook {
    id: i64,
    /// Fact events (a JSON webhook) or notice names (chat).
    events: Vec<String>,
    chat: bool,
    campaign: Option<i64>,
}

/// A notice about an enrolment, to queue: an email, and the same text to every chat
/// webhook of the account that takes it.
pub(crate) struct EnrolmentNotice<'a> {
    pub campaign: i64,
    pub notice: Notice,
    pub enrollment: i64,
    /// A reminder's offset before the due time (see `NoticeSettings::reminders`).
    pub offset: Option<&'a str>,
    pub run_at: i64,
}

struct NewJob {
    account: i64,
    kind: &'static str,
    dedupe: String,
    payload: String,
    run_at: i64,
}

impl Notices {
    /// Queues, for each fact (`key` naming it, e.g. `enrollment:42`, and its data), a
    /// webhook job per active webhook of the account that subscribes to `event`.
    pub async fn event(
        &mut self,
        conn: &mut AnyConnection,
        account: i64,
        event: &str,
        facts: &[(String, Value)],
        now: i64,
    ) -> Result<()> {
        if facts.is_empty() {
            return Ok(());
        }
        let hooks = account_hooks(&mut self.hooks, conn, account).await?;
        for Hook { id: hook, .. } in hooks
            .iter()
            .filter(|h| !h.chat && h.events.iter().any(|e| e == event))
        {
            for (key, data) in facts {
                let dedupe = format!("webhook:{hook}:{event}:{key}");
                let payload = json!({
                    "webhook_id": hook,
                    "body": {
                        "id": dedupe,
                        "event": event,
                        "occurred_at": coachloop_core::time::format_ms(now),
                        "data": data,
                    },
                });
                self.jobs.push(NewJob {
                    account,
                    kind: "webhook",
                    dedupe,
                    payload: payload.to_string(),
                    run_at: now,
                });
            }
        }
        Ok(())
    }

    /// Whether an active webhook of the account subscribes to `event`: a caller with
    /// many facts to tell (a backfill's tens of thousands of joins) asks before it
    /// describes them.
    pub async fn subscribed(
        &mut self,
        conn: &mut AnyConnection,
        account: i64,
        event: &str,
    ) -> Result<bool> {
        let hooks = account_hooks(&mut self.hooks, conn, account).await?;
        Ok(hooks
            .iter()
            .any(|h| !h.chat && h.events.iter().any(|e| e == event)))
    }

    /// Queues notices about enrolments: the email, and a job for each chat webhook that
    /// takes the notice (for every campaign, or this one); `run_at` may be later (a
    /// reminder). What the email says is decided when it is sent, from the campaign's
    /// templates then. A repeat of a queued notice is dropped when written.
    pub async fn notices(
        &mut self,
        conn: &mut AnyConnection,
        account: i64,
        notices: &[EnrolmentNotice<'_>],
    ) -> Result<()> {
        if notices.is_empty() {
            return Ok(());
        }
        let hooks = account_hooks(&mut self.hooks, conn, account).await?;
        for n in notices {
            let name = n.notice.as_str();
            let key = match n.offset {
                Some(offset) => format!("{name}:{}:{offset}", n.enrollment),
                None => format!("{name}:{}", n.enrollment),
            };
            let mut payload = json!({"template": name, "enrollment_id": n.enrollment});
            if let Some(offset) = n.offset {
                payload["offset"] = json!(offset);
            }
            for hook in hooks.iter().filter(|h| {
                h.chat
                    && h.campaign.is_none_or(|c| c == n.campaign)
                    && h.events.iter().any(|e| e == name)
            }) {
                self.jobs.push(NewJob {
                    account,
                    kind: "webhook",
                    dedupe: format!("webhook:{}:{key}", hook.id),
                    payload: json!({"webhook_id": hook.id, "notice": payload}).to_string(),
                    run_at: n.run_at,
                });
            }
            self.jobs.push(NewJob {
                account,
                kind: "email",
                dedupe: format!("email:{key}"),
                payload: payload.to_string(),
                run_at: n.run_at,
            });
        }
        Ok(())
    }

    /// Adds the jobs' inserts to `script`, many rows a statement.
    pub async fn write(
        &self,
        conn: &mut AnyConnection,
        script: &mut Script<'_>,
        now: i64,
    ) -> Result<()> {
        let records: Vec<JobRow<'_>> = (self.jobs.iter())
            .map(|job| JobRow {
                account_id: job.account,
                kind: job.kind,
                dedupe: &job.dedupe,
                payload: &job.payload,
                run_at: job.run_at,
                created_at: now,
            })
            .collect();
        let backend = script.backend();
        for chunk in records.chunks(backend.rows_per_insert()) {
            let insert = script.reserve(conn, chunk.len() * 6).await?;
            insert.push_records(backend, "jobs", chunk);
            insert.push(" ON CONFLICT (dedupe) DO NOTHING");
        }
        Ok(())
    }

    /// Writes the jobs now, in the caller's transaction.
    pub async fn send(&self, conn: &mut AnyConnection, now: i64) -> Result<()> {
        let mut script = Script::new(conn);
        self.write(conn, &mut script, now).await?;
        script.run(conn).await
    }
}

/// The account's active webhooks with the events each subscribes to, read once into
/// `known`.
async fn account_hooks<'a>(
    known: &'a mut HashMap<i64, Vec<Hook>>,
    conn: &mut AnyConnection,
    account: i64,
) -> Result<&'a [Hook]> {
    Ok(match known.entry(account) {
        Entry::Occupied(known) => known.into_mut(),
        Entry::Vacant(slot) => {
            let rows: Vec<(i64, String, String, Option<i64>)> = sqlx::query_as(
                "SELECT id, events, format, campaign_id FROM webhooks \
                 WHERE account_id = $1 AND active = TRUE",
            )
            .bind(account)
            .fetch_all(&mut *conn)
            .await?;
            slot.insert(
                (rows.into_iter())
                    .map(|(id, events, format, campaign)| {
                        Ok(Hook {
                            id,
                            events: event_names(id, &events)?,
                            chat: format != FORMAT_JSON,
                            campaign,
                        })
                    })
                    .collect::<Result<_>>()?,
            )
        }
    })
}

/// A row of `jobs` (see [`crate::sql::QueryBuilder::push_records`]).
#[derive(serde::Serialize)]
struct JobRow<'a> {
    account_id: i64,
    kind: &'static str,
    dedupe: &'a str,
    payload: &'a str,
    run_at: i64,
    created_at: i64,
}

impl crate::sql::Record for JobRow<'_> {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("account_id", "bigint"),
        ("kind", "text"),
        ("dedupe", "text"),
        ("payload", "text"),
        ("run_at", "bigint"),
        ("created_at", "bigint"),
    ];

    fn bind<'args>(&self, row: &mut crate::sql::Separated<'_, 'args>) {
        row.push_bind(self.account_id)
            .push_bind(self.kind)
            .push_bind(self.dedupe.to_owned())
            .push_bind(self.payload.to_owned())
            .push_bind(self.run_at)
            .push_bind(self.created_at);
    }
}

impl Store {
    /// Registers a webhook; its signing secret is made here and returned with it. A chat
    /// webhook (`format` slack or teams) names notices in `events`, and may be for one
    /// campaign of the account.
    pub async fn create_webhook(
        &self,
        account: AccountId,
        url: &str,
        events: &[String],
        format: &str,
        campaign: Option<CampaignId>,
    ) -> Result<Webhook> {
        if let Some(campaign) = campaign {
            self.campaign(account, campaign).await?;
        }
        let mut secret = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhooks (account_id, url, secret, events, created_at, format, \
             campaign_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(account.0)
        .bind(url)
        .bind(format!("whsec_{}", hex::encode(secret)))
        .bind(serde_json::to_string(events).unwrap_or_else(|_| "[]".into()))
        .bind(self.now_ms())
        .bind(format)
        .bind(campaign.map(|c| c.0))
        .fetch_one(&self.write)
        .await?;
        self.webhook(account, WebhookId(id)).await
    }

    pub async fn webhook(&self, account: AccountId, id: WebhookId) -> Result<Webhook> {
        sqlx::query_as(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound("webhook"))
    }

    pub async fn list_webhooks(&self, account: AccountId) -> Result<Vec<Webhook>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE account_id = $1 ORDER BY id"
        ))
        .bind(account.0)
        .fetch_all(&self.read)
        .await?)
    }

    /// Stops a webhook: nothing new is queued for it; what is queued is still tried.
    pub async fn deactivate_webhook(&self, account: AccountId, id: WebhookId) -> Result<Webhook> {
        self.webhook(account, id).await?;
        sqlx::query("UPDATE webhooks SET active = FALSE WHERE account_id = $1 AND id = $2")
            .bind(account.0)
            .bind(id.0)
            .execute(&self.write)
            .await?;
        self.webhook(account, id).await
    }

    /// A webhook's jobs, newest first, with their attempts (the delivery log).
    pub async fn webhook_log(
        &self,
        account: AccountId,
        id: WebhookId,
        limit: i64,
    ) -> Result<Vec<(Job, Vec<Delivery>)>> {
        self.webhook(account, id).await?;
        let jobs: Vec<Job> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = $1 AND kind = 'webhook' \
             AND dedupe LIKE $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(account.0)
        .bind(format!("webhook:{id}:%"))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let deliveries = self.deliveries(job.id).await?;
            out.push((job, deliveries));
        }
        Ok(out)
    }

    pub async fn deliveries(&self, job: JobId) -> Result<Vec<Delivery>> {
        Ok(sqlx::query_as(
            "SELECT id, job_id, attempt, at, ok, status_code, error, took_ms FROM deliveries \
             WHERE job_id = $1 ORDER BY id",
        )
        .bind(job.0)
        .fetch_all(&self.read)
        .await?)
    }

    /// Jobs of an account, newest first (for tests and the console).
    pub async fn jobs(&self, account: AccountId, kind: Option<&str>) -> Result<Vec<Job>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = $1 AND ($2 IS NULL OR kind = $2) \
             ORDER BY id DESC LIMIT 1000"
        ))
        .bind(account.0)
        .bind(kind)
        .fetch_all(&self.read)
        .await?)
    }

    /// Whether a notice runner claims the jobs it sends in the database
    /// ([`Store::claim_jobs`]): on PostgreSQL, where several nodes run one; on SQLite its
    /// one runner keeps what it sends in memory and reads with [`Store::due_jobs`].
    pub fn claims_jobs(&self) -> bool {
        self.backend == crate::Backend::Postgres
    }

    /// Claims up to `limit` due jobs of `kind` for this node to send, for `lease`: no other
    /// node takes them while the lease lasts (their `run_at` is moved to its end, and
    /// `claimed_by` names this node). Recording the attempt ends the claim; a node that
    /// dies mid-send leaves its jobs to be claimed again, and sent with the same delivery
    /// id, once the lease ends. Each job comes back with the `run_at` it was due at.
    pub async fn claim_jobs(
        &self,
        kind: &str,
        limit: usize,
        lease: std::time::Duration,
    ) -> Result<Vec<Job>> {
        let now = self.now_ms();
        let columns: String = JOB_COLUMNS
            .split(',')
            .map(|c| match c.trim() {
                "run_at" => "due.run_at".to_owned(),
                c => format!("j.{c}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        Ok(sqlx::query_as(&format!(
            "WITH due AS (SELECT id, run_at FROM jobs WHERE status = 'pending' AND kind = $1 \
             AND run_at <= $2 ORDER BY run_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs j SET run_at = $4, claimed_by = $5 FROM due WHERE j.id = due.id \
             RETURNING {columns}"
        ))
        .bind(kind)
        .bind(now)
        .bind(limit as i64)
        .bind(now + lease.as_millis() as i64)
        .bind(self.node())
        .fetch_all(&self.write)
        .await?)
    }

    /// Up to `limit` due jobs of `kind`, leaving out those in `busy` (being sent). A read:
    /// the runner keeps what it is sending in memory rather than leasing it with a write,
    /// so the moment a job is queued it can go out without waiting for the write lock
    /// (that the event writer holds most of the time under load). Should the process die
    /// mid-send, the job is still pending and goes out again after a restart.
    pub async fn due_jobs(
        &self,
        kind: &str,
        limit: usize,
        busy: &std::collections::HashSet<JobId>,
    ) -> Result<Vec<Job>> {
        let jobs: Vec<Job> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'pending' AND kind = $1 \
             AND run_at <= $2 ORDER BY run_at LIMIT $3"
        ))
        .bind(kind)
        .bind(self.now_ms())
        .bind((limit + busy.len()) as i64)
        .fetch_all(&self.read)
        .await?;
        Ok(jobs
            .into_iter()
            .filter(|j| !busy.contains(&j.id))
            .take(limit)
            .collect())
    }

    /// The id of the newest job (0 when none): jobs queued later have larger ids, since
    /// ids grow with each insert and jobs are never deleted.
    pub async fn last_job_id(&self) -> Result<JobId> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM jobs")
            .fetch_one(&self.read)
            .await?;
        Ok(JobId(id.unwrap_or(0)))
    }

    /// Pending jobs of `kind` queued after job `after`, in order, due or not: a range of
    /// the primary key, so a runner told of a commit reads what it queued and nothing
    /// it holds already.
    pub async fn new_jobs(&self, kind: &str, after: JobId, limit: usize) -> Result<Vec<Job>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id > $1 AND kind = $2 AND status = 'pending' \
             ORDER BY id LIMIT $3"
        ))
        .bind(after.0)
        .bind(kind)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?)
    }

    /// When the next pending job of `kind` not in `busy` is due.
    pub async fn next_job_at(
        &self,
        kind: &str,
        busy: &std::collections::HashSet<JobId>,
    ) -> Result<Option<i64>> {
        let next: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, run_at FROM jobs WHERE status = 'pending' AND kind = $1 \
             ORDER BY run_at LIMIT $2",
        )
        .bind(kind)
        .bind(busy.len() as i64 + 1)
        .fetch_all(&self.read)
        .await?;
        Ok(next
            .into_iter()
            .find(|(id, _)| !busy.contains(&JobId(*id)))
            .map(|(_, at)| at))
    }
}

/// Queues the statements that record `records` (two statements per `Backend::rows_per_insert` of them) in `script`,
/// in the caller's transaction.
pub(crate) async fn push_records<'a>(
    conn: &mut AnyConnection,
    script: &mut Script<'a>,
    records: &'a [JobRecord<'a>],
) -> Result<()> {
    let backend = script.backend();
    for chunk in records.chunks(backend.rows_per_insert()) {
        let deliveries: Vec<DeliveryRow<'_>> = chunk.iter().map(DeliveryRow::of).collect();
        script.reserve(conn, chunk.len() * 8).await?.push_records(
            backend,
            "deliveries",
            &deliveries,
        );
        let outcomes: Vec<JobOutcome<'_>> = chunk.iter().map(JobOutcome::of).collect();
        let update = script.reserve(conn, chunk.len() * 6).await?;
        update.push_with(backend, "v", &outcomes);
        update.push(
            " UPDATE jobs SET status = v.status, run_at = v.run_at, done_at = v.done_at, \
             last_error = v.last_error, attempts = v.attempts, claimed_by = NULL \
             FROM v WHERE jobs.id = v.id",
        );
    }
    Ok(())
}

/// A row of `deliveries`: one attempt at a job.
#[derive(serde::Serialize)]
struct DeliveryRow<'a> {
    job_id: i64,
    account_id: i64,
    attempt: i64,
    at: i64,
    ok: bool,
    status_code: Option<i64>,
    error: Option<&'a str>,
    took_ms: i64,
}

impl<'a> DeliveryRow<'a> {
    fn of(record: &JobRecord<'a>) -> Self {
        Self {
            job_id: record.job.id.0,
            account_id: record.job.account_id.0,
            attempt: record.job.attempts,
            at: record.at,
            ok: record.ok,
            status_code: record.status_code,
            error: record.error,
            took_ms: record.took_ms,
        }
    }
}

impl crate::sql::Record for DeliveryRow<'_> {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("job_id", "bigint"),
        ("account_id", "bigint"),
        ("attempt", "bigint"),
        ("at", "bigint"),
        ("ok", "boolean"),
        ("status_code", "bigint"),
        ("error", "text"),
        ("took_ms", "bigint"),
    ];

    fn bind<'args>(&self, row: &mut crate::sql::Separated<'_, 'args>) {
        row.push_bind(self.job_id)
            .push_bind(self.account_id)
            .push_bind(self.attempt)
            .push_bind(self.at)
            .push_bind(self.ok)
            .push_bind(self.status_code)
            .push_bind(self.error.map(str::to_owned))
            .push_bind(self.took_ms);
    }
}

/// What becomes of a job after an attempt (its row's new values).
#[derive(serde::Serialize)]
struct JobOutcome<'a> {
    id: i64,
    status: &'static str,
    run_at: i64,
    done_at: Option<i64>,
    last_error: Option<&'a str>,
    attempts: i64,
}

impl<'a> JobOutcome<'a> {
    fn of(record: &JobRecord<'a>) -> Self {
        Self {
            id: record.job.id.0,
            status: record.status,
            run_at: record.run_at,
            done_at: record.done_at,
            last_error: record.error,
            attempts: record.job.attempts,
        }
    }
}

impl crate::sql::Record for JobOutcome<'_> {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("id", "bigint"),
        ("status", "text"),
        ("run_at", "bigint"),
        ("done_at", "bigint"),
        ("last_error", "text"),
        ("attempts", "bigint"),
    ];

    fn bind<'args>(&self, row: &mut crate::sql::Separated<'_, 'args>) {
        row.push_bind(self.id)
            .push_bind(self.status)
            .push_bind(self.run_at)
            .push_bind(self.done_at)
            .push_bind(self.last_error.map(str::to_owned))
            .push_bind(self.attempts);
    }
}

/// An attempt and what becomes of its job.
pub(crate) struct JobRecord<'a> {
    job: &'a Job,
    /// When the attempt was recorded.
    at: i64,
    ok: bool,
    status_code: Option<i64>,
    error: Option<&'a str>,
    took_ms: i64,
    /// The job's new status, when it runs next and when it ended.
    status: &'static str,
    run_at: i64,
    done_at: Option<i64>,
}

impl<'a> JobRecord<'a> {
    /// The records of attempts (job, attempt, milliseconds it took) made by `now`.
    pub(crate) fn all(done: impl Iterator<Item = &'a (Job, Attempt, i64)>, now: i64) -> Vec<Self> {
        done.map(|(job, attempt, took_ms)| Self::of(job, attempt, *took_ms, now))
            .collect()
    }

    fn of(job: &'a Job, attempt: &'a Attempt, took_ms: i64, now: i64) -> Self {
        let (ok, status_code, error) = match attempt {
            Attempt::Delivered { status_code } => (true, *status_code, None),
            Attempt::Failed {
                status_code, error, ..
            } => (false, *status_code, Some(error.as_str())),
            Attempt::Skipped { reason } => (true, None, Some(reason.as_str())),
        };
        let (status, run_at, done_at) = match attempt {
            Attempt::Delivered { .. } => ("done", job.run_at, Some(now)),
            Attempt::Skipped { .. } => ("skipped", job.run_at, Some(now)),
            Attempt::Failed {
                retry_at: Some(at), ..
            } => ("pending", *at, None),
            Attempt::Failed { retry_at: None, .. } => ("failed", job.run_at, Some(now)),
        };
        Self {
            job,
            at: now,
            ok,
            status_code,
            error,
            took_ms,
            status,
            run_at,
            done_at,
        }
    }
}

impl Store {
    /// What the notice runner's lane for `kind` (`webhook` or `email`) sleeps on.
    pub fn jobs_wake(&self, kind: &str) -> &std::sync::Arc<crate::wakes::Wake> {
        if kind == "email" {
            &self.wakes.emails
        } else {
            &self.wakes.webhooks
        }
    }

    /// Wakes the notice runner (e.g. after a test moved the clock).
    pub fn kick_jobs(&self) {
        self.wakes.jobs_queued();
    }
}
