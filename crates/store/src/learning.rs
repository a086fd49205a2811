//! What a learner does with an enrolment: open it, spend time, answer the quiz, complete
//! a module without a quiz, acknowledge a policy. Every step is checked by the core
//! state machine (`coachloop_core::enrolment`) and scoped to the learner's own
//! enrolments: another person's id is simply not found.

use crate::campaigns::{ENROLLMENT_COLUMNS, ENROLLMENT_FROM, Enrollment, notice_settings};
use crate::content::ContentRow;
use crate::notices::{self, EnrolmentNotice};
use crate::{Result, Store, StoreError};
use coachloop_core::content::Grade;
use coachloop_core::enrolment::{Enrolment, EnrolmentStatus, External};
use coachloop_core::ids::{AccountId, EnrollmentId, UserId};
use coachloop_core::notice::Notice;
use coachloop_core::time::format_ms;
use rand::RngCore;
use serde_json::json;
use sqlx::AnyConnection;

/// One step of a learner.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The lesson or policy was opened.
    Open,
    /// Quiz answers (one per question, `None` unanswered) after `seconds` on the page.
    Quiz {
        answers: Vec<Option<usize>>,
        seconds: i64,
    },
    /// A module without a quiz, read for `seconds`.
    Complete { seconds: i64 },
    /// A policy acknowledged after `seconds` of reading.
    Acknowledge { seconds: i64 },
    /// A result reported by another LMS (xAPI), dated `at`.
    External { at: i64, outcome: External },
}

/// What a step did.
#[derive(Debug, Clone)]
pub struct Stepped {
    pub enrollment: Enrollment,
    pub content: ContentRow,
    /// The quiz grade, for a quiz step.
    pub grade: Option<Grade>,
}

/// A batch of steps that was not applied, none of it: the step at `index` was refused,
/// or (`None`) the transaction itself failed.
#[derive(Debug)]
pub struct BatchError {
    pub index: Option<usize>,
    pub error: StoreError,
}

impl From<StoreError> for BatchError {
    fn from(error: StoreError) -> Self {
        Self { index: None, error }
    }
}

/// The enrolment as the core state machine knows it; a stored status or count that
/// cannot be read is an error naming the enrolment, never a fresh start.
pub(crate) fn state(e: &Enrollment) -> Result<Enrolment> {
    let corrupt = |what: String| StoreError::Corrupt(format!("enrollment {}: {what}", e.id));
    Ok(Enrolment {
        status: EnrolmentStatus::parse(&e.status)
            .ok_or_else(|| corrupt(format!("status `{}` is not known", e.status)))?,
        enrolled_at: e.enrolled_at,
        due_at: e.due_at,
        started_at: e.started_at,
        completed_at: e.completed_at,
        past_due_at: e.past_due_at,
        time_spent_s: e.time_spent,
        score: match e.score {
            None => None,
            Some(score) => Some(
                u8::try_from(score)
                    .map_err(|_| corrupt(format!("score {score} is out of range")))?,
            ),
        },
        attempts: u32::try_from(e.attempts)
            .map_err(|_| corrupt(format!("attempts {} is out of range", e.attempts)))?,
        policy_acknowledged: e.policy_acknowledged,
    })
}

/// What [`apply`] did to one enrolment.
struct Applied {
    content: ContentRow,
    grade: Option<Grade>,
    finished: bool,
}

/// One of `user`'s own enrolments; another person's (or account's) is not found.
async fn own_enrollment<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    account: AccountId,
    user: UserId,
    id: EnrollmentId,
) -> Result<Enrollment> {
    sqlx::query_as(&format!(
        "SELECT {ENROLLMENT_COLUMNS} FROM {ENROLLMENT_FROM} \
         WHERE e.account_id = $1 AND e.user_id = $2 AND e.id = $3"
    ))
    .bind(account.0)
    .bind(user.0)
    .bind(id.0)
    .fetch_optional(executor)
    .await?
    .ok_or(StoreError::NotFound("enrollment"))
}

/// Applies a learner's step to one of their own enrolments in the caller's write
/// transaction, queueing the notices it causes in `outbox`.
async fn apply(
    conn: &mut AnyConnection,
    outbox: &mut notices::Notices,
    account: AccountId,
    user: UserId,
    id: EnrollmentId,
    step: &Step,
    now: i64,
) -> Result<Applied> {
    // Read inside the write transaction: another tab (or an earlier step of the same
    // batch) may have moved it on.
    let current = own_enrollment(&mut *conn, account, user, id).await?;
    let content = crate::content::content_in(conn, account, current.content_id).await?;
    let mut enrolment = state(&current)?;
    let refuse = |e: coachloop_core::enrolment::EnrolmentError| {
        StoreError::conflict("status", e.to_string())
    };
    let mut grade = None;
    let change = match step {
        Step::Open => enrolment.open(now).map_err(refuse)?,
        Step::Quiz { answers, seconds } => {
            let core = content.content();
            if core.quiz.is_empty() {
                return Err(StoreError::conflict(
                    "quiz",
                    "this content has no quiz; complete it instead",
                ));
            }
            enrolment.open(now).map_err(refuse)?;
            enrolment.spend(*seconds).map_err(refuse)?;
            let g = core.grade(answers);
            let change = enrolment.submit_quiz(now, &g).map_err(refuse)?;
            grade = Some(g);
            change
        }
        Step::Complete { seconds } => {
            if !content.quiz.is_empty() || content.is_policy() {
                return Err(StoreError::conflict(
                    "status",
                    "this content is finished by its quiz or acknowledgement",
                ));
            }
            enrolment.open(now).map_err(refuse)?;
            enrolment.spend(*seconds).map_err(refuse)?;
            enrolment.complete(now).map_err(refuse)?
        }
        Step::Acknowledge { seconds } => {
            if !content.is_policy() {
                return Err(StoreError::conflict(
                    "status",
                    "only a policy is acknowledged; a module is finished by its quiz",
                ));
            }
            enrolment.open(now).map_err(refuse)?;
            enrolment.spend(*seconds).map_err(refuse)?;
            enrolment
                .acknowledge(now, content.minutes * 60)
                .map_err(refuse)?
        }
        Step::External { at, outcome } => enrolment
            .record_external((*at).min(now), *outcome)
            .map_err(refuse)?,
    };
    write_state(conn, current.id, &enrolment).await?;
    let finished = change.finished();
    if finished {
        on_finished(conn, outbox, account, &current, &enrolment, now).await?;
    }
    Ok(Applied {
        content,
        grade,
        finished,
    })
}

/// Writes an enrolment's new state.
pub(crate) async fn write_state(
    conn: &mut AnyConnection,
    id: EnrollmentId,
    enrolment: &Enrolment,
) -> Result<()> {
    sqlx::query(
        "UPDATE enrollments SET status = $1, started_at = $2, completed_at = $3, \
         past_due_at = $4, time_spent = $5, score = $6, attempts = $7, \
         policy_acknowledged = $8 WHERE id = $9",
    )
    .bind(enrolment.status.as_str())
    .bind(enrolment.started_at)
    .bind(enrolment.completed_at)
    .bind(enrolment.past_due_at)
    .bind(enrolment.time_spent_s)
    .bind(enrolment.score.map(i64::from))
    .bind(i64::from(enrolment.attempts))
    .bind(enrolment.policy_acknowledged)
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes many enrolments' new states in one statement per 500 (an `UPDATE … FROM
/// (VALUES …)`, which both engines read: their VALUES columns are `column1`, …).
pub(crate) async fn write_states(
    conn: &mut AnyConnection,
    states: &[(EnrollmentId, &Enrolment)],
) -> Result<()> {
    for chunk in states.chunks(500) {
        let backend = crate::db::Backend::of_connection(conn);
        let mut update = crate::sql::QueryBuilder::with(
            backend,
            "UPDATE enrollments SET status = v.column2, started_at = v.column3, \
             completed_at = v.column4, past_due_at = v.column5, time_spent = v.column6, \
             score = v.column7, attempts = v.column8, policy_acknowledged = v.column9 \
             FROM (",
        );
        update.push_values(chunk, |mut row, (id, e)| {
            row.push_bind(id.0)
                .push_bind(e.status.as_str())
                .push_bind(e.started_at)
                .push_bind(e.completed_at)
                .push_bind(e.past_due_at)
                .push_bind(e.time_spent_s)
                .push_bind(e.score.map(i64::from))
                .push_bind(i64::from(e.attempts))
                .push_bind(e.policy_acknowledged);
        });
        update.push(") AS v WHERE enrollments.id = v.column1");
        update.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// What a finished enrolment causes: the `enrollment.completed` webhook event, and the
/// completion notice when its campaign sends one.
pub(crate) async fn on_finished(
    conn: &mut AnyConnection,
    outbox: &mut notices::Notices,
    account: AccountId,
    current: &Enrollment,
    enrolment: &Enrolment,
    now: i64,
) -> Result<()> {
    let fact = (
        format!("enrollment:{}", current.id),
        json!({
            "enrollment_id": current.id,
            "campaign_id": current.campaign_id,
            "content_id": current.content_id,
            "user_id": current.user_id,
            "email": current.email,
            "status": enrolment.status.as_str(),
            "completion_date": enrolment.completed_at.map(format_ms),
            "score": enrolment.score,
            "time_spent": enrolment.time_spent_s,
        }),
    );
    outbox
        .event(conn, account.0, notices::ENROLLMENT_COMPLETED, &[fact], now)
        .await?;
    let campaign = current.campaign_id.0;
    let settings = notice_settings(conn, std::iter::once(campaign)).await?;
    if settings.get(&campaign).is_some_and(|s| s.completed) {
        let notice = EnrolmentNotice {
            campaign,
            notice: Notice::Completed,
            enrollment: current.id.0,
            offset: None,
            run_at: now,
        };
        outbox.notices(conn, account.0, &[notice]).await?;
    }
    Ok(())
}

impl Store {
    /// A secret of this installation (created on first use): 32 random bytes. Cached:
    /// every learner page and email link needs it, and a write each time would queue
    /// behind the event writer.
    pub async fn secret(&self, name: &str) -> Result<Vec<u8>> {
        if let Some(known) = self.secrets.lock().expect("not poisoned").get(name) {
            return Ok(known.clone());
        }
        let mut fresh = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&fresh)
        .bind(self.now_ms())
        .execute(&self.write)
        .await?;
        let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.write)
            .await?;
        self.secrets
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), value.clone());
        Ok(value)
    }

    /// The enrolment an outside completion of `content` (a slug) by the person with this
    /// `email` applies to: their open one, else their latest.
    pub async fn enrollment_for(
        &self,
        account: AccountId,
        email: &str,
        content: &str,
    ) -> Result<(UserId, EnrollmentId)> {
        let user: i64 =
            sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND email_norm = $2")
                .bind(account.0)
                .bind(email.trim().to_lowercase())
                .fetch_optional(&self.read)
                .await?
                .ok_or(StoreError::NotFound("user"))?;
        let content: i64 =
            sqlx::query_scalar("SELECT id FROM content WHERE account_id = $1 AND slug = $2")
                .bind(account.0)
                .bind(content)
                .fetch_optional(&self.read)
                .await?
                .ok_or(StoreError::NotFound("content"))?;
        // By the person's index: SQLite, given the choice, took the content's (every
        // enrolment in that content, 100,000 of them at a benchmark's size: 80 ms).
        let enrollment: i64 = sqlx::query_scalar(&format!(
            "SELECT id FROM {} WHERE user_id = $1 AND content_id = $2 \
             ORDER BY completed_at IS NOT NULL, enrolled_at DESC, id DESC LIMIT 1",
            self.backend
                .table_using("enrollments", Some("enrollments_user_id"))
        ))
        .bind(user)
        .bind(content)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound("enrollment"))?;
        Ok((UserId(user), EnrollmentId(enrollment)))
    }

    /// One of the learner's own enrolments, with its content.
    pub async fn learner_enrollment(
        &self,
        account: AccountId,
        user: UserId,
        id: EnrollmentId,
    ) -> Result<(Enrollment, ContentRow)> {
        let enrollment = own_enrollment(&self.read, account, user, id).await?;
        let content = self.content(account, enrollment.content_id).await?;
        Ok((enrollment, content))
    }

    /// The learner's enrolments, open ones first, then newest first.
    pub async fn learner_enrollments(
        &self,
        account: AccountId,
        user: UserId,
    ) -> Result<Vec<Enrollment>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM {ENROLLMENT_FROM} \
             WHERE e.account_id = $1 AND e.user_id = $2 \
             ORDER BY e.completed_at IS NOT NULL, e.id DESC LIMIT 500"
        ))
        .bind(account.0)
        .bind(user.0)
        .fetch_all(&self.read)
        .await?)
    }

    /// Applies a learner's step to one of their enrolments.
    pub async fn learn(
        &self,
        account: AccountId,
        user: UserId,
        id: EnrollmentId,
        step: &Step,
    ) -> Result<Stepped> {
        let mut stepped = self
            .learn_all(account, &[(user, id, step.clone())])
            .await
            .map_err(|e| e.error)?;
        Ok(stepped.remove(0))
    }

    /// Applies steps (whose enrolment, which, what), in order, in one transaction: all
    /// of them or, when one is refused or anything fails, none.
    pub async fn learn_all(
        &self,
        account: AccountId,
        steps: &[(UserId, EnrollmentId, Step)],
    ) -> Result<Vec<Stepped>, BatchError> {
        // In the order of changes of facts, the fair queue the event writer waits in too:
        // met at SQLite's lock instead, its busy handler sleeps and retries (and can lose,
        // for seconds, to a writer that commits back to back).
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let mut outbox = notices::Notices::default();
        let mut applied = Vec::with_capacity(steps.len());
        for (index, (user, id, step)) in steps.iter().enumerate() {
            let done = apply(&mut change.tx, &mut outbox, account, *user, *id, step, now)
                .await
                .map_err(|error| BatchError {
                    index: Some(index),
                    error,
                })?;
            applied.push(done);
        }
        // Dropped without a commit on any error above: SQLite rolls the whole batch back.
        outbox.send(&mut change.tx, now).await?;
        if applied.iter().any(|a| a.finished) {
            change.wake_jobs();
        }
        // A completion (or a first start) can change the person's compliance.
        change.recheck(account.0, steps.iter().map(|(user, _, _)| user.0));
        change.commit(&self.wakes).await?;
        let mut stepped = Vec::with_capacity(applied.len());
        for ((_, id, _), done) in steps.iter().zip(applied) {
            stepped.push(Stepped {
                enrollment: self.enrollment(account, *id).await?,
                content: done.content,
                grade: done.grade,
            });
        }
        Ok(stepped)
    }
}
