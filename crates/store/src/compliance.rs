//! Compliance kept current: each person's status against each of the account's
//! requirements is stored (`compliance_people`), with its requirement's counts, and
//! [`refresh`] re-evaluates the people a transaction touched, in that transaction, before
//! it commits: an enrolment made or finished, a person added, changed or archived, a
//! group joined or left, a requirement edited, an exception granted or revoked. What time
//! changes by itself (a completion expiring, a grace ending) is stored as the row's
//! `changes_at` and done by the training executor at that instant
//! ([`Store::run_due_compliance`]). A control's status is its requirement's; each change
//! of it is recorded for every enabled framework's control mapped to it.
//!
//! Callers hold the account's lock (a change of facts), so counts and history follow one
//! order across nodes.

use crate::db::{Backend, ListOf};
use crate::fact_change::FactChange;
use crate::scan::{self, EnrolmentRow};
use crate::sql::{QueryBuilder, Record, Separated};
use crate::{Result, Store, StoreError};
use coachloop_core::compliance::remote::Counting;
use coachloop_core::compliance::{
    self, Evaluation, Person, Recurrence, Requirement, RequirementKind, Scope, Status, Verdict,
    evidence,
};
use coachloop_core::ids::{AccountId, ExceptionId, RequirementId, UserId};
use coachloop_core::time::{date_of_ms, date_start_ms, parse_date};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use sqlx::AnyConnection;
use std::collections::{BTreeMap, HashMap, HashSet};

/// People in scope of a requirement, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub compliant: i64,
    pub at_risk: i64,
    pub non_compliant: i64,
    pub excepted: i64,
}

impl Counts {
    fn add(&mut self, status: Status, n: i64) {
        match status {
            Status::Compliant => self.compliant += n,
            Status::AtRisk => self.at_risk += n,
            Status::NonCompliant => self.non_compliant += n,
            Status::Excepted => self.excepted += n,
        }
    }

    pub fn in_scope(&self) -> i64 {
        self.compliant + self.at_risk + self.non_compliant + self.excepted
    }
}

/// An account's requirement with its current verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct RequirementState {
    pub id: RequirementId,
    pub settings: Requirement,
    pub verdict: Verdict,
    pub counts: Counts,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameworkState {
    pub framework: &'static compliance::Framework,
    pub enabled_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlState {
    pub control: &'static compliance::Control,
    pub requirement: RequirementId,
    pub verdict: Verdict,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HistoryEntry {
    pub status: String,
    pub compliant: i64,
    pub at_risk: i64,
    pub non_compliant: i64,
    pub excepted: i64,
    pub at: i64,
}

/// One person's standing against one requirement.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PersonStanding {
    pub requirement_id: i64,
    pub kind: String,
    pub user_id: i64,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub status: String,
    pub reason: String,
    pub deadline: Option<i64>,
    pub last_completed: Option<i64>,
    pub since: i64,
    pub changes_at: Option<i64>,
    /// The sync connection that added the person (`None`: a person of the account).
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Exception {
    pub id: i64,
    pub requirement_id: i64,
    pub user_id: i64,
    pub reason: String,
    pub granted_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewException {
    pub requirement: RequirementId,
    pub user: UserId,
    pub reason: String,
    pub granted_by: String,
    pub expires_at: Option<i64>,
}

/// Which people a listing shows.
#[derive(Debug, Clone, Default)]
pub struct PeopleFilter {
    pub requirement: Option<RequirementId>,
    pub status: Option<Status>,
    pub user: Option<UserId>,
}

const REQUIREMENT_COLUMNS: &str = "id, kind, title, content, campaigns, recurrence, \
    new_hire_days, scope_group, tolerance_days, due_soon_days, completion_days, status, \
    compliant, at_risk, non_compliant, excepted, updated_at";

#[derive(sqlx::FromRow)]
struct RequirementRow {
    id: i64,
    kind: String,
    title: String,
    content: String,
    campaigns: String,
    recurrence: String,
    new_hire_days: i64,
    scope_group: Option<i64>,
    tolerance_days: i64,
    due_soon_days: i64,
    completion_days: i64,
    status: String,
    compliant: i64,
    at_risk: i64,
    non_compliant: i64,
    excepted: i64,
    updated_at: i64,
}

impl TryFrom<RequirementRow> for RequirementState {
    type Error = StoreError;

    fn try_from(row: RequirementRow) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("requirement {}: {what}", row.id));
        let ids = |text: &str| serde_json::from_str::<Vec<i64>>(text);
        let days = |n: i64| u32::try_from(n).map_err(|_| corrupt("a day count is out of range"));
        let settings = Requirement {
            kind: RequirementKind::parse(&row.kind).ok_or_else(|| corrupt("unknown kind"))?,
            title: row.title.clone(),
            content: ids(&row.content).map_err(|_| corrupt("content is not a list of ids"))?,
            campaigns: ids(&row.campaigns)
                .map_err(|_| corrupt("campaigns is not a list of ids"))?,
            recurrence: serde_json::from_str(&row.recurrence)
                .map_err(|_| corrupt("recurrence cannot be read"))?,
            new_hire_days: days(row.new_hire_days)?,
            scope: match row.scope_group {
                Some(group_id) => Scope::Group { group_id },
                None => Scope::All,
            },
            tolerance_days: days(row.tolerance_days)?,
            due_soon_days: days(row.due_soon_days)?,
            completion_days: days(row.completion_days)?,
        };
        Ok(Self {
            id: RequirementId(row.id),
            settings,
            verdict: Verdict::parse(&row.status).ok_or_else(|| corrupt("unknown status"))?,
            counts: Counts {
                compliant: row.compliant,
                at_risk: row.at_risk,
                non_compliant: row.non_compliant,
                excepted: row.excepted,
            },
            updated_at: row.updated_at,
        })
    }
}

/// The stored form of a recurrence.
fn recurrence_json(recurrence: &Recurrence) -> String {
    serde_json::to_string(recurrence).unwrap_or_else(|_| "{\"kind\":\"once\"}".to_owned())
}

fn scope_group(scope: &Scope) -> Option<i64> {
    match scope {
        Scope::All => None,
        Scope::Group { group_id } => Some(*group_id),
    }
}

/// A row of `compliance_people` as [`refresh`] writes it.
#[derive(Serialize)]
struct StandingRecord {
    requirement_id: i64,
    user_id: i64,
    account_id: i64,
    status: &'static str,
    reason: String,
    deadline: Option<i64>,
    last_completed: Option<i64>,
    changes_at: Option<i64>,
    since: i64,
    digest: i64,
}

impl Record for StandingRecord {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("requirement_id", "bigint"),
        ("user_id", "bigint"),
        ("account_id", "bigint"),
        ("status", "text"),
        ("reason", "text"),
        ("deadline", "bigint"),
        ("last_completed", "bigint"),
        ("changes_at", "bigint"),
        ("since", "bigint"),
        ("digest", "bigint"),
    ];

    fn bind<'args>(&self, row: &mut Separated<'_, 'args>) {
        row.push_bind(self.requirement_id)
            .push_bind(self.user_id)
            .push_bind(self.account_id)
            .push_bind(self.status)
            .push_bind(self.reason.clone())
            .push_bind(self.deadline)
            .push_bind(self.last_completed)
            .push_bind(self.changes_at)
            .push_bind(self.since)
            .push_bind(self.digest);
    }
}

/// A stored standing as `refresh` compares it: what it holds besides `since` as its
/// digest (`None`: written before digests, never the same).
struct Stored {
    status: Status,
    digest: Option<i64>,
    since: i64,
}

/// A digest of what a standing's row holds besides `since` — status, reason, deadline,
/// last completion, next change — so that a full pass compares one integer per row
/// instead of reading every reason. FNV-1a: the same in every build, as a stored value
/// must be.
fn digest(e: &Evaluation) -> i64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(PRIME);
        }
    };
    eat(e.status.as_str().as_bytes());
    eat(&[0xff]);
    eat(e.reason.as_bytes());
    eat(&[0xff]);
    for instant in [e.deadline, e.last_completed, e.next_change] {
        match instant {
            Some(at) => {
                eat(&[1]);
                eat(&at.to_le_bytes());
            }
            None => eat(&[0]),
        }
    }
    hash as i64
}

#[derive(sqlx::FromRow)]
struct StoredRow {
    requirement_id: i64,
    user_id: i64,
    status: String,
    digest: Option<i64>,
    since: i64,
}

/// What [`refresh`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Refreshed {
    /// Rows written or deleted.
    pub changed: usize,
    /// The earliest `changes_at` written (for the executor's wake-up).
    pub earliest: Option<i64>,
}

/// The instant a group-joined enrolment's triggering event happened: the join's `at`.
fn triggered_at(cause: &str) -> Option<i64> {
    let cause: serde_json::Value = serde_json::from_str(cause).ok()?;
    if cause["kind"] != "group_joined" {
        return None;
    }
    let at = cause["at"].as_str()?;
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A person as evaluation reads them.
#[derive(sqlx::FromRow)]
pub(crate) struct PersonRow {
    pub id: i64,
    status: String,
    employee_start_date: Option<String>,
    joined_on: i64,
    /// Read for evidence only (see [`Inputs::load`]).
    #[sqlx(default)]
    pub email: String,
    #[sqlx(default)]
    pub first_name: Option<String>,
    #[sqlx(default)]
    pub last_name: Option<String>,
}

/// Everything evaluating an account's people against some requirements reads, loaded
/// once: [`refresh`] compares what it gives with what is stored and writes the
/// difference; an evidence export evaluates with it and writes nothing.
pub(crate) struct Inputs<'r> {
    /// The requirements, each with its id when the account has it stored (`None`: a
    /// default evaluated in memory, which no exception can name).
    requirements: Vec<(Option<i64>, &'r Requirement)>,
    titles: HashMap<i64, String>,
    counted: Vec<Option<HashSet<i64>>>,
    pub people: Vec<PersonRow>,
    members: FxHashSet<(i64, i64)>,
    by_person: FxHashMap<i64, Vec<EnrolmentRow>>,
    excepted: FxHashMap<(i64, i64), Exception>,
    /// What each sync connection's enrolments count for (empty: the account has none).
    synced: HashMap<i64, (String, Counting)>,
}

impl<'r> Inputs<'r> {
    /// Reads what evaluating `users` (everyone when `None`) against `requirements` needs,
    /// on `conn`. With `detail`, also what evidence shows and evaluation does not need:
    /// people's names and emails, enrolments' ids and scores, and the triggering event of
    /// every enrolment a smart-group join made.
    pub(crate) async fn load(
        conn: &mut AnyConnection,
        aside: Option<&sqlx::AnyPool>,
        account: i64,
        users: Option<&[i64]>,
        requirements: Vec<(Option<i64>, &'r Requirement)>,
        detail: bool,
        now: i64,
    ) -> Result<Inputs<'r>> {
        let backend = Backend::of_connection(conn);
        // The people asked about, each found by an index on the person.
        let from = |query: &mut QueryBuilder<'_>, table: &str, person: &str| {
            match users {
                Some(users) => query.push_list(&backend.rows_listed(table, person, 0), users),
                None => query.push(format_args!(" FROM {table} t WHERE ")),
            };
        };

        // The content library: which content each kind counts by default, and titles.
        let content: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT id, kind, slug, title FROM content WHERE account_id = $1")
                .bind(account)
                .fetch_all(&mut *conn)
                .await?;
        let counted: Vec<Option<HashSet<i64>>> = requirements
            .iter()
            .map(|(_, r)| counted_content(r, &content))
            .collect();
        let titles: HashMap<i64, String> = content.into_iter().map(|c| (c.0, c.3)).collect();

        let mut query = QueryBuilder::new(format!(
            "SELECT t.id, t.status, t.employee_start_date, t.joined_on{}",
            if detail {
                ", t.email, t.first_name, t.last_name"
            } else {
                ""
            }
        ));
        from(&mut query, "users", "id");
        query.push("t.account_id = ").push_bind(account);
        if detail {
            query.push(" ORDER BY t.id");
        }
        let people: Vec<PersonRow> = query.build_query_as().fetch_all(&mut *conn).await?;

        let mut members: FxHashSet<(i64, i64)> = FxHashSet::default();
        for group in requirements
            .iter()
            .filter_map(|(_, r)| scope_group(&r.scope))
        {
            let mut query = QueryBuilder::new("SELECT t.user_id");
            from(&mut query, "group_members", "user_id");
            query.push("t.group_id = ").push_bind(group);
            let users: Vec<i64> = query.build_query_scalar().fetch_all(&mut *conn).await?;
            members.extend(users.into_iter().map(|u| (group, u)));
        }

        let triggered = detail
            || requirements
                .iter()
                .any(|(_, r)| r.kind == RequirementKind::EventTriggered);
        // Parsed only where a join made the enrolment.
        let joined = if triggered {
            "CASE WHEN t.cause LIKE '%\"kind\":\"group_joined\"%' THEN t.cause END"
        } else {
            "CAST(NULL AS TEXT)"
        };
        let mut by_person: FxHashMap<i64, Vec<EnrolmentRow>> = FxHashMap::default();
        if users.is_none() {
            // Everyone, for a full pass or an export: the whole account in bulk. (An
            // export read it `ORDER BY enrolled_at, id` through the `Any` driver: a sort
            // of every enrolment and a conversion per row, 1 M of them at 100,000 people.)
            let only = counted_only(&requirements, &counted);
            let bare = joined.replace("t.", "");
            let tail = match (detail, triggered) {
                (true, _) => format!(", {bare} AS joined, score"),
                (false, true) => format!(", {bare} AS joined"),
                (false, false) => String::new(),
            };
            let mut push = |row: EnrolmentRow| by_person.entry(row.user_id).or_default().push(row);
            match aside {
                Some(pool) => {
                    // Two halves of the account's ids at once, the second on another
                    // connection and worker thread: the engine's work and the parsing of
                    // a million rows spread over two cores.
                    let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
                        "SELECT MIN(id), MAX(id) FROM enrollments WHERE account_id = $1",
                    )
                    .bind(account)
                    .fetch_one(&mut *conn)
                    .await?;
                    if let (Some(first), Some(last)) = (first, last) {
                        let middle = first + (last - first) / 2;
                        let (pool, tail2, only2) = (pool.clone(), tail.clone(), only.clone());
                        let second = tokio::spawn(async move {
                            let mut conn = pool.acquire().await?;
                            let mut rows = Vec::new();
                            let ids = scan::Ids {
                                after: middle,
                                last,
                            };
                            scan::each_enrolment(&mut conn, account, &tail2, &only2, ids, |row| {
                                rows.push(row)
                            })
                            .await?;
                            Ok::<_, StoreError>(rows)
                        });
                        let ids = scan::Ids {
                            after: first - 1,
                            last: middle,
                        };
                        let read =
                            scan::each_enrolment(conn, account, &tail, &only, ids, &mut push).await;
                        if read.is_err() {
                            second.abort();
                        }
                        read?;
                        // (Never cancelled once awaited: a join error is its panic.)
                        let rows = second
                            .await
                            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
                        rows.into_iter().for_each(push);
                    }
                }
                None => {
                    scan::each_enrolment(conn, account, &tail, &only, scan::Ids::ALL, push).await?
                }
            }
        } else {
            let mut query = QueryBuilder::new(format!(
                "SELECT {}t.user_id, t.content_id, t.campaign_id, t.enrolled_at, t.due_at, \
                 t.completed_at, {joined} AS joined",
                if detail { "t.id, t.score, " } else { "" },
            ));
            from(&mut query, "enrollments", "user_id");
            query.push("t.account_id = ").push_bind(account);
            if detail {
                query.push(" ORDER BY t.enrolled_at, t.id");
            }
            let enrolments: Vec<EnrolmentRow> =
                query.build_query_as().fetch_all(&mut *conn).await?;
            for row in enrolments {
                by_person.entry(row.user_id).or_default().push(row);
            }
        }

        // Enrolments synced from remote Reporting APIs, each remote module under a key of
        // its own below zero (never a content id here).
        let synced = crate::sync::countings(conn, account).await?;
        let mut titles = titles;
        if !synced.is_empty() {
            let mut query = QueryBuilder::new(
                "SELECT t.user_id, t.remote_id, t.connection_id, t.campaign_id, t.module_name, \
                 t.enrolled_at, t.due_at, t.completed_at",
            );
            from(&mut query, "sync_enrollments", "user_id");
            query.push("t.account_id = ").push_bind(account);
            type SyncedRow = (
                i64,
                i64,
                i64,
                Option<i64>,
                String,
                i64,
                Option<i64>,
                Option<i64>,
            );
            let rows: Vec<SyncedRow> = query.build_query_as().fetch_all(&mut *conn).await?;
            let mut modules: HashMap<(i64, String), i64> = HashMap::new();
            for (user, remote, connection, campaign, module, enrolled, due, completed) in rows {
                let next = -(modules.len() as i64) - 1;
                let key = *modules.entry((connection, module)).or_insert(next);
                by_person.entry(user).or_default().push(EnrolmentRow {
                    user_id: user,
                    id: remote,
                    content_id: key,
                    campaign_id: campaign.unwrap_or(0),
                    enrolled_at: enrolled,
                    due_at: due,
                    completed_at: completed,
                    joined: None,
                    score: None,
                    connection: Some(connection),
                });
            }
            titles.extend(modules.into_iter().map(|((_, module), key)| (key, module)));
        }
        if detail {
            // Evidence lists a person's records oldest first, synced ones among them.
            for rows in by_person.values_mut() {
                rows.sort_unstable_by_key(|e| (e.enrolled_at, e.id));
            }
        }

        let mut query = QueryBuilder::new(
            "SELECT t.id, t.requirement_id, t.user_id, t.reason, t.granted_by, t.created_at, \
             t.expires_at, t.revoked_at",
        );
        from(&mut query, "compliance_exceptions", "user_id");
        query
            .push("t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ")
            .push_bind(now)
            .push(") AND t.account_id = ")
            .push_bind(account);
        let exceptions: Vec<Exception> = query.build_query_as().fetch_all(&mut *conn).await?;
        let mut excepted: FxHashMap<(i64, i64), Exception> = FxHashMap::default();
        for e in exceptions {
            // The one that lasts longest wins.
            match excepted.entry((e.requirement_id, e.user_id)) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(e);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let kept = o.get();
                    if kept.expires_at.is_some()
                        && e.expires_at.is_none_or(|t| Some(t) > kept.expires_at)
                    {
                        o.insert(e);
                    }
                }
            }
        }
        Ok(Inputs {
            requirements,
            titles,
            counted,
            people,
            members,
            by_person,
            excepted,
            synced,
        })
    }

    /// The enrolments of `person` that count for the `index`th requirement.
    fn counting<'a>(
        &'a self,
        index: usize,
        person: &PersonRow,
    ) -> impl Iterator<Item = &'a EnrolmentRow> + 'a {
        let r = self.requirements[index].1;
        let counted = self.counted[index].as_ref();
        self.by_person
            .get(&person.id)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(move |e| match e.connection {
                Some(connection) => self.synced.get(&connection).is_some_and(|(_, c)| {
                    c.counts(r.kind, Some(e.campaign_id).filter(|id| *id > 0))
                }),
                None => counts(r, counted, e),
            })
    }

    fn title(&self, content: i64) -> &str {
        self.titles.get(&content).map_or("training", String::as_str)
    }

    /// The person's standing against the `index`th requirement at `now` (`None`: not in
    /// its scope).
    pub(crate) fn evaluate(
        &self,
        index: usize,
        person: &PersonRow,
        now: i64,
    ) -> Option<Evaluation> {
        let (id, r) = self.requirements[index];
        let in_scope = person.status == "active"
            && match r.scope {
                Scope::All => true,
                Scope::Group { group_id } => self.members.contains(&(group_id, person.id)),
            };
        if !in_scope {
            return None;
        }
        if let Some(e) = id.and_then(|id| self.excepted.get(&(id, person.id))) {
            return Some(Evaluation::excepted(&e.granted_by, &e.reason, e.expires_at));
        }
        let start = Person {
            start_ms: person
                .employee_start_date
                .as_deref()
                .and_then(parse_date)
                .map(date_start_ms)
                .unwrap_or_else(|| date_start_ms(date_of_ms(person.joined_on))),
        };
        let records: Vec<compliance::Record<'_>> = self
            .counting(index, person)
            .map(|e| compliance::Record {
                content: e.content_id,
                title: self.title(e.content_id),
                enrolled_at: e.enrolled_at,
                due_at: e.due_at,
                completed_at: e.completed_at,
                triggered_at: e.joined.as_deref().and_then(triggered_at),
            })
            .collect();
        Some(compliance::evaluate(r, &start, &records, now))
    }

    /// Every person's evaluation against each of the first `n` requirements, in the order
    /// of `people` then requirements, each with its [`digest`]. On up to four threads
    /// (each evaluation formats its reason: at 100,000 people and four requirements, most
    /// of a full pass's CPU).
    pub(crate) fn evaluate_all(&self, n: usize, now: i64) -> Vec<Option<(Evaluation, i64)>> {
        let part = |people: &[PersonRow]| {
            let mut out = Vec::with_capacity(people.len() * n);
            for person in people {
                for index in 0..n {
                    out.push(self.evaluate(index, person, now).map(|e| {
                        let digest = digest(&e);
                        (e, digest)
                    }));
                }
            }
            out
        };
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get().min(4));
        if threads < 2 || self.people.len() < 2_000 {
            return part(&self.people);
        }
        let size = self.people.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = self
                .people
                .chunks(size)
                .map(|people| scope.spawn(move || part(people)))
                .collect();
            parts
                .into_iter()
                .flat_map(|part| part.join().expect("an evaluation does not panic"))
                .collect()
        })
    }

    /// The person's records for the `index`th requirement that `keep` keeps, as evidence
    /// shows them.
    pub(crate) fn records(
        &self,
        index: usize,
        person: &PersonRow,
        keep: impl Fn(i64, Option<i64>) -> bool,
    ) -> Vec<evidence::TrainingRecord> {
        self.counting(index, person)
            .filter(|e| keep(e.enrolled_at, e.completed_at))
            .map(|e| evidence::TrainingRecord {
                enrollment_id: e.id,
                content_id: e.content_id,
                content: self.title(e.content_id).to_owned(),
                campaign_id: e.campaign_id,
                enrolled_at: e.enrolled_at,
                due_at: e.due_at,
                completed_at: e.completed_at,
                score: e.score,
                triggered_at: e.joined.as_deref().and_then(triggered_at),
                source: e
                    .connection
                    .and_then(|c| self.synced.get(&c))
                    .map(|(name, _)| name.clone()),
            })
            .collect()
    }
}

/// Re-evaluates `users` (every person when `None`) against the account's requirements
/// (only `only` when given), in the caller's transaction, under the account's lock, and
/// writes what changed: people's rows, requirement counts and verdicts, control history.
pub(crate) async fn refresh(
    conn: &mut AnyConnection,
    account: i64,
    users: Option<&[i64]>,
    only: Option<i64>,
    now: i64,
) -> Result<Refreshed> {
    refresh_with(conn, None, account, users, only, now).await
}

/// [`refresh`]; with `aside` (a pool of other connections), a pass over everyone reads the
/// stored standings on one of them while `conn` reads the inputs. Only where nothing was
/// written in the caller's transaction before: the other connection sees what is
/// committed, which is then what the transaction sees (the account's lock keeps other
/// writers of its compliance out).
pub(crate) async fn refresh_with(
    conn: &mut AnyConnection,
    aside: Option<&sqlx::AnyPool>,
    account: i64,
    users: Option<&[i64]>,
    only: Option<i64>,
    now: i64,
) -> Result<Refreshed> {
    let backend = Backend::of_connection(conn);
    if users.is_some_and(<[i64]>::is_empty) {
        return Ok(Refreshed::default());
    }
    let started = std::time::Instant::now();
    let mut query = QueryBuilder::new(format!(
        "SELECT {REQUIREMENT_COLUMNS} FROM compliance_requirements WHERE account_id = "
    ));
    query.push_bind(account);
    if let Some(id) = only {
        query.push(" AND id = ").push_bind(id);
    }
    let rows: Vec<RequirementRow> = query.build_query_as().fetch_all(&mut *conn).await?;
    if rows.is_empty() {
        return Ok(Refreshed::default());
    }
    let requirements: Vec<RequirementState> = rows
        .into_iter()
        .map(RequirementState::try_from)
        .collect::<Result<_>>()?;
    let settings = requirements.iter().map(|r| (Some(r.id.0), &r.settings));
    let settings: Vec<(Option<i64>, &Requirement)> = settings.collect();
    let ids: Vec<i64> = requirements.iter().map(|r| r.id.0).collect();
    let (inputs, mut stored) = match (users, aside) {
        // Everyone, the stored standings read beside the inputs.
        (None, Some(pool)) => {
            let mut other = pool.acquire().await?;
            let (inputs, stored) = futures_util::future::join(
                Inputs::load(conn, Some(pool), account, users, settings, false, now),
                async {
                    let stored = stored_all(&mut other, account, &ids).await;
                    tracing::debug!(ms = started.elapsed().as_millis() as u64, "standings read");
                    stored
                },
            )
            .await;
            (inputs?, stored?)
        }
        (None, None) => {
            let inputs = Inputs::load(conn, None, account, users, settings, false, now).await?;
            (inputs, stored_all(conn, account, &ids).await?)
        }
        (Some(users), _) => {
            let inputs =
                Inputs::load(conn, None, account, Some(users), settings, false, now).await?;
            let mut stored: FxHashMap<(i64, i64), Stored> = FxHashMap::default();
            let mut query = QueryBuilder::new(
                "SELECT t.requirement_id, t.user_id, t.status, t.digest, t.since",
            );
            query.push_list(
                &backend.rows_listed("compliance_people", "user_id", 0),
                users,
            );
            query.push("t.account_id = ").push_bind(account);
            if let Some(id) = only {
                query.push(" AND t.requirement_id = ").push_bind(id);
            }
            let rows: Vec<StoredRow> = query.build_query_as().fetch_all(&mut *conn).await?;
            for row in rows {
                stored.insert(
                    (row.requirement_id, row.user_id),
                    Stored {
                        status: status_of(&row.status)?,
                        digest: row.digest,
                        since: row.since,
                    },
                );
            }
            (inputs, stored)
        }
    };
    let read = started.elapsed();

    // Evaluate; keep what differs from what is stored.
    let mut writes: Vec<StandingRecord> = Vec::new();
    let mut deltas: Vec<Counts> = vec![Counts::default(); requirements.len()];
    let mut refreshed = Refreshed::default();
    let evaluations = inputs.evaluate_all(requirements.len(), now);
    let mut evaluations = evaluations.into_iter();
    for person in &inputs.people {
        let id = &person.id;
        for (index, requirement) in requirements.iter().enumerate() {
            let key = (requirement.id.0, *id);
            let before = stored.remove(&key);
            let Some((evaluation, digest)) = evaluations.next().flatten() else {
                if let Some(before) = before {
                    deltas[index].add(before.status, -1);
                    refreshed.changed += 1;
                    delete_standing(conn, requirement.id.0, *id).await?;
                }
                continue;
            };
            if before.as_ref().is_some_and(|b| b.digest == Some(digest)) {
                continue;
            }
            let since = match &before {
                Some(b) if b.status == evaluation.status => b.since,
                _ => now,
            };
            if let Some(b) = &before {
                deltas[index].add(b.status, -1);
            }
            deltas[index].add(evaluation.status, 1);
            refreshed.earliest = earliest(refreshed.earliest, evaluation.next_change);
            writes.push(StandingRecord {
                requirement_id: requirement.id.0,
                user_id: *id,
                account_id: account,
                status: evaluation.status.as_str(),
                reason: evaluation.reason,
                deadline: evaluation.deadline,
                last_completed: evaluation.last_completed,
                changes_at: evaluation.next_change,
                since,
                digest,
            });
        }
    }
    // Rows of people asked about who no longer exist in the account, or, in a full pass,
    // of anyone not read (deleted people).
    for ((requirement, user), row) in stored {
        if let Some(index) = requirements.iter().position(|r| r.id.0 == requirement) {
            deltas[index].add(row.status, -1);
            refreshed.changed += 1;
            delete_standing(conn, requirement, user).await?;
        }
    }
    refreshed.changed += writes.len();
    let evaluated = started.elapsed();
    for chunk in writes.chunks(backend.rows_per_insert()) {
        let mut upsert = QueryBuilder::with(backend, "");
        upsert.push_records(backend, "compliance_people", chunk);
        upsert.push(
            " ON CONFLICT (requirement_id, user_id) DO UPDATE SET status = excluded.status, \
             reason = excluded.reason, deadline = excluded.deadline, \
             last_completed = excluded.last_completed, changes_at = excluded.changes_at, \
             since = excluded.since, digest = excluded.digest",
        );
        upsert.build().execute(&mut *conn).await?;
    }
    for (requirement, delta) in requirements.iter().zip(deltas) {
        if delta == Counts::default() {
            continue;
        }
        let mut counts = requirement.counts;
        counts.compliant += delta.compliant;
        counts.at_risk += delta.at_risk;
        counts.non_compliant += delta.non_compliant;
        counts.excepted += delta.excepted;
        let verdict = Verdict::of(counts.non_compliant as usize, counts.at_risk as usize);
        sqlx::query(
            "UPDATE compliance_requirements SET compliant = $1, at_risk = $2, \
             non_compliant = $3, excepted = $4, status = $5 WHERE id = $6",
        )
        .bind(counts.compliant)
        .bind(counts.at_risk)
        .bind(counts.non_compliant)
        .bind(counts.excepted)
        .bind(verdict.as_str())
        .bind(requirement.id.0)
        .execute(&mut *conn)
        .await?;
        if verdict != requirement.verdict {
            record_history(
                conn,
                account,
                requirement.settings.kind,
                None,
                verdict,
                &counts,
                now,
            )
            .await?;
        }
    }
    tracing::debug!(
        account,
        people = inputs.people.len(),
        changed = refreshed.changed,
        read_ms = read.as_millis() as u64,
        evaluate_ms = (evaluated - read).as_millis() as u64,
        write_ms = (started.elapsed() - evaluated).as_millis() as u64,
        "compliance refreshed"
    );
    Ok(refreshed)
}

/// Every stored standing of the requirements `ids`, read in bulk.
async fn stored_all(
    conn: &mut AnyConnection,
    account: i64,
    ids: &[i64],
) -> Result<FxHashMap<(i64, i64), Stored>> {
    let mut stored = FxHashMap::default();
    let mut bad = None;
    scan::each_standing(conn, account, ids, |row| match Status::parse(&row.status) {
        Some(status) => {
            stored.insert(
                (row.requirement_id, row.user_id),
                Stored {
                    status,
                    digest: row.digest,
                    since: row.since,
                },
            );
        }
        None => bad = Some(row.status.into_owned()),
    })
    .await?;
    match bad {
        Some(status) => Err(StoreError::Corrupt(format!("compliance status {status:?}"))),
        None => Ok(stored),
    }
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn status_of(text: &str) -> Result<Status> {
    Status::parse(text).ok_or_else(|| StoreError::Corrupt(format!("compliance status {text:?}")))
}

async fn delete_standing(conn: &mut AnyConnection, requirement: i64, user: i64) -> Result<()> {
    sqlx::query("DELETE FROM compliance_people WHERE requirement_id = $1 AND user_id = $2")
        .bind(requirement)
        .bind(user)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The condition (`AND …`, or nothing) that keeps of an account's enrolments only those
/// that can count for one of `requirements` (see [`counts`]): of a content piece or a
/// campaign one of them names. Nothing when one counts by the cause alone (event-triggered
/// training of any content). The ids are integers of ours, listed inline.
fn counted_only(
    requirements: &[(Option<i64>, &Requirement)],
    counted: &[Option<HashSet<i64>>],
) -> String {
    let mut content = Vec::new();
    let mut campaigns = Vec::new();
    for ((_, r), counted) in requirements.iter().zip(counted) {
        let Some(counted) = counted else {
            return String::new();
        };
        content.extend(counted.iter().copied());
        campaigns.extend(r.campaigns.iter().copied());
    }
    let list = |ids: &mut Vec<i64>| {
        ids.sort_unstable();
        ids.dedup();
        ids.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (content.is_empty(), campaigns.is_empty()) {
        (true, true) => " AND 1 = 0".to_owned(),
        (false, true) => format!(" AND content_id IN ({})", list(&mut content)),
        (true, false) => format!(" AND campaign_id IN ({})", list(&mut campaigns)),
        (false, false) => format!(
            " AND (content_id IN ({}) OR campaign_id IN ({}))",
            list(&mut content),
            list(&mut campaigns)
        ),
    }
}

/// The content ids a requirement counts when an admin picked none (`None`: look at the
/// enrolment's campaign or cause instead).
fn counted_content(
    r: &Requirement,
    content: &[(i64, String, String, String)],
) -> Option<HashSet<i64>> {
    if !r.content.is_empty() || !r.campaigns.is_empty() {
        return Some(r.content.iter().copied().collect());
    }
    match r.kind.default_slugs() {
        Some(slugs) => Some(
            content
                .iter()
                .filter(|(_, _, slug, _)| slugs.contains(&slug.as_str()))
                .map(|c| c.0)
                .collect(),
        ),
        None if r.kind == RequirementKind::EventTriggered => None,
        None => Some(
            content
                .iter()
                .filter(|(_, kind, _, _)| kind == "module")
                .map(|c| c.0)
                .collect(),
        ),
    }
}

/// Whether an enrolment counts for a requirement.
fn counts(r: &Requirement, content: Option<&HashSet<i64>>, e: &EnrolmentRow) -> bool {
    let picked =
        content.is_some_and(|c| c.contains(&e.content_id)) || r.campaigns.contains(&e.campaign_id);
    match r.kind {
        RequirementKind::EventTriggered => e.joined.is_some() && (content.is_none() || picked),
        _ => picked,
    }
}

/// Records a verdict for every control mapped to `kind` of the account's enabled
/// frameworks (only `framework`'s when given).
async fn record_history(
    conn: &mut AnyConnection,
    account: i64,
    kind: RequirementKind,
    framework: Option<&str>,
    verdict: Verdict,
    counts: &Counts,
    now: i64,
) -> Result<()> {
    let enabled: Vec<String> =
        sqlx::query_scalar("SELECT framework FROM compliance_frameworks WHERE account_id = $1")
            .bind(account)
            .fetch_all(&mut *conn)
            .await?;
    for control in compliance::CONTROLS.iter().filter(|c| {
        c.requirement == kind
            && enabled.iter().any(|f| f == c.framework)
            && framework.is_none_or(|f| f == c.framework)
    }) {
        sqlx::query(
            "INSERT INTO compliance_history (account_id, framework, control, status, \
             compliant, at_risk, non_compliant, excepted, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(account)
        .bind(control.framework)
        .bind(control.id)
        .bind(verdict.as_str())
        .bind(counts.compliant)
        .bind(counts.at_risk)
        .bind(counts.non_compliant)
        .bind(counts.excepted)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(crate) async fn requirements_of(
    conn: &mut AnyConnection,
    account: i64,
) -> Result<Vec<RequirementState>> {
    let rows: Vec<RequirementRow> = sqlx::query_as(&format!(
        "SELECT {REQUIREMENT_COLUMNS} FROM compliance_requirements WHERE account_id = $1 \
         ORDER BY id"
    ))
    .bind(account)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(RequirementState::try_from).collect()
}

impl FactChange {
    /// Re-evaluates these people's compliance before the change commits.
    pub fn recheck(&mut self, account: i64, users: impl IntoIterator<Item = i64>) {
        self.recheck.extend(users.into_iter().map(|u| (account, u)));
    }
}

/// Whether any of `accounts` has a compliance requirement (one read, so the event writer
/// only pays for a recheck where there is something to keep).
pub(crate) async fn any_requirements(
    conn: &mut AnyConnection,
    accounts: &HashSet<i64>,
) -> Result<bool> {
    let accounts: Vec<i64> = accounts.iter().copied().collect();
    let backend = Backend::of_connection(conn);
    let found: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT account_id FROM compliance_requirements WHERE {} LIMIT 1",
        backend.in_list("account_id", 1, ListOf::Integers)
    ))
    .bind(Backend::list(&accounts))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// Runs the rechecks a change asked for, in its transaction (see [`FactChange::recheck`]).
pub(crate) async fn recheck(
    conn: &mut AnyConnection,
    people: &[(i64, i64)],
    now: i64,
) -> Result<Option<i64>> {
    let mut by_account: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (account, user) in people {
        by_account.entry(*account).or_default().push(*user);
    }
    let mut due = None;
    for (account, mut users) in by_account {
        users.sort_unstable();
        users.dedup();
        let refreshed = refresh(conn, account, Some(&users), None, now).await?;
        due = earliest(due, refreshed.earliest);
    }
    Ok(due)
}

impl Store {
    /// The frameworks of the catalog, with when the account enabled each.
    pub async fn compliance_frameworks(&self, account: AccountId) -> Result<Vec<FrameworkState>> {
        let enabled: Vec<(String, i64)> = sqlx::query_as(
            "SELECT framework, enabled_at FROM compliance_frameworks WHERE account_id = $1",
        )
        .bind(account.0)
        .fetch_all(&self.read)
        .await?;
        Ok(compliance::FRAMEWORKS
            .iter()
            .map(|framework| FrameworkState {
                framework,
                enabled_at: enabled
                    .iter()
                    .find(|(f, _)| f == framework.id)
                    .map(|(_, at)| *at),
            })
            .collect())
    }

    /// Enables a framework: creates the requirements its controls ask for (with their
    /// defaults) that the account does not have yet, and evaluates everyone against them.
    pub async fn enable_framework(&self, account: AccountId, framework: &str) -> Result<()> {
        let Some(framework) = compliance::catalog::framework(framework) else {
            return Err(StoreError::NotFound("framework"));
        };
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let enabled: Option<i64> = sqlx::query_scalar(
            "SELECT enabled_at FROM compliance_frameworks WHERE account_id = $1 AND framework = $2",
        )
        .bind(account.0)
        .bind(framework.id)
        .fetch_optional(&mut *change.tx)
        .await?;
        if enabled.is_some() {
            return Ok(());
        }
        let mut kinds: Vec<RequirementKind> = compliance::catalog::controls_of(framework.id)
            .map(|c| c.requirement)
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in kinds {
            let r = Requirement::default_for(kind);
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO compliance_requirements (account_id, kind, title, content, \
                 campaigns, recurrence, new_hire_days, scope_group, tolerance_days, \
                 due_soon_days, completion_days, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, '[]', '[]', $4, $5, NULL, $6, $7, $8, 'pass', $9, $9) \
                 ON CONFLICT (account_id, kind) DO NOTHING RETURNING id",
            )
            .bind(account.0)
            .bind(kind.as_str())
            .bind(&r.title)
            .bind(recurrence_json(&r.recurrence))
            .bind(i64::from(r.new_hire_days))
            .bind(i64::from(r.tolerance_days))
            .bind(i64::from(r.due_soon_days))
            .bind(i64::from(r.completion_days))
            .bind(now)
            .fetch_optional(&mut *change.tx)
            .await?;
            if let Some(id) = id {
                let refreshed = refresh(&mut change.tx, account.0, None, Some(id), now).await?;
                change.wake_training(refreshed.earliest);
            }
        }
        // Enabled once its requirements are evaluated: where its controls stand from today
        // is recorded once, here.
        sqlx::query(
            "INSERT INTO compliance_frameworks (account_id, framework, enabled_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(account.0)
        .bind(framework.id)
        .bind(now)
        .execute(&mut *change.tx)
        .await?;
        for requirement in requirements_of(&mut change.tx, account.0).await? {
            record_history(
                &mut change.tx,
                account.0,
                requirement.settings.kind,
                Some(framework.id),
                requirement.verdict,
                &requirement.counts,
                now,
            )
            .await?;
        }
        change.commit(&self.wakes).await
    }

    /// Disables a framework: its controls are no longer listed; requirements stay (another
    /// framework may map to them, and enabling it again keeps the admin's settings).
    pub async fn disable_framework(&self, account: AccountId, framework: &str) -> Result<()> {
        if compliance::catalog::framework(framework).is_none() {
            return Err(StoreError::NotFound("framework"));
        }
        let mut change = self.change_facts(account).await?;
        sqlx::query("DELETE FROM compliance_frameworks WHERE account_id = $1 AND framework = $2")
            .bind(account.0)
            .bind(framework)
            .execute(&mut *change.tx)
            .await?;
        change.commit(&self.wakes).await
    }

    pub async fn compliance_requirements(
        &self,
        account: AccountId,
    ) -> Result<Vec<RequirementState>> {
        let mut conn = self.read.acquire().await?;
        requirements_of(&mut conn, account.0).await
    }

    pub async fn compliance_requirement(
        &self,
        account: AccountId,
        id: RequirementId,
    ) -> Result<RequirementState> {
        self.compliance_requirements(account)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(StoreError::NotFound("requirement"))
    }

    /// Replaces a requirement's settings (its kind stays) and evaluates everyone again.
    pub async fn update_requirement(
        &self,
        account: AccountId,
        id: RequirementId,
        settings: &Requirement,
    ) -> Result<RequirementState> {
        settings.validate().map_err(StoreError::Invalid)?;
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT kind FROM compliance_requirements WHERE account_id = $1 AND id = $2",
        )
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&mut *change.tx)
        .await?;
        let Some(kind) = kind else {
            return Err(StoreError::NotFound("requirement"));
        };
        if kind != settings.kind.as_str() {
            return Err(StoreError::invalid(
                "kind",
                format!("this requirement is {kind}; its kind cannot change"),
            ));
        }
        for (field, table, noun, ids) in [
            ("content", "content", "content", &settings.content),
            ("campaigns", "campaigns", "campaign", &settings.campaigns),
        ] {
            for (i, id) in ids.iter().enumerate() {
                let found: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT id FROM {table} WHERE account_id = $1 AND id = $2"
                ))
                .bind(account.0)
                .bind(*id)
                .fetch_optional(&mut *change.tx)
                .await?;
                if found.is_none() {
                    return Err(StoreError::invalid(
                        &format!("{field}[{i}]"),
                        format!("no {noun} with id {id}"),
                    ));
                }
            }
        }
        if let Some(group) = scope_group(&settings.scope) {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT id FROM groups WHERE account_id = $1 AND id = $2")
                    .bind(account.0)
                    .bind(group)
                    .fetch_optional(&mut *change.tx)
                    .await?;
            if found.is_none() {
                return Err(StoreError::invalid(
                    "scope.group_id",
                    format!("no group with id {group}"),
                ));
            }
        }
        sqlx::query(
            "UPDATE compliance_requirements SET title = $1, content = $2, campaigns = $3, \
             recurrence = $4, new_hire_days = $5, scope_group = $6, tolerance_days = $7, \
             due_soon_days = $8, completion_days = $9, updated_at = $10 WHERE id = $11",
        )
        .bind(settings.title.trim())
        .bind(Backend::list(&settings.content))
        .bind(Backend::list(&settings.campaigns))
        .bind(recurrence_json(&settings.recurrence))
        .bind(i64::from(settings.new_hire_days))
        .bind(scope_group(&settings.scope))
        .bind(i64::from(settings.tolerance_days))
        .bind(i64::from(settings.due_soon_days))
        .bind(i64::from(settings.completion_days))
        .bind(now)
        .bind(id.0)
        .execute(&mut *change.tx)
        .await?;
        let refreshed = refresh(&mut change.tx, account.0, None, Some(id.0), now).await?;
        change.wake_training(refreshed.earliest);
        change.commit(&self.wakes).await?;
        self.compliance_requirement(account, id).await
    }

    /// Every enabled framework's controls with their verdicts.
    pub async fn compliance_controls(&self, account: AccountId) -> Result<Vec<ControlState>> {
        let frameworks = self.compliance_frameworks(account).await?;
        let requirements = self.compliance_requirements(account).await?;
        let mut controls = Vec::new();
        for state in frameworks.iter().filter(|f| f.enabled_at.is_some()) {
            for control in compliance::catalog::controls_of(state.framework.id) {
                let Some(r) = requirements
                    .iter()
                    .find(|r| r.settings.kind == control.requirement)
                else {
                    continue;
                };
                controls.push(ControlState {
                    control,
                    requirement: r.id,
                    verdict: r.verdict,
                    counts: r.counts,
                });
            }
        }
        Ok(controls)
    }

    /// A control's verdicts over time, oldest first.
    pub async fn compliance_history(
        &self,
        account: AccountId,
        framework: &str,
        control: &str,
    ) -> Result<Vec<HistoryEntry>> {
        if compliance::catalog::control_of(framework, control).is_none() {
            return Err(StoreError::NotFound("control"));
        }
        Ok(sqlx::query_as(
            "SELECT status, compliant, at_risk, non_compliant, excepted, at \
             FROM compliance_history WHERE account_id = $1 AND framework = $2 \
             AND control = $3 ORDER BY id",
        )
        .bind(account.0)
        .bind(framework)
        .bind(control)
        .fetch_all(&self.read)
        .await?)
    }

    /// People's standing, by requirement then person; with the total.
    pub async fn compliance_people(
        &self,
        account: AccountId,
        filter: &PeopleFilter,
        page: crate::Page,
    ) -> Result<(Vec<PersonStanding>, i64)> {
        let push_filter = |query: &mut QueryBuilder<'_>| {
            query.push(" WHERE p.account_id = ").push_bind(account.0);
            if let Some(r) = filter.requirement {
                query.push(" AND p.requirement_id = ").push_bind(r.0);
            }
            if let Some(s) = filter.status {
                query.push(" AND p.status = ").push_bind(s.as_str());
            }
            if let Some(u) = filter.user {
                query.push(" AND p.user_id = ").push_bind(u.0);
            }
        };
        let mut select = QueryBuilder::new(
            "SELECT p.requirement_id, r.kind, p.user_id, u.email, u.first_name, u.last_name, \
             p.status, p.reason, p.deadline, p.last_completed, p.since, p.changes_at, \
             (SELECT MIN(c.name) FROM sync_people sp JOIN sync_connections c \
              ON c.id = sp.connection_id WHERE sp.user_id = p.user_id AND sp.created = ",
        );
        // The page is chosen first, from the standings alone: the people, their
        // requirement and their source are then read for its rows only, not for every
        // row a deep page skips.
        select
            .push_bind(true)
            .push(") AS source FROM (SELECT * FROM compliance_people p");
        push_filter(&mut select);
        select
            .push(" ORDER BY p.requirement_id, p.user_id LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset())
            .push(
                ") p JOIN compliance_requirements r ON r.id = p.requirement_id \
                 JOIN users u ON u.id = p.user_id ORDER BY p.requirement_id, p.user_id",
            );
        let mut rows: Vec<PersonStanding> = select.build_query_as().fetch_all(&self.read).await?;
        let total = self
            .page_total(page, rows.len(), "compliance_people p", push_filter)
            .await?;
        let now = self.now_ms();
        for row in &mut rows {
            if let Some(status) = Status::parse(&row.status) {
                row.reason = compliance::evaluate::describe(&row.reason, status, row.deadline, now);
            }
        }
        Ok((rows, total))
    }

    /// Excludes a person from a requirement until `expires_at` (or for good).
    pub async fn grant_exception(
        &self,
        account: AccountId,
        new: &NewException,
    ) -> Result<Exception> {
        let reason = new.reason.trim();
        if reason.is_empty() || reason.chars().count() > 1000 {
            return Err(StoreError::invalid(
                "reason",
                "between 1 and 1000 characters: why the person is excepted",
            ));
        }
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(StoreError::invalid("expires_at", "must be in the future"));
        }
        let requirement: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM compliance_requirements WHERE account_id = $1 AND id = $2",
        )
        .bind(account.0)
        .bind(new.requirement.0)
        .fetch_optional(&mut *change.tx)
        .await?;
        if requirement.is_none() {
            return Err(StoreError::invalid(
                "requirement_id",
                format!("no requirement with id {}", new.requirement),
            ));
        }
        let user: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND id = $2")
                .bind(account.0)
                .bind(new.user.0)
                .fetch_optional(&mut *change.tx)
                .await?;
        if user.is_none() {
            return Err(StoreError::invalid(
                "user_id",
                format!("no person with id {}", new.user),
            ));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO compliance_exceptions (account_id, requirement_id, user_id, reason, \
             granted_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(account.0)
        .bind(new.requirement.0)
        .bind(new.user.0)
        .bind(reason)
        .bind(&new.granted_by)
        .bind(now)
        .bind(new.expires_at)
        .fetch_one(&mut *change.tx)
        .await?;
        let refreshed = refresh(&mut change.tx, account.0, Some(&[new.user.0]), None, now).await?;
        change.wake_training(refreshed.earliest);
        change.commit(&self.wakes).await?;
        self.compliance_exception(account, ExceptionId(id)).await
    }

    /// Ends an exception now.
    pub async fn revoke_exception(&self, account: AccountId, id: ExceptionId) -> Result<Exception> {
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let user: Option<i64> = sqlx::query_scalar(
            "UPDATE compliance_exceptions SET revoked_at = $1 \
             WHERE account_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING user_id",
        )
        .bind(now)
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&mut *change.tx)
        .await?;
        let Some(user) = user else {
            // Unknown, or revoked already: say which.
            drop(change);
            let existing = self.compliance_exception(account, id).await?;
            return Ok(existing);
        };
        let refreshed = refresh(&mut change.tx, account.0, Some(&[user]), None, now).await?;
        change.wake_training(refreshed.earliest);
        change.commit(&self.wakes).await?;
        self.compliance_exception(account, id).await
    }

    pub async fn compliance_exception(
        &self,
        account: AccountId,
        id: ExceptionId,
    ) -> Result<Exception> {
        sqlx::query_as(
            "SELECT id, requirement_id, user_id, reason, granted_by, created_at, expires_at, \
             revoked_at FROM compliance_exceptions WHERE account_id = $1 AND id = $2",
        )
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound("exception"))
    }

    /// Every exception of the account, newest first.
    pub async fn compliance_exceptions(&self, account: AccountId) -> Result<Vec<Exception>> {
        Ok(sqlx::query_as(
            "SELECT id, requirement_id, user_id, reason, granted_by, created_at, expires_at, \
             revoked_at FROM compliance_exceptions WHERE account_id = $1 ORDER BY id DESC",
        )
        .bind(account.0)
        .fetch_all(&self.read)
        .await?)
    }

    /// Evaluates everyone in the account against every requirement again (what is stored
    /// is kept current by every change; this is the full pass, for a check or a
    /// benchmark). Returns how many rows changed.
    pub async fn evaluate_compliance(&self, account: AccountId) -> Result<usize> {
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let refreshed =
            refresh_with(&mut change.tx, Some(&self.read), account.0, None, None, now).await?;
        change.wake_training(refreshed.earliest);
        change.commit(&self.wakes).await?;
        self.analyze_after("compliance_people", refreshed.changed)
            .await;
        Ok(refreshed.changed)
    }

    /// Re-evaluates the people whose status changes by itself by now, account by
    /// account, each under its lock. Returns how many rows changed.
    pub async fn run_due_compliance(&self) -> Result<usize> {
        let due: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT account_id, user_id FROM compliance_people \
             WHERE changes_at IS NOT NULL AND changes_at <= $1 LIMIT 10000",
        )
        .bind(self.now_ms())
        .fetch_all(&self.read)
        .await?;
        let mut by_account: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (account, user) in due {
            by_account.entry(account).or_default().push(user);
        }
        let mut changed = 0;
        for (account, mut users) in by_account {
            users.sort_unstable();
            users.dedup();
            let mut change = self.change_facts(AccountId(account)).await?;
            let now = change.now;
            let refreshed = refresh(&mut change.tx, account, Some(&users), None, now).await?;
            change.wake_training(refreshed.earliest);
            change.commit(&self.wakes).await?;
            changed += refreshed.changed;
        }
        Ok(changed)
    }
}
