//! The notice runner: claims due jobs from the store's queue, sends emails over SMTP
//! (lettre) and signed webhooks (reqwest), records every attempt, and retries failures
//! with exponential backoff. It sleeps until the next job is due or a commit queues one.
//!
//! Webhooks carry `X-Coachloop-Signature: sha256=<hex>`, an HMAC-SHA-256 with the
//! webhook's secret of `<X-Coachloop-Timestamp>.<body>`, so a receiver can check both
//! origin and freshness; `X-Coachloop-Delivery` is the fact's id, the same on every
//! retry, for receivers to drop a repeat after a crash between sending and recording.

pub mod chat;
pub mod compose;

use crate::outbound;
use coachloop_core::ids::{EnrollmentId, JobId, WebhookId};
use coachloop_core::notice::Notice;
use coachloop_store::ingest::Ingestor;
use coachloop_store::notices::{Attempt, FORMAT_JSON, Job};
use coachloop_store::outage::Retry;
use coachloop_store::wakes::Wake;
use coachloop_store::{Store, StoreError};
use compose::{Audience, Composed, NotComposed};
use hmac::{Hmac, Mac};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tracing::{info, warn};

/// Webhooks being sent or waiting to be recorded, at most.
const MAX_IN_FLIGHT: usize = 8192;
/// Emails being sent at once: about the SMTP connection pool's size.
const EMAIL_SENDERS: usize = 32;
/// Emails taken from the queue ahead of the senders, at most. Each wake-up reads the
/// due jobs past those in flight, so a backlog of emails held in memory would be read
/// again on every commit; a few rounds of the senders' work keeps the pipe full.
const EMAILS_AHEAD: usize = EMAIL_SENDERS * 16;
/// Attempts are recorded at most this often, so the recorder's transactions (which wait
/// for the write lock behind the event writer) stay few and large.
const RECORD_EVERY: Duration = Duration::from_millis(200);
/// Attempts before a job is given up.
pub const MAX_ATTEMPTS: i64 = 12;
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Waits after a failed read or record of jobs (the database away): from the first,
/// doubling up to the longest.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node holds a notice job it sends, by default (PostgreSQL; see
/// `Store::claim_jobs`): well past the longest send (a webhook's timeout, SMTP's), so a
/// live node's job is never sent again beside it; a dead node's goes out this long after.
pub const NOTICE_LEASE: Duration = Duration::from_secs(60);

/// How email leaves: the SMTP server and the sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `none` (plain, for a local relay), `starttls` or `tls`.
    pub tls: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The From address, e.g. `Security Training <training@example.com>`.
    pub from: String,
}

/// The wait before retry `attempt` (1-based): 1 s, 2 s, 4 s … at most an hour.
pub fn backoff_ms(attempt: i64) -> i64 {
    (1000i64 << (attempt - 1).clamp(0, 20)).min(3_600_000)
}

/// What a notice job carries (written by the store's `Notices::notices`): an email's
/// payload, and a chat webhook's `notice`.
#[derive(Deserialize)]
struct NoticeJob {
    /// The notice's name.
    template: String,
    enrollment_id: EnrollmentId,
    /// A reminder's offset before the due time.
    offset: Option<String>,
}

/// How email leaves: the SMTP transport (a pool of connections) and the From address.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("smtp_from `{}` is not an address: {e}", config.from))?;
        Ok(Self {
            transport: transport(config)?,
            from,
        })
    }

    /// Sends a composed notice as a multipart email (plain text and HTML) with the
    /// `Message-ID` given.
    pub async fn send(&self, composed: &Composed, message_id: String) -> Attempt {
        let (name, address) = &composed.to;
        let to = match address.parse() {
            Ok(address) => Mailbox::new(name.clone(), address),
            Err(e) => {
                return Attempt::Skipped {
                    reason: format!("`{address}` is not an email address: {e}"),
                };
            }
        };
        let rendered = &composed.rendered;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject.clone())
            .message_id(Some(message_id))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                rendered.html.clone(),
            ));
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                return Attempt::Skipped {
                    reason: format!("could not build the message: {e}"),
                };
            }
        };
        match self.transport.send(message).await {
            Ok(response) => Attempt::Delivered {
                status_code: Some(i64::from(u16::from(response.code()))),
            },
            Err(e) => Attempt::Failed {
                status_code: e.status().map(|c| i64::from(u16::from(c))),
                error: format!("SMTP: {e}"),
                retry_at: None,
            },
        }
    }
}

/// A failed attempt, tried again with backoff (see [`Runner::handle`]).
fn failed(error: String) -> Attempt {
    Attempt::Failed {
        status_code: None,
        error,
        retry_at: None,
    }
}

/// What becomes of a job when a row it needs (`what`) could not be read: a row that is
/// gone ends it; any other failure (the database busy or failing) is a failed attempt,
/// tried again with backoff, never the end of the notice.
fn not_read(what: String, e: StoreError) -> Attempt {
    match e {
        StoreError::NotFound(_) => Attempt::Skipped {
            reason: format!("{what}: {e}"),
        },
        e => failed(format!("{what}: {e}")),
    }
}

struct Runner {
    store: Store,
    /// Attempts are recorded through the event writer, in its next commit.
    ingest: Ingestor,
    /// Sends only where `allow_private_destinations` allows (see `outbound`).
    http: outbound::Client,
    mailer: Option<Mailer>,
    base_url: String,
    /// How long a claimed job is this node's (see [`NOTICE_LEASE`]).
    lease: Duration,
}

fn transport(config: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let builder = match config.tls.as_str() {
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)?,
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)?,
        other => anyhow::bail!("smtp_tls must be `none`, `starttls` or `tls`, not `{other}`"),
    };
    let mut builder = builder
        .port(config.port)
        .timeout(Some(Duration::from_secs(15)))
        .pool_config(PoolConfig::new().max_size(EMAIL_SENDERS as u32));
    if let Some(user) = &config.username {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            config.password.clone().unwrap_or_default(),
        ));
    }
    Ok(builder.build())
}

/// Runs until aborted. `base_url` is where learners' links point; webhooks go out
/// through `http`; a job claimed is this node's for `lease`.
pub async fn run(
    store: Store,
    ingest: Ingestor,
    mailer: Option<Mailer>,
    base_url: String,
    http: outbound::Client,
    lease: Duration,
) {
    let runner = Arc::new(Runner {
        http,
        store: store.clone(),
        ingest,
        mailer,
        base_url,
        lease,
    });
    // In this task, so aborting it stops both.
    tokio::join!(lane(runner.clone(), "webhook"), lane(runner, "email"));
}

/// Sends the jobs of one kind, so slow email never holds up a webhook. On SQLite what is
/// being sent is kept in memory (`busy`) rather than leased with a write, and attempts are
/// recorded in batches by a second loop: the way from a queued job to its delivery takes
/// no write lock, which the event writer holds most of the time under load. On
/// PostgreSQL, where several nodes run a runner, each job is claimed in the database with
/// a lease before it is sent (`Store::claim_jobs`, which takes no lock another writer
/// waits for), so one node sends it.
///
/// A commit's wake-up reads only the jobs queued since the last read (`cursor`, a range
/// of the primary key): under load that is a handful of rows, where reading every due
/// job would read again the hundreds in flight on each commit. Every due job is read
/// (`scan`) at start, when the next known due instant comes (a retry, a reminder) and
/// after a read that filled the room.
async fn lane(runner: Arc<Runner>, kind: &'static str) {
    let store = runner.store.clone();
    let claims = store.claims_jobs();
    let wake = store.jobs_wake(kind).clone();
    let busy: Arc<Mutex<HashSet<JobId>>> = Arc::default();
    let rescan = Arc::new(AtomicBool::new(true));
    let (finished, results) = mpsc::unbounded_channel();
    // Webhooks all go at once; emails queue for a few SMTP connections.
    let (senders, in_flight) = if kind == "email" {
        (EMAIL_SENDERS, EMAILS_AHEAD)
    } else {
        (Semaphore::MAX_PERMITS, MAX_IN_FLIGHT)
    };
    let senders = Arc::new(Semaphore::new(senders));
    let send = async {
        let mut retry = Retry::new(
            if kind == "email" {
                "the email lane"
            } else {
                "the webhook lane"
            },
            FIRST_RETRY,
            MAX_RETRY,
        );
        let mut cursor = JobId(0);
        // The earliest run_at of a pending job not in hand, as far as the lane knows.
        let mut next_at: Option<i64> = None;
        loop {
            let notified = wake.notified();
            let now = store.clock().now_ms();
            let scan =
                claims || rescan.swap(false, Ordering::SeqCst) || next_at.is_some_and(|t| t <= now);
            let room = in_flight.saturating_sub(busy.lock().expect("not poisoned").len());
            if room == 0 {
                // Full: the recorder wakes the lane when it frees room.
                if scan {
                    rescan.store(true, Ordering::SeqCst);
                }
                notified.await;
                continue;
            }
            let read = async {
                if claims {
                    let jobs = store.claim_jobs(kind, room, runner.lease).await?;
                    Ok::<_, coachloop_store::StoreError>((jobs, None))
                } else if scan {
                    // Jobs queued after this are the next reads' (read before the scan,
                    // so none falls between the two).
                    let last = store.last_job_id().await?;
                    let snapshot = busy.lock().expect("not poisoned").clone();
                    let jobs = store.due_jobs(kind, room, &snapshot).await?;
                    Ok((jobs, Some(last)))
                } else {
                    Ok((store.new_jobs(kind, cursor, room).await?, None))
                }
            };
            let (jobs, last) = match read.await {
                Ok(read) => read,
                Err(e) if e.is_closed() => return,
                Err(e) => {
                    rescan.store(true, Ordering::SeqCst);
                    tokio::time::sleep(retry.failed("reading due jobs", &e)).await;
                    continue;
                }
            };
            retry.succeeded();
            let filled = jobs.len() == room;
            if scan {
                cursor = cursor.max(last.unwrap_or(JobId(0)));
            } else if let Some(job) = jobs.last() {
                cursor = job.id;
            }
            for mut job in jobs {
                if job.run_at > now {
                    // Queued for later (only a read of new jobs returns these).
                    next_at = Some(next_at.map_or(job.run_at, |t| t.min(job.run_at)));
                    continue;
                }
                if !busy.lock().expect("not poisoned").insert(job.id) {
                    continue;
                }
                job.attempts += 1;
                let (runner, finished) = (runner.clone(), finished.clone());
                let senders = senders.clone();
                tokio::spawn(async move {
                    let _permit = senders.acquire().await;
                    let _ = finished.send(runner.handle(job).await);
                });
            }
            if filled {
                // More may be due than there was room for.
                rescan.store(scan, Ordering::SeqCst);
                continue;
            }
            if scan {
                let snapshot = busy.lock().expect("not poisoned").clone();
                next_at = match store.next_job_at(kind, &snapshot).await {
                    Ok(next) => next,
                    Err(e) if e.is_closed() => return,
                    Err(e) => {
                        warn!(error = %e, "could not read when the next {kind} job is due");
                        rescan.store(true, Ordering::SeqCst);
                        None
                    }
                };
            }
            wake.set_target(next_at);
            let sleep = next_at
                .map(|at| Duration::from_millis((at - store.clock().now_ms()).max(0) as u64))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                () = tokio::time::sleep(sleep) => rescan.store(true, Ordering::SeqCst),
                () = notified => {}
            }
        }
    };
    tokio::join!(
        send,
        record(&runner.ingest, results, &busy, &rescan, &wake, kind)
    );
}

/// Records finished attempts, as many as have come in, in the event writer's next
/// commit each time, then frees their jobs (a retry may be due) and wakes the lane.
async fn record(
    ingest: &Ingestor,
    mut results: mpsc::UnboundedReceiver<(Job, Attempt, i64)>,
    busy: &Mutex<HashSet<JobId>>,
    rescan: &AtomicBool,
    wake: &Wake,
    kind: &str,
) {
    let mut retry = Retry::new(
        if kind == "email" {
            "the email recorder"
        } else {
            "the webhook recorder"
        },
        FIRST_RETRY,
        MAX_RETRY,
    );
    while let Some(first) = results.recv().await {
        tokio::time::sleep(RECORD_EVERY).await;
        let mut done = vec![first];
        while let Ok(more) = results.try_recv() {
            done.push(more);
        }
        let ids: Vec<JobId> = done.iter().map(|(job, _, _)| job.id).collect();
        let retried = done.iter().any(|(_, attempt, _)| {
            matches!(
                attempt,
                Attempt::Failed {
                    retry_at: Some(_),
                    ..
                }
            )
        });
        let recorded = ingest.record_attempts(done).await;
        match &recorded {
            Ok(()) => retry.succeeded(),
            Err(e) if e.is_closed() => return,
            // The jobs stay pending: they go out again (at least once, never lost), after
            // a wait, so an outage does not send them over and over.
            Err(e) => tokio::time::sleep(retry.failed("recording attempts", e)).await,
        }
        let mut busy = busy.lock().expect("not poisoned");
        for id in ids {
            busy.remove(&id);
        }
        drop(busy);
        // A retry is due later, or a job stayed pending: the lane reads every due job
        // again. Otherwise it reads on from where it was (there may be room now).
        if retried || recorded.is_err() {
            rescan.store(true, Ordering::SeqCst);
        }
        wake.kick();
    }
}

impl Runner {
    /// Tries a job once; returns it with the attempt and how long that took.
    async fn handle(&self, job: Job) -> (Job, Attempt, i64) {
        let started = Instant::now();
        let attempt = match job.kind.as_str() {
            "webhook" => self.webhook(&job).await,
            "email" => self.email(&job).await,
            other => Attempt::Skipped {
                reason: format!("unknown job kind `{other}`"),
            },
        };
        let attempt = match attempt {
            Attempt::Failed {
                status_code,
                error,
                retry_at: _,
            } => Attempt::Failed {
                status_code,
                error,
                retry_at: (job.attempts < MAX_ATTEMPTS)
                    .then(|| self.store.clock().now_ms() + backoff_ms(job.attempts)),
            },
            other => other,
        };
        match &attempt {
            Attempt::Delivered { .. } => {
                info!(job = job.id.0, kind = %job.kind, "notice delivered")
            }
            Attempt::Failed { error, .. } => {
                warn!(job = job.id.0, kind = %job.kind, attempt = job.attempts, %error, "notice failed")
            }
            Attempt::Skipped { reason } => info!(job = job.id.0, %reason, "notice skipped"),
        }
        let took = started.elapsed().as_millis() as i64;
        (job, attempt, took)
    }

    async fn webhook(&self, job: &Job) -> Attempt {
        let payload: Value = match job.read_payload() {
            Ok(payload) => payload,
            Err(e) => return failed(e.to_string()),
        };
        let Some(hook) = payload["webhook_id"].as_i64() else {
            return failed(format!("job {}: its payload names no webhook", job.id));
        };
        let hook = match self.store.webhook(job.account_id, WebhookId(hook)).await {
            Ok(hook) => hook,
            Err(e) => return not_read(format!("webhook {hook}"), e),
        };
        // A fact's JSON, or a notice's text for a chat.
        let (body, event) = match (payload.get("body"), payload.get("notice")) {
            (Some(body), _) if hook.format == FORMAT_JSON => (
                body.to_string(),
                body["event"].as_str().unwrap_or("").to_owned(),
            ),
            (None, Some(notice)) if hook.format != FORMAT_JSON => {
                let notice: NoticeJob = match serde_json::from_value(notice.clone()) {
                    Ok(notice) => notice,
                    Err(e) => {
                        return failed(format!("job {}: its notice cannot be read: {e}", job.id));
                    }
                };
                match self.compose(job, &notice, Audience::Chat).await {
                    Ok(composed) => (
                        chat::body(&hook.format, &composed.rendered).to_string(),
                        notice.template,
                    ),
                    Err(attempt) => return attempt,
                }
            }
            _ => {
                return failed(format!(
                    "job {}: its payload does not fit webhook {} ({})",
                    job.id, hook.id, hook.format
                ));
            }
        };
        let timestamp = (self.store.clock().now_ms() / 1000).to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(hook.secret.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let request = match self.http.post(&hook.url) {
            Ok(request) => request,
            // Its host is an address the operator does not allow (any more).
            Err(e) => {
                return Attempt::Failed {
                    status_code: None,
                    error: format!("not sent to {}: {e}", hook.url),
                    retry_at: None,
                };
            }
        };
        let sent = request
            .header("content-type", "application/json")
            .header("x-coachloop-event", event)
            .header("x-coachloop-delivery", job.dedupe.as_str())
            .header("x-coachloop-timestamp", timestamp)
            .header("x-coachloop-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Attempt::Delivered {
                status_code: Some(i64::from(response.status().as_u16())),
            },
            Ok(response) => Attempt::Failed {
                status_code: Some(i64::from(response.status().as_u16())),
                error: format!("{} answered {}", hook.url, response.status()),
                retry_at: None,
            },
            Err(e) => Attempt::Failed {
                status_code: None,
                error: format!("could not reach {}: {}", hook.url, outbound::describe(&e)),
                retry_at: None,
            },
        }
    }

    async fn email(&self, job: &Job) -> Attempt {
        let Some(mailer) = &self.mailer else {
            return Attempt::Skipped {
                reason: "no SMTP server is configured (smtp_host)".into(),
            };
        };
        let payload: NoticeJob = match job.read_payload() {
            Ok(payload) => payload,
            Err(e) => return failed(e.to_string()),
        };
        let composed = match self.compose(job, &payload, Audience::Email).await {
            Ok(composed) => composed,
            Err(attempt) => return attempt,
        };
        // The same id on every retry: a mail system can drop a repeat.
        let id = format!("<{}@coachloop>", job.dedupe.replace(':', "."));
        mailer.send(&composed, id).await
    }

    /// Composes the notice a job names, or says what becomes of the job.
    async fn compose(
        &self,
        job: &Job,
        payload: &NoticeJob,
        audience: Audience,
    ) -> Result<Composed, Attempt> {
        let Some(notice) = Notice::parse(&payload.template) else {
            return Err(Attempt::Skipped {
                reason: format!("unknown notice `{}`", payload.template),
            });
        };
        let (account, id) = (job.account_id, payload.enrollment_id);
        // One read: the enrolment, its person, the campaign's settings and text.
        let context = (self.store.notice_context(account, id, notice).await)
            .map_err(|e| not_read(format!("enrolment {id}"), e))?;
        compose::compose(
            &self.store,
            &self.base_url,
            compose::Context {
                enrollment: &context.enrollment,
                person: &context.person,
                text: context.text,
            },
            notice,
            payload.offset.as_deref(),
            audience,
            false,
        )
        .await
        .map_err(|e| match e {
            NotComposed::Skip(reason) => Attempt::Skipped { reason },
            NotComposed::Store(e) => not_read(format!("the notice of enrolment {id}"), e),
        })
    }
}
