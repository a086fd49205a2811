//! xAPI statements: kept append-only (voiding only marks one voided), indexed for the
//! statement resource's filters, and applied to enrolments as they arrive — in the
//! transaction that stores them, so a statement acknowledged is a statement applied.
//! A statement whose person or activity matches nothing is kept as `unmapped`; mapping
//! its activity to content later applies it.

use crate::campaigns::{ENROLLMENT_COLUMNS, ENROLLMENT_FROM, Enrollment};
use crate::db::{Backend, Flag};
use crate::learning::{on_finished, state, write_state, write_states};
use crate::notices::Notices;
use crate::sql::QueryBuilder;
use crate::{Page, Result, Store, StoreError};
use coachloop_core::enrolment::External;
use coachloop_core::identity::normalize_identity;
use coachloop_core::ids::{AccountId, ContentId, EnrollmentId};
use coachloop_core::xapi::{self, Checked, Move};
use rustc_hash::{FxHashMap, FxHashSet};
use sqlx::{AnyConnection, FromRow};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use uuid::Uuid;

/// A checked statement to store, with its id (the sender's or a new one) and the
/// digest of what was sent.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub checked: Checked,
    pub id: Uuid,
    pub digest: String,
    /// The content of its attachments that came in the request (multipart/mixed).
    pub attachments: Vec<AttachmentContent>,
}

/// An attachment's content, by its SHA-2 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentContent {
    pub sha2: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

/// The statement resource's filters (xAPI 1.0.3, 2.1.3), one page.
#[derive(Debug, Clone, Default)]
pub struct StatementQuery {
    /// An Agent's or Identified Group's key (see [`xapi::ifi_key`]).
    pub agent: Option<String>,
    pub verb: Option<String>,
    pub activity: Option<String>,
    pub registration: Option<String>,
    pub related_activities: bool,
    pub related_agents: bool,
    /// Stored strictly after, at or before (epoch milliseconds).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: u32,
    pub ascending: bool,
    /// Continue after this statement (a `more` link).
    pub after: Option<i64>,
}

impl StatementQuery {
    /// Whether any filter on what a statement is about is set (not only when stored).
    fn filters(&self) -> bool {
        self.agent.is_some()
            || self.verb.is_some()
            || self.activity.is_some()
            || self.registration.is_some()
    }
}

/// `AND`s the filters on what a statement is about, on the statement `alias`, after a
/// first condition (`TRUE` starts them when there is none).
fn push_filters(
    select: &mut QueryBuilder<'_>,
    alias: &str,
    account: AccountId,
    query: &StatementQuery,
) {
    if alias == "s" {
        select.push("TRUE");
    }
    if let Some(verb) = &query.verb {
        select
            .push(format!(" AND {alias}.verb = "))
            .push_bind(verb.clone());
    }
    if let Some(registration) = &query.registration {
        select
            .push(format!(" AND {alias}.registration = "))
            .push_bind(registration.clone());
    }
    if let Some(agent) = &query.agent {
        select
            .push(format!(" AND ({alias}.actor_key = "))
            .push_bind(agent.clone())
            .push(format!(" OR {alias}.object_agent = "))
            .push_bind(agent.clone());
        if query.related_agents {
            push_related(select, alias, account, "agent", agent);
        }
        select.push(")");
    }
    if let Some(activity) = &query.activity {
        select
            .push(format!(" AND ({alias}.activity = "))
            .push_bind(activity.clone());
        if query.related_activities {
            push_related(select, alias, account, "activity", activity);
        }
        select.push(")");
    }
}

/// `OR` the statement has `key` among its related agents or activities.
fn push_related(
    select: &mut QueryBuilder<'_>,
    alias: &str,
    account: AccountId,
    kind: &'static str,
    key: &str,
) {
    select
        .push(format!(
            " OR {alias}.id IN (SELECT r.seq FROM xapi_statement_refs r WHERE r.account_id = "
        ))
        .push_bind(account.0)
        .push(" AND r.kind = ")
        .push_bind(kind)
        .push(" AND r.key = ")
        .push_bind(key.to_owned())
        .push(")");
}

/// What a statement did in coachloop.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    Applied,
    Kept(String),
    Unmapped(String),
    Refused(String),
}

impl Standing {
    fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Self::Applied => ("applied", None),
            Self::Kept(why) => ("kept", Some(why)),
            Self::Unmapped(why) => ("unmapped", Some(why)),
            Self::Refused(why) => ("refused", Some(why)),
        }
    }
}

/// A statement waiting for its person or activity to be known.
#[derive(Debug, Clone, FromRow)]
pub struct Unmapped {
    pub statement_id: String,
    pub stored_at: i64,
    pub verb: String,
    pub actor: Option<String>,
    pub activity: Option<String>,
    pub note: Option<String>,
}

/// An activity an admin mapped to content.
#[derive(Debug, Clone, FromRow)]
pub struct ActivityMapping {
    pub activity: String,
    pub content_id: i64,
    pub content_title: String,
    pub created_at: i64,
}

/// What applying statements needs of one statement.
struct ToApply<'a> {
    actor: Option<&'a str>,
    activity: Option<&'a str>,
    verb: &'a str,
    at: Option<i64>,
    score: Option<f64>,
}

impl<'a> ToApply<'a> {
    fn of(s: &'a Incoming) -> Self {
        Self {
            actor: s.checked.actor_email.as_deref(),
            activity: s.checked.activity.as_deref(),
            verb: &s.checked.verb,
            at: s.checked.timestamp_ms,
            score: s.checked.score,
        }
    }
}

/// The outcome of applying one statement.
#[derive(Default)]
struct Done {
    standing: Option<Standing>,
    user: Option<i64>,
    enrollment: Option<i64>,
    finished: bool,
}

/// Stands for the instant a statement is stored in its body serialised before then:
/// random, so no content can contain it.
static STORED: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("stored-{}", Uuid::new_v4().simple()));

/// The most statements one transaction takes; more wait for the next.
const MAX_GROUP: usize = 2000;

/// A request's statements, waiting to be written together with the others that arrive
/// meanwhile (group commit: see `scim::creates`, which does the same for SCIM creates).
struct Batch {
    account: AccountId,
    statements: Vec<Incoming>,
    /// Each statement as it will be stored, with [`STORED`] for the instant it is.
    bodies: Vec<String>,
    resolved: Resolved,
    reply: oneshot::Sender<Result<Vec<Uuid>>>,
}

/// Batches waiting to be written, and the gate the writer of a group holds.
#[derive(Default)]
pub(crate) struct Writes {
    pending: Mutex<Vec<Batch>>,
    gate: Arc<tokio::sync::Mutex<()>>,
}

fn pending(writes: &Writes) -> std::sync::MutexGuard<'_, Vec<Batch>> {
    writes.pending.lock().unwrap_or_else(|e| e.into_inner())
}

fn unanswered(_: oneshot::error::RecvError) -> StoreError {
    StoreError::Corrupt("xAPI statements were not answered".into())
}

impl Store {
    /// Stores statements and applies them to enrolments in one transaction (shared
    /// with the requests that arrive meanwhile; each gets the answer it would have had
    /// alone). A statement whose id is stored already is skipped when it is the same (a
    /// resend) and refused with a conflict, with nothing of its request stored, when it
    /// differs. Answers the ids, in order.
    pub async fn store_statements(
        &self,
        account: AccountId,
        statements: Vec<Incoming>,
        authority: serde_json::Value,
    ) -> Result<Vec<Uuid>> {
        let resolved = {
            let work: Vec<ToApply> = statements.iter().map(ToApply::of).collect();
            resolve(&mut *self.read.acquire().await?, account, &work).await?
        };
        // Serialised here, in parallel, rather than in the writer's transaction.
        let bodies = statements
            .iter()
            .map(|s| {
                xapi::complete_with(s.checked.value.clone(), s.id, &STORED, &authority).to_string()
            })
            .collect();
        let (reply, mut answer) = oneshot::channel();
        let writes = &self.xapi_writes;
        pending(writes).push(Batch {
            account,
            statements,
            bodies,
            resolved,
            reply,
        });
        // Queued before waiting for the gate: whoever holds it next writes this batch,
        // if the holder before has not.
        tokio::select! {
            biased;
            answered = &mut answer => return answered.map_err(unanswered)?,
            gate = writes.gate.clone().lock_owned() => {
                let group: Vec<Batch> = {
                    let mut queue = pending(writes);
                    let mut size = 0;
                    let take = queue
                        .iter()
                        .take_while(|b| {
                            size += b.statements.len();
                            size <= MAX_GROUP
                        })
                        .count()
                        .max(1)
                        .min(queue.len());
                    queue.drain(..take).collect()
                };
                if !group.is_empty() {
                    // A task of its own: a request dropped half-way must not leave the
                    // others of its group unanswered.
                    let store = self.clone();
                    tokio::spawn(async move {
                        store.write_group(group).await;
                        drop(gate);
                    })
                    .await
                    .map_err(|e| StoreError::Corrupt(format!("storing statements failed: {e}")))?;
                }
            }
        }
        answer.await.map_err(unanswered)?
    }

    /// Writes a group, each account's batches together, and answers each; should a
    /// shared transaction fail, each batch is written alone.
    async fn write_group(&self, group: Vec<Batch>) {
        let mut accounts: Vec<AccountId> = group.iter().map(|b| b.account).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let mut group: Vec<Option<Batch>> = group.into_iter().map(Some).collect();
        for account in accounts {
            let mine: Vec<Batch> = (group.iter_mut())
                .filter(|b| b.as_ref().is_some_and(|b| b.account == account))
                .filter_map(Option::take)
                .collect();
            if mine.len() > 1 {
                let refs: Vec<&Batch> = mine.iter().collect();
                if let Ok(answers) = self.write_batches_checked(account, &refs).await {
                    for (batch, answer) in mine.into_iter().zip(answers) {
                        let _ = batch.reply.send(answer);
                    }
                    continue;
                }
            }
            for batch in mine {
                let answer = match self.write_batches_checked(account, &[&batch]).await {
                    Ok(mut answers) => answers.remove(0),
                    Err(e) => Err(e),
                };
                let _ = batch.reply.send(answer);
            }
        }
    }

    /// Writes batches of one account in one transaction: each batch's answer, or an
    /// error that leaves all of them unwritten. First as if no statement were stored
    /// already (a resend is rare, and looking each id up first costs the most of all);
    /// should one be, that transaction is dropped and the ids are looked up first.
    async fn write_batches_checked(
        &self,
        account: AccountId,
        batches: &[&Batch],
    ) -> Result<Vec<Result<Vec<Uuid>>>> {
        if let Some(answers) = self.write_batches(account, batches, false).await? {
            return Ok(answers);
        }
        self.write_batches(account, batches, true)
            .await?
            .ok_or_else(|| StoreError::Corrupt("statements checked for resends conflicted".into()))
    }

    /// [`Store::write_batches_checked`]: with `check`, the ids the senders gave are looked
    /// up first; without, a statement found stored already ends the attempt (`None`,
    /// nothing written).
    async fn write_batches(
        &self,
        account: AccountId,
        batches: &[&Batch],
        check: bool,
    ) -> Result<Option<Vec<Result<Vec<Uuid>>>>> {
        let started = std::time::Instant::now();
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let conn = &mut *change.tx;
        // Resends and conflicts: only an id the sender gave can be stored already.
        let given: Vec<String> = batches
            .iter()
            .flat_map(|b| b.statements.iter())
            .filter(|s| check && s.checked.id.is_some())
            .map(|s| s.id.to_string())
            .collect();
        let mut known: FxHashMap<String, String> = FxHashMap::default();
        for chunk in given.chunks(500) {
            let mut query = QueryBuilder::with(
                Backend::of_connection(conn),
                "SELECT statement_id, digest FROM xapi_statements WHERE account_id = ",
            );
            query.push_bind(account.0).push(" AND statement_id IN (");
            let mut list = query.separated(", ");
            chunk.iter().for_each(|id| {
                list.push_bind(id.clone());
            });
            query.push(")");
            // Planned for these values each time: a plan kept from when the table was
            // small scans it whole.
            let rows: Vec<(String, String)> = query
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await?;
            known.extend(rows);
        }
        // Each batch's new statements; a batch with a conflict is answered so and left
        // out whole. An id an earlier batch of the group stores counts as stored.
        let mut answers: Vec<Result<Vec<Uuid>>> = Vec::with_capacity(batches.len());
        let mut fresh: Vec<(&Incoming, &str)> = Vec::new();
        for batch in batches {
            let mut mine = Vec::new();
            let mut conflict = None;
            for (statement, body) in batch.statements.iter().zip(&batch.bodies) {
                let id = statement.id.to_string();
                match known.get(&id) {
                    Some(digest) if *digest == statement.digest => {}
                    Some(_) => {
                        conflict = Some(id);
                        break;
                    }
                    None => mine.push((statement, body.as_str())),
                }
            }
            if let Some(id) = conflict {
                answers.push(Err(StoreError::conflict(
                    "id",
                    format!("statement {id} is stored already with other content"),
                )));
                continue;
            }
            for (statement, body) in mine {
                known.insert(statement.id.to_string(), statement.digest.clone());
                fresh.push((statement, body));
            }
            answers.push(Ok(batch.statements.iter().map(|s| s.id).collect()));
        }
        if fresh.is_empty() {
            return Ok(Some(answers));
        }
        let mut resolved = Resolved::default();
        for batch in batches {
            resolved
                .people
                .extend(batch.resolved.people.iter().map(|(k, v)| (k.clone(), *v)));
            resolved
                .content
                .extend(batch.resolved.content.iter().map(|(k, v)| (k.clone(), *v)));
        }
        let mut outbox = Notices::default();
        let work: Vec<ToApply> = fresh.iter().map(|(s, _)| ToApply::of(s)).collect();
        let (done, finished) = apply_all(conn, &mut outbox, account, &work, &resolved, now).await?;
        // Store them, then what the related filters match.
        let mut seqs = Vec::with_capacity(fresh.len());
        for (chunk, chunk_done) in fresh.chunks(500).zip(done.chunks(500)) {
            let mut insert = QueryBuilder::with(
                Backend::of_connection(conn),
                "INSERT INTO xapi_statements (account_id, statement_id, body, digest, stored_at, \
                 verb, registration, voids, refers_to, standing, note, actor, actor_key, \
                 object_agent, activity, user_id, enrollment_id, finished) ",
            );
            let stored = xapi::format_timestamp(now);
            insert.push_values(chunk.iter().zip(chunk_done), |mut row, ((s, body), d)| {
                let body = body.replace(STORED.as_str(), &stored);
                let (standing, note) = d
                    .standing
                    .as_ref()
                    .map(Standing::parts)
                    .unwrap_or(("kept", None));
                row.push_bind(account.0)
                    .push_bind(s.id.to_string())
                    .push_bind(body)
                    .push_bind(s.digest.clone())
                    .push_bind(now)
                    .push_bind(s.checked.verb.clone())
                    .push_bind(s.checked.registration.map(|r| r.to_string()))
                    .push_bind(s.checked.voids.map(|v| v.to_string()))
                    .push_bind(s.checked.refers_to.map(|v| v.to_string()))
                    .push_bind(standing)
                    .push_bind(note.map(str::to_owned))
                    .push_bind(s.checked.actor_email.clone())
                    .push_bind(s.checked.actor_key.clone())
                    .push_bind(s.checked.object_agent.clone())
                    .push_bind(s.checked.activity.clone())
                    .push_bind(d.user)
                    .push_bind(d.enrollment)
                    .push_bind(d.finished);
            });
            insert.push(
                " ON CONFLICT (account_id, statement_id) DO NOTHING RETURNING id, statement_id",
            );
            let rows: Vec<(i64, String)> = insert.build_query_as().fetch_all(&mut *conn).await?;
            if rows.len() < chunk.len() {
                // Stored already (or twice in this group): dropped, nothing written.
                return Ok(None);
            }
            let by_id: FxHashMap<String, i64> = rows.into_iter().map(|(s, i)| (i, s)).collect();
            for (s, _) in chunk {
                seqs.push(by_id[&s.id.to_string()]);
            }
        }
        let refs: Vec<(i64, &xapi::Ref)> = fresh
            .iter()
            .zip(&seqs)
            .flat_map(|((s, _), seq)| s.checked.refs.iter().map(move |r| (*seq, r)))
            .collect();
        for chunk in refs.chunks(400) {
            let mut insert = QueryBuilder::with(
                Backend::of_connection(conn),
                "INSERT INTO xapi_statement_refs (account_id, kind, key, seq) ",
            );
            insert.push_values(chunk, |mut row, (seq, r)| {
                row.push_bind(account.0)
                    .push_bind(r.kind.as_str())
                    .push_bind(r.key.clone())
                    .push_bind(*seq);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert.build().execute(&mut *conn).await?;
        }
        let mut contents: Vec<&AttachmentContent> =
            fresh.iter().flat_map(|(s, _)| &s.attachments).collect();
        contents.sort_by(|a, b| a.sha2.cmp(&b.sha2));
        contents.dedup_by(|a, b| a.sha2 == b.sha2);
        for chunk in contents.chunks(100) {
            let mut insert = QueryBuilder::with(
                Backend::of_connection(conn),
                "INSERT INTO xapi_attachments (account_id, sha2, content_type, content, stored_at) ",
            );
            insert.push_values(chunk, |mut row, a| {
                row.push_bind(account.0)
                    .push_bind(a.sha2.clone())
                    .push_bind(a.content_type.clone())
                    .push_bind(a.content.clone())
                    .push_bind(now);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert.build().execute(&mut *conn).await?;
        }
        // Voiding, after storing: a statement voided in the request that stored it too.
        let voids: Vec<String> = fresh
            .iter()
            .filter_map(|(s, _)| s.checked.voids.map(|v| v.to_string()))
            .collect();
        let mut taken_back = Vec::new();
        if !voids.is_empty() {
            taken_back = void(conn, account, &voids, now).await?;
        }
        outbox.send(conn, now).await?;
        let touched: FxHashSet<i64> = done
            .iter()
            .filter(|d| d.standing == Some(Standing::Applied))
            .filter_map(|d| d.user)
            .chain(taken_back)
            .collect();
        if finished {
            change.wake_jobs();
        }
        change.recheck(account.0, touched);
        change.commit(&self.wakes).await?;
        tracing::debug!(
            requests = batches.len(),
            statements = fresh.len(),
            ms = started.elapsed().as_millis() as u64,
            "xAPI statements written"
        );
        Ok(Some(answers))
    }
}

impl Store {
    /// One statement by id: the voided one when `voided`, else one not voided.
    pub async fn statement(
        &self,
        account: AccountId,
        id: Uuid,
        voided: bool,
    ) -> Result<Option<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT body, stored_at FROM xapi_statements \
             WHERE account_id = $1 AND statement_id = $2 AND voided = $3",
        )
        .bind(account.0)
        .bind(id.to_string())
        .bind(voided)
        .fetch_optional(&self.read)
        .await?)
    }

    /// The content of attachments kept under these hashes (those of them it has).
    pub async fn attachment_contents(
        &self,
        account: AccountId,
        hashes: &[String],
    ) -> Result<Vec<AttachmentContent>> {
        let mut found = Vec::new();
        for chunk in hashes.chunks(200) {
            let mut select = QueryBuilder::with(
                self.backend,
                "SELECT sha2, content_type, content FROM xapi_attachments WHERE account_id = ",
            );
            select.push_bind(account.0).push(" AND sha2 IN (");
            let mut list = select.separated(", ");
            chunk.iter().for_each(|h| {
                list.push_bind(h.clone());
            });
            select.push(")");
            let rows: Vec<(String, String, Vec<u8>)> = select
                .build_query_as()
                .persistent(false)
                .fetch_all(&self.read)
                .await?;
            found.extend(
                rows.into_iter()
                    .map(|(sha2, content_type, content)| AttachmentContent {
                        sha2,
                        content_type,
                        content,
                    }),
            );
        }
        Ok(found)
    }

    /// A page of statements (bodies as stored) matching `query`, with the cursor of the
    /// next page if there is one. Voided statements are left out.
    pub async fn statements(
        &self,
        account: AccountId,
        query: &StatementQuery,
    ) -> Result<(Vec<String>, Option<i64>)> {
        let mut select = QueryBuilder::with(
            self.backend,
            "SELECT s.id, s.body FROM xapi_statements s WHERE s.account_id = ",
        );
        select.push_bind(account.0).push(" AND s.voided = FALSE");
        if let Some(since) = query.since {
            select.push(" AND s.stored_at > ").push_bind(since);
        }
        if let Some(until) = query.until {
            select.push(" AND s.stored_at <= ").push_bind(until);
        }
        // A statement matches the filters, or refers to one that does (voided or not).
        if query.filters() {
            select.push(" AND (");
            push_filters(&mut select, "s", account, query);
            select.push(
                " OR s.refers_to IN (SELECT t.statement_id FROM xapi_statements t \
                 WHERE t.account_id = ",
            );
            select.push_bind(account.0);
            push_filters(&mut select, "t", account, query);
            select.push("))");
        }
        let order = if query.ascending { "ASC" } else { "DESC" };
        if let Some(after) = query.after {
            select
                .push(if query.ascending {
                    " AND s.id > "
                } else {
                    " AND s.id < "
                })
                .push_bind(after);
        }
        select
            .push(format!(" ORDER BY s.id {order} LIMIT "))
            .push_bind(i64::from(query.limit) + 1);
        let mut rows: Vec<(i64, String)> = select.build_query_as().fetch_all(&self.read).await?;
        let more = (rows.len() > query.limit as usize).then(|| {
            rows.truncate(query.limit as usize);
            rows.last().map(|(seq, _)| *seq)
        });
        Ok((
            rows.into_iter().map(|(_, body)| body).collect(),
            more.flatten(),
        ))
    }

    /// Statements waiting for their person or activity, newest first; with their count.
    pub async fn unmapped_statements(
        &self,
        account: AccountId,
        page: Page,
    ) -> Result<(Vec<Unmapped>, i64)> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM xapi_statements WHERE account_id = $1 AND standing = 'unmapped'",
        )
        .bind(account.0)
        .fetch_one(&self.read)
        .await?;
        let rows = sqlx::query_as(
            "SELECT statement_id, stored_at, verb, actor, activity, note FROM xapi_statements \
             WHERE account_id = $1 AND standing = 'unmapped' ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(account.0)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        Ok((rows, total))
    }

    /// The account's activity mappings.
    pub async fn activity_mappings(&self, account: AccountId) -> Result<Vec<ActivityMapping>> {
        Ok(sqlx::query_as(
            "SELECT m.activity, m.content_id, c.title AS content_title, m.created_at \
             FROM xapi_activities m JOIN content c ON c.id = m.content_id \
             WHERE m.account_id = $1 ORDER BY m.activity",
        )
        .bind(account.0)
        .fetch_all(&self.read)
        .await?)
    }

    /// Maps an activity to content (replacing an earlier mapping), then applies the
    /// statements about it that were waiting, in the order they were stored. Answers how
    /// many were applied.
    pub async fn map_activity(
        &self,
        account: AccountId,
        activity: &str,
        content: ContentId,
    ) -> Result<u64> {
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let conn = &mut *change.tx;
        crate::content::content_in(conn, account, content).await?;
        sqlx::query(
            "INSERT INTO xapi_activities (account_id, activity, content_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, activity) \
             DO UPDATE SET content_id = excluded.content_id, created_at = excluded.created_at",
        )
        .bind(account.0)
        .bind(activity)
        .bind(content.0)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let waiting: Vec<(i64, String, Option<String>, String)> = sqlx::query_as(
            "SELECT id, body, actor, verb FROM xapi_statements WHERE account_id = $1 \
             AND standing = 'unmapped' AND activity = $2 AND voided = FALSE ORDER BY id",
        )
        .bind(account.0)
        .bind(activity)
        .fetch_all(&mut *conn)
        .await?;
        let bodies: Vec<serde_json::Value> = waiting
            .iter()
            .map(|(_, body, _, _)| serde_json::from_str(body).unwrap_or_default())
            .collect();
        let work: Vec<ToApply> = waiting
            .iter()
            .zip(&bodies)
            .map(|((_, _, actor, verb), body)| ToApply {
                actor: actor.as_deref(),
                activity: Some(activity),
                verb,
                at: body["timestamp"].as_str().and_then(xapi::parse_timestamp),
                score: score_of(body),
            })
            .collect();
        let mut outbox = Notices::default();
        let resolved = resolve(conn, account, &work).await?;
        let (done, finished) = apply_all(conn, &mut outbox, account, &work, &resolved, now).await?;
        let mut applied = 0;
        for ((seq, ..), d) in waiting.iter().zip(&done) {
            let (standing, note) = d
                .standing
                .as_ref()
                .map(Standing::parts)
                .unwrap_or(("kept", None));
            applied += u64::from(standing == "applied");
            sqlx::query(
                "UPDATE xapi_statements SET standing = $1, note = $2, user_id = $3, \
                 enrollment_id = $4, finished = $5 WHERE id = $6",
            )
            .bind(standing)
            .bind(note)
            .bind(d.user)
            .bind(d.enrollment)
            .bind(d.finished)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
        outbox.send(conn, now).await?;
        if finished {
            change.wake_jobs();
        }
        let touched: FxHashSet<i64> = done.iter().filter_map(|d| d.user).collect();
        change.recheck(account.0, touched);
        change.commit(&self.wakes).await?;
        Ok(applied)
    }

    /// Removes an activity's mapping (what it applied stays applied).
    pub async fn unmap_activity(&self, account: AccountId, activity: &str) -> Result<()> {
        let removed =
            sqlx::query("DELETE FROM xapi_activities WHERE account_id = $1 AND activity = $2")
                .bind(account.0)
                .bind(activity)
                .execute(&self.write)
                .await?
                .rows_affected();
        if removed == 0 {
            return Err(StoreError::NotFound("activity mapping"));
        }
        Ok(())
    }
}

/// The score of a stored statement as a fraction, as [`xapi::check`] reads it.
fn score_of(body: &serde_json::Value) -> Option<f64> {
    let score = &body["result"]["score"];
    score["scaled"].as_f64().or_else(|| {
        let (raw, max) = (score["raw"].as_f64()?, score["max"].as_f64()?);
        let min = score["min"].as_f64().unwrap_or(0.0);
        (max > min).then(|| (raw - min) / (max - min))
    })
}

/// An enrolment's own columns, as [`Enrollment`] reads them, without the names of its
/// campaign, content and person (a join that costs the most of applying statements).
const STATE_COLUMNS: &str = "e.id, e.account_id, e.campaign_id, '' AS campaign_name, \
    e.content_id, '' AS content_kind, '' AS content_title, e.user_id, '' AS email, \
    CAST(NULL AS TEXT) AS first_name, CAST(NULL AS TEXT) AS last_name, \
    CAST(NULL AS TEXT) AS employee_number, e.status, e.enrolled_at, e.due_at, e.started_at, \
    e.completed_at, e.past_due_at, e.time_spent, e.score, e.attempts, \
    e.policy_acknowledged, e.cause";

/// Whom and what statements are about: people by email or alias, activities by an
/// admin's mapping, else by a content slug at the end of the IRI.
#[derive(Default)]
struct Resolved {
    people: FxHashMap<String, i64>,
    content: FxHashMap<String, i64>,
}

/// Resolves the people and activities of the statements that move enrolments, in a few
/// queries. Read before the write transaction: names change rarely, and a person added
/// meanwhile only leaves a statement unmapped, to be applied later.
async fn resolve(
    conn: &mut AnyConnection,
    account: AccountId,
    work: &[ToApply<'_>],
) -> Result<Resolved> {
    let moving: Vec<&ToApply> = work
        .iter()
        .filter(|w| xapi::verb_move(w.verb).is_some())
        .collect();
    if moving.is_empty() {
        return Ok(Resolved::default());
    }
    let identities: FxHashSet<String> = moving
        .iter()
        .filter_map(|w| w.actor.map(normalize_identity))
        .collect();
    let people = lookup(
        conn,
        "SELECT identity, user_id FROM user_identities WHERE account_id = ",
        account,
        " AND identity IN (",
        identities.into_iter(),
    )
    .await?;
    let activities: FxHashSet<&str> = moving.iter().filter_map(|w| w.activity).collect();
    let mut content = lookup(
        conn,
        "SELECT activity, content_id FROM xapi_activities WHERE account_id = ",
        account,
        " AND activity IN (",
        activities.iter().map(|a| (*a).to_owned()),
    )
    .await?;
    let slugs: FxHashSet<String> = activities
        .iter()
        .filter(|a| !content.contains_key(**a))
        .filter_map(|a| slug(a))
        .collect();
    let by_slug = lookup(
        conn,
        "SELECT slug, id FROM content WHERE account_id = ",
        account,
        " AND slug IN (",
        slugs.into_iter(),
    )
    .await?;
    for activity in &activities {
        if !content.contains_key(*activity)
            && let Some(id) = slug(activity).and_then(|s| by_slug.get(&s))
        {
            content.insert((*activity).to_owned(), *id);
        }
    }
    Ok(Resolved { people, content })
}

/// Applies statements to enrolments, in order, as the learner's own step would move
/// them; answers what each did, and whether any enrolment was finished.
async fn apply_all(
    conn: &mut AnyConnection,
    outbox: &mut Notices,
    account: AccountId,
    work: &[ToApply<'_>],
    resolved: &Resolved,
    now: i64,
) -> Result<(Vec<Done>, bool)> {
    let (people, content) = (&resolved.people, &resolved.content);
    let mut done: Vec<Done> = work.iter().map(|_| Done::default()).collect();
    let moving: Vec<usize> = (0..work.len())
        .filter(|&i| xapi::verb_move(work[i].verb).is_some())
        .collect();
    for (i, d) in done.iter_mut().enumerate() {
        if xapi::verb_move(work[i].verb).is_none() {
            d.standing = Some(Standing::Kept("its verb moves no enrolment".into()));
        }
    }
    if moving.is_empty() {
        return Ok((done, false));
    }
    // Their enrolments: each pair's open one, else its latest.
    let users: FxHashSet<i64> = people.values().copied().collect();
    let contents: FxHashSet<i64> = content.values().copied().collect();
    let mut enrolments: FxHashMap<(i64, i64), Enrollment> = FxHashMap::default();
    if !users.is_empty() && !contents.is_empty() {
        // Each person's enrolments by the index on the person (given a list, SQLite may
        // otherwise read every enrolment of the account).
        let backend = Backend::of_connection(conn);
        let users: Vec<i64> = users.into_iter().collect();
        let mut query = QueryBuilder::with(
            backend,
            format!("SELECT {}", STATE_COLUMNS.replace("e.", "t.")),
        );
        query.push_list(&backend.rows_listed("enrollments", "user_id", 0), &users);
        query.push("t.account_id = ").push_bind(account.0);
        let rows: Vec<Enrollment> = query
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        let rows = rows
            .into_iter()
            .filter(|row| contents.contains(&row.content_id.0));
        for row in rows {
            let key = (row.user_id.0, row.content_id.0);
            let better = enrolments.get(&key).is_none_or(|best| {
                let rank = |e: &Enrollment| (e.completed_at.is_none(), e.enrolled_at, e.id.0);
                rank(&row) > rank(best)
            });
            if better {
                enrolments.insert(key, row);
            }
        }
    }
    let mut changed: FxHashMap<i64, (Enrollment, bool)> = FxHashMap::default();
    for &i in &moving {
        let w = &work[i];
        let d = &mut done[i];
        let user = w
            .actor
            .and_then(|a| people.get(&normalize_identity(a)).copied());
        d.user = user;
        let Some(user) = user else {
            d.standing = Some(Standing::Unmapped(match w.actor {
                Some(email) => format!("no person with the email or alias {email}"),
                None => "its actor has no mbox (email) or account to find a person by".into(),
            }));
            continue;
        };
        let Some(content) = w.activity.and_then(|a| content.get(a).copied()) else {
            d.standing = Some(Standing::Unmapped(match w.activity {
                Some(activity) => format!("no content for the activity {activity}; map it"),
                None => "its object is not an activity".into(),
            }));
            continue;
        };
        let Some(enrollment) = enrolments.get_mut(&(user, content)) else {
            d.standing = Some(Standing::Kept(
                "the person has no enrolment in that content".into(),
            ));
            continue;
        };
        d.enrollment = Some(enrollment.id.0);
        let mut enrolment = state(enrollment)?;
        let percent = w.score.map(|s| (s.clamp(0.0, 1.0) * 100.0).round() as u8);
        let step = xapi::verb_move(w.verb).expect("moving");
        let outcome = match step {
            Move::Start => External::Started,
            Move::Complete => External::Completed,
            Move::Pass => External::Passed { score: percent },
            Move::Fail => External::Failed { score: percent },
        };
        match enrolment.record_external(w.at.unwrap_or(now).min(now), outcome) {
            Err(e) => d.standing = Some(Standing::Refused(e.to_string())),
            Ok(change) => {
                // A completion or pass of a finished enrolment finishes it too: voiding
                // the one that did leaves it finished while this one stands.
                d.finished = matches!(step, Move::Complete | Move::Pass) && enrolment.is_finished();
                if !change.is_changed() {
                    d.standing = Some(Standing::Kept("the enrolment was moved on already".into()));
                    continue;
                }
                d.standing = Some(Standing::Applied);
                set_state(enrollment, &enrolment);
                let entry = changed
                    .entry(enrollment.id.0)
                    .or_insert_with(|| (enrollment.clone(), false));
                entry.0 = enrollment.clone();
                entry.1 |= change.finished();
            }
        }
    }
    let any_finished = changed.values().any(|(_, finished)| *finished);
    let states: Vec<(Enrollment, coachloop_core::enrolment::Enrolment, bool)> = changed
        .into_values()
        .map(|(row, finished)| state(&row).map(|e| (row, e, finished)))
        .collect::<Result<_>>()?;
    let writes: Vec<(EnrollmentId, &coachloop_core::enrolment::Enrolment)> =
        states.iter().map(|(row, e, _)| (row.id, e)).collect();
    write_states(conn, &writes).await?;
    for (row, enrolment, finished) in &states {
        if *finished {
            // The whole row (its campaign, content and person) for what finishing it sends.
            let full: Enrollment = sqlx::query_as(&format!(
                "SELECT {ENROLLMENT_COLUMNS} FROM {ENROLLMENT_FROM} WHERE e.id = $1"
            ))
            .bind(row.id.0)
            .fetch_one(&mut *conn)
            .await?;
            on_finished(conn, outbox, account, &full, enrolment, now).await?;
        }
    }
    Ok((done, any_finished))
}

/// Copies the core state back into the row read (so a later statement of the batch for
/// the same enrolment sees it).
fn set_state(row: &mut Enrollment, e: &coachloop_core::enrolment::Enrolment) {
    row.status = e.status.as_str().to_owned();
    row.started_at = e.started_at;
    row.completed_at = e.completed_at;
    row.past_due_at = e.past_due_at;
    row.time_spent = e.time_spent_s;
    row.score = e.score.map(i64::from);
    row.attempts = i64::from(e.attempts);
    row.policy_acknowledged = e.policy_acknowledged;
}

/// The content slug an activity IRI ends in (`…/activities/password-management`).
fn slug(activity: &str) -> Option<String> {
    activity
        .trim_end_matches('/')
        .rsplit(['/', ':', '#'])
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `key → id` for the keys given, by a query of the shape `head <account> middle <keys>)`.
async fn lookup(
    conn: &mut AnyConnection,
    head: &str,
    account: AccountId,
    middle: &str,
    keys: impl Iterator<Item = String>,
) -> Result<FxHashMap<String, i64>> {
    let keys: Vec<String> = keys.collect();
    let mut found = FxHashMap::default();
    for chunk in keys.chunks(500) {
        let mut query = QueryBuilder::with(Backend::of_connection(conn), head);
        query.push_bind(account.0).push(middle);
        let mut list = query.separated(", ");
        chunk.iter().for_each(|k| {
            list.push_bind(k.clone());
        });
        query.push(")");
        let rows: Vec<(String, i64)> = query
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// Marks the statements with these ids voided (a voiding statement itself cannot be),
/// and takes back each completion one of them gave that no other statement still
/// gives. Answers the people whose enrolments were taken back.
async fn void(
    conn: &mut AnyConnection,
    account: AccountId,
    ids: &[String],
    now: i64,
) -> Result<Vec<i64>> {
    let mut query = QueryBuilder::with(
        Backend::of_connection(conn),
        "UPDATE xapi_statements SET voided = TRUE WHERE account_id = ",
    );
    query
        .push_bind(account.0)
        .push(" AND voids IS NULL AND statement_id IN (");
    let mut list = query.separated(", ");
    ids.iter().for_each(|id| {
        list.push_bind(id.clone());
    });
    query.push(") RETURNING enrollment_id, finished");
    let rows: Vec<(Option<i64>, Flag)> = query.build_query_as().fetch_all(&mut *conn).await?;
    let mut people = Vec::new();
    for enrollment in rows
        .into_iter()
        .filter(|(_, finished)| finished.0)
        .filter_map(|(enrollment, _)| enrollment)
    {
        let still: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM xapi_statements \
             WHERE enrollment_id = $1 AND finished = TRUE AND voided = FALSE",
        )
        .bind(enrollment)
        .fetch_one(&mut *conn)
        .await?;
        if still > 0 {
            continue;
        }
        let row: Option<Enrollment> = sqlx::query_as(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM {ENROLLMENT_FROM} WHERE e.account_id = $1 AND e.id = $2"
        ))
        .bind(account.0)
        .bind(enrollment)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { continue };
        let mut enrolment = state(&row)?;
        if enrolment.take_back(now).is_changed() {
            write_state(conn, EnrollmentId(enrollment), &enrolment).await?;
            people.push(row.user_id.0);
        }
    }
    Ok(people)
}
