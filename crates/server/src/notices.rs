//! The notice runner: claims due jobs from the store's queue, sends emails over SMTP
//! (lettre) and signed webhooks (reqwest), records every attempt, and retries failures
//! with exponential backoff. It sleeps until the next job is due or a commit queues one.
//!
//! Webhooks carry `X-Coachloop-Signature: sha256=<hex>`, an HMAC-SHA-256 with the
//! webhook's secret of `<X-Coachloop-Timestamp>.<body>`, so a receiver can check both
//! origin and freshness; `X-Coachloop-Delivery` is the fact's id, the same on every
//! retry, for receivers to drop a repeat after a crash between sending and recording.

use crate::learn;
use coachloop_core::ids::{AccountId, UserId};
use coachloop_core::time::format_ms;
use coachloop_store::Store;
use coachloop_store::notices::{
    Attempt, EMAIL_ENROLLED, EMAIL_PAST_DUE_MANAGER, EMAIL_REMINDER, Job,
};
use hmac::{Hmac, Mac};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::{info, warn};

/// Jobs claimed at once.
const BATCH: i64 = 64;
/// A claimed job is claimed again after this long if its process died meanwhile.
const LEASE_MS: i64 = 5 * 60_000;
/// Attempts before a job is given up.
pub const MAX_ATTEMPTS: i64 = 12;
const MAX_SLEEP: Duration = Duration::from_secs(60);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

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

struct Runner {
    store: Store,
    http: reqwest::Client,
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
    base_url: String,
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
        .timeout(Some(Duration::from_secs(15)));
    if let Some(user) = &config.username {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            config.password.clone().unwrap_or_default(),
        ));
    }
    Ok(builder.build())
}

/// Runs until aborted. `base_url` is where learners' links point.
pub async fn run(store: Store, smtp: Option<SmtpConfig>, base_url: String) {
    let smtp = match smtp.as_ref().map(|c| {
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("smtp_from `{}` is not an address: {e}", c.from))?;
        anyhow::Ok((transport(c)?, from))
    }) {
        None => None,
        Some(Ok(pair)) => Some(pair),
        Some(Err(e)) => {
            warn!(error = %e, "email is off: the SMTP settings are not usable");
            None
        }
    };
    let runner = Arc::new(Runner {
        http: reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .unwrap_or_default(),
        store: store.clone(),
        smtp,
        base_url,
    });
    let wake = store.jobs_wake().clone();
    loop {
        let notified = wake.notified();
        let jobs = match store.claim_jobs(LEASE_MS, BATCH).await {
            Ok(jobs) => jobs,
            Err(e) if e.is_closed() => return,
            Err(e) => {
                warn!(error = %e, "could not claim notice jobs; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let claimed = jobs.len();
        let mut running = JoinSet::new();
        for job in jobs {
            let runner = runner.clone();
            running.spawn(async move { runner.handle(job).await });
        }
        while running.join_next().await.is_some() {}
        if claimed as i64 == BATCH {
            continue;
        }
        let next = match store.next_job_at().await {
            Ok(next) => next,
            Err(e) if e.is_closed() => return,
            Err(_) => None,
        };
        wake.set_target(next);
        let sleep = next
            .map(|at| Duration::from_millis((at - store.clock().now_ms()).max(0) as u64))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = notified => {}
        }
    }
}

impl Runner {
    async fn handle(&self, job: Job) {
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
            Attempt::Delivered { .. } => info!(job = job.id, kind = %job.kind, "notice delivered"),
            Attempt::Failed { error, .. } => {
                warn!(job = job.id, kind = %job.kind, attempt = job.attempts, %error, "notice failed")
            }
            Attempt::Skipped { reason } => info!(job = job.id, %reason, "notice skipped"),
        }
        let took = started.elapsed().as_millis() as i64;
        if let Err(e) = self.store.finish_job(&job, &attempt, took).await {
            warn!(job = job.id, error = %e, "could not record a notice attempt");
        }
    }

    async fn webhook(&self, job: &Job) -> Attempt {
        let payload: Value = serde_json::from_str(&job.payload).unwrap_or_default();
        let Some(hook) = payload["webhook_id"].as_i64() else {
            return Attempt::Skipped {
                reason: "the job names no webhook".into(),
            };
        };
        let hook = match self.store.webhook(AccountId(job.account_id), hook).await {
            Ok(hook) => hook,
            Err(e) => {
                return Attempt::Skipped {
                    reason: format!("webhook {hook}: {e}"),
                };
            }
        };
        let body = payload["body"].to_string();
        let timestamp = (self.store.clock().now_ms() / 1000).to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(hook.secret.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let sent = self
            .http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header(
                "x-coachloop-event",
                payload["body"]["event"].as_str().unwrap_or(""),
            )
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
                error: format!("could not reach {}: {e}", hook.url),
                retry_at: None,
            },
        }
    }

    async fn email(&self, job: &Job) -> Attempt {
        let Some((mailer, from)) = &self.smtp else {
            return Attempt::Skipped {
                reason: "no SMTP server is configured (smtp_host)".into(),
            };
        };
        let payload: Value = serde_json::from_str(&job.payload).unwrap_or_default();
        let template = payload["template"].as_str().unwrap_or_default();
        let Some(id) = payload["enrollment_id"].as_i64() else {
            return Attempt::Skipped {
                reason: "the job names no enrolment".into(),
            };
        };
        let account = AccountId(job.account_id);
        let enrollment = match self.store.enrollment(account, id).await {
            Ok(e) => e,
            Err(e) => {
                return Attempt::Skipped {
                    reason: format!("enrolment {id}: {e}"),
                };
            }
        };
        let finished = matches!(enrollment.status.as_str(), "Passed" | "Completed");
        let person = match self.store.user(account, UserId(enrollment.user_id)).await {
            Ok(p) => p,
            Err(e) => {
                return Attempt::Skipped {
                    reason: format!("user {}: {e}", enrollment.user_id),
                };
            }
        };
        let name = enrollment
            .first_name
            .clone()
            .unwrap_or_else(|| enrollment.email.clone());
        let due = enrollment
            .due_at
            .map(|d| format!("It is due by {}.\n\n", format_ms(d)))
            .unwrap_or_default();
        let (to, subject, text) = match template {
            EMAIL_ENROLLED | EMAIL_REMINDER => {
                if finished {
                    return Attempt::Skipped {
                        reason: "the enrolment is finished already".into(),
                    };
                }
                let link = match self.link(&enrollment).await {
                    Ok(link) => link,
                    Err(e) => {
                        return Attempt::Failed {
                            status_code: None,
                            error: e,
                            retry_at: None,
                        };
                    }
                };
                let (subject, opening) = if template == EMAIL_ENROLLED {
                    (
                        format!("Training for you: {}", enrollment.content_title),
                        format!(
                            "You have been assigned \"{}\" ({}).",
                            enrollment.content_title, enrollment.campaign_name
                        ),
                    )
                } else {
                    (
                        format!("Reminder: {}", enrollment.content_title),
                        format!(
                            "A reminder: \"{}\" is still open.",
                            enrollment.content_title
                        ),
                    )
                };
                (
                    enrollment.email.clone(),
                    subject,
                    format!(
                        "Hello {name},\n\n{opening}\n\n{due}Open it here (the link is yours \
                         alone and works for 14 days):\n{link}\n"
                    ),
                )
            }
            EMAIL_PAST_DUE_MANAGER => {
                let Some(manager) = person.manager_email.clone().filter(|m| !m.is_empty()) else {
                    return Attempt::Skipped {
                        reason: "the person has no manager_email".into(),
                    };
                };
                (
                    manager,
                    format!("Overdue training: {}", enrollment.email),
                    format!(
                        "Hello,\n\n{} has not finished \"{}\" ({}), which was due by {}.\n",
                        enrollment.email,
                        enrollment.content_title,
                        enrollment.campaign_name,
                        enrollment.due_at.map(format_ms).unwrap_or_default()
                    ),
                )
            }
            other => {
                return Attempt::Skipped {
                    reason: format!("unknown email template `{other}`"),
                };
            }
        };
        let to: Mailbox = match to.parse() {
            Ok(to) => to,
            Err(e) => {
                return Attempt::Skipped {
                    reason: format!("`{to}` is not an email address: {e}"),
                };
            }
        };
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            // The same id on every retry: a mail system can drop a repeat.
            .message_id(Some(format!(
                "<{}@coachloop>",
                job.dedupe.replace(':', ".")
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(text);
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                return Attempt::Skipped {
                    reason: format!("could not build the message: {e}"),
                };
            }
        };
        match mailer.send(message).await {
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

    async fn link(
        &self,
        enrollment: &coachloop_store::campaigns::Enrollment,
    ) -> Result<String, String> {
        let key = self
            .store
            .secret(learn::KEY_NAME)
            .await
            .map_err(|e| format!("could not read the link key: {e}"))?;
        let expires = self.store.clock().now_ms() + learn::LINK_TTL_MS;
        Ok(format!(
            "{}{}",
            self.base_url,
            learn::link_path(&key, enrollment, expires)
        ))
    }
}
