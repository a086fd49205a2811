//! Remote sync connections (see `migrations/*/…_remote_sync.sql`): Reporting APIs whose
//! people and enrolments compliance evaluates beside the account's own.
//!
//! A sync is a run of stages — people (active, then archived), campaigns, enrolments —
//! read a page at a time. Each page is applied in one change of facts together with the
//! progress after it ([`Store::apply_sync_page`]), so a run interrupted anywhere resumes
//! at the first page not applied and never leaves one half-applied. A node holds a
//! connection's run with a lease renewed by every page; a run whose node died is taken
//! over once its lease has passed. The run ends by sweeping what the remote no longer
//! lists ([`Store::finish_sync`]).
//!
//! Remote people are matched to the account's people by email (aliases included); one
//! with no match is added as a person marked with the connection (and archived when the
//! remote no longer lists them), but not enrolled in this installation's campaigns:
//! their training happens where they came from.

use crate::db::Flag;
use crate::fact_change::FactChange;
use crate::sql::{QueryBuilder, Record, Separated};
use crate::{Result, Store, StoreError};
use coachloop_core::compliance::remote::Counting;
use coachloop_core::identity::Email;
use coachloop_core::ids::{AccountId, ConnectionId, UserId};
use coachloop_core::user::{UserChanges, UserStatus};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// The stages of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `/v1/users?status=active`.
    People,
    /// `/v1/users?status=archived`.
    ArchivedPeople,
    /// `/v1/training/campaigns` (one page: the reference does not page it).
    Campaigns,
    /// `/v1/training/enrollments`.
    Enrollments,
}

impl Stage {
    pub const ALL: [Self; 4] = [
        Self::People,
        Self::ArchivedPeople,
        Self::Campaigns,
        Self::Enrollments,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::People => "people",
            Self::ArchivedPeople => "archived_people",
            Self::Campaigns => "campaigns",
            Self::Enrollments => "enrollments",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The stage after this one (`None`: the run is done).
    pub fn next(self) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s > self)
    }
}

/// Where a run resumes: a stage and its next page (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub stage: Stage,
    pub page: i64,
}

/// A connection as its API shows it (the key only by its last characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub account_id: AccountId,
    pub name: String,
    pub region: Option<String>,
    pub base_url: String,
    pub key_hint: String,
    pub requirements: Counting,
    pub interval_minutes: i64,
    pub next_sync_at: i64,
    /// The node syncing it now, and until when it holds the run.
    pub lease_holder: Option<String>,
    pub lease_until: Option<i64>,
    /// The run under way or interrupted: when it began, where it resumes, how many
    /// enrolments it skipped so far.
    pub run_started_at: Option<i64>,
    pub position: Option<Position>,
    pub run_skipped: i64,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Failures since the last success.
    pub failures: i64,
    /// As of the last success: remote people, campaigns and enrolments kept, and
    /// enrolments skipped because their person is not known.
    pub people: i64,
    pub campaigns: i64,
    pub enrollments: i64,
    pub skipped: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Connection {
    /// Whether a run holds it now.
    pub fn syncing(&self, now: i64) -> bool {
        self.lease_until.is_some_and(|until| until >= now)
    }
}

const COLUMNS: &str = "id, account_id, name, region, base_url, key_hint, requirements, \
    interval_minutes, next_sync_at, lease_holder, lease_until, run_started_at, stage, \
    next_page, run_skipped, last_success_at, last_error, last_error_at, failures, people, \
    campaigns, enrollments, skipped, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ConnectionRow {
    id: i64,
    account_id: i64,
    name: String,
    region: Option<String>,
    base_url: String,
    key_hint: String,
    requirements: String,
    interval_minutes: i64,
    next_sync_at: i64,
    lease_holder: Option<String>,
    lease_until: Option<i64>,
    run_started_at: Option<i64>,
    stage: Option<String>,
    next_page: Option<i64>,
    run_skipped: i64,
    last_success_at: Option<i64>,
    last_error: Option<String>,
    last_error_at: Option<i64>,
    failures: i64,
    people: i64,
    campaigns: i64,
    enrollments: i64,
    skipped: i64,
    created_at: i64,
    updated_at: i64,
}

fn counting(id: i64, text: &str) -> Result<Counting> {
    serde_json::from_str(text)
        .ok()
        .and_then(|v| Counting::from_json(&v, "requirements").ok())
        .ok_or_else(|| StoreError::Corrupt(format!("requirements of sync connection {id}")))
}

impl TryFrom<ConnectionRow> for Connection {
    type Error = StoreError;

    fn try_from(row: ConnectionRow) -> Result<Self> {
        let position = match (row.stage.as_deref(), row.next_page) {
            (Some(stage), Some(page)) => Some(Position {
                stage: Stage::parse(stage).ok_or_else(|| {
                    StoreError::Corrupt(format!("stage {stage:?} of sync connection {}", row.id))
                })?,
                page,
            }),
            _ => None,
        };
        Ok(Self {
            id: ConnectionId(row.id),
            account_id: AccountId(row.account_id),
            requirements: counting(row.id, &row.requirements)?,
            name: row.name,
            region: row.region,
            base_url: row.base_url,
            key_hint: row.key_hint,
            interval_minutes: row.interval_minutes,
            next_sync_at: row.next_sync_at,
            lease_holder: row.lease_holder,
            lease_until: row.lease_until,
            run_started_at: row.run_started_at,
            position,
            run_skipped: row.run_skipped,
            last_success_at: row.last_success_at,
            last_error: row.last_error,
            last_error_at: row.last_error_at,
            failures: row.failures,
            people: row.people,
            campaigns: row.campaigns,
            enrollments: row.enrollments,
            skipped: row.skipped,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A new connection; the key already sealed by the caller.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub name: String,
    pub region: Option<String>,
    pub base_url: String,
    pub key_sealed: Vec<u8>,
    pub key_hint: String,
    pub requirements: Counting,
    pub interval_minutes: i64,
}

/// Changes to a connection; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConnectionChanges {
    pub name: Option<String>,
    /// Both set together: a region (with its base URL) or a base URL alone.
    pub place: Option<(Option<String>, String)>,
    pub key: Option<(Vec<u8>, String)>,
    pub requirements: Option<Counting>,
    pub interval_minutes: Option<i64>,
}

/// A connection claimed for a run, with its sealed key.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub connection: Connection,
    pub key_sealed: Vec<u8>,
    /// Where the run starts: a new run at its first page, or an interrupted one where it
    /// stopped.
    pub position: Position,
    pub run_started_at: i64,
}

/// A remote person as a page of `/v1/users` gives them.
#[derive(Debug, Clone)]
pub struct RemotePerson {
    pub remote_id: i64,
    pub email: Email,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub employee_start_date: Option<String>,
    pub archived: bool,
}

/// A remote training campaign.
#[derive(Debug, Clone)]
pub struct RemoteCampaign {
    pub remote_id: i64,
    pub name: String,
    pub status: String,
    /// `Specific End Date` campaigns: when they end.
    pub end_date: Option<i64>,
    /// `Relative Duration` campaigns: "1 week", …
    pub relative_duration: Option<String>,
}

/// A remote enrolment.
#[derive(Debug, Clone)]
pub struct RemoteEnrolment {
    pub remote_id: i64,
    pub user_remote_id: i64,
    pub user_email: Option<String>,
    pub campaign_id: Option<i64>,
    pub campaign_name: Option<String>,
    pub module_name: String,
    pub content_type: String,
    pub status: String,
    pub enrolled_at: i64,
    pub completed_at: Option<i64>,
}

/// One page of a stage, parsed whole before anything of it is applied.
#[derive(Debug, Clone)]
pub enum SyncPage {
    People(Vec<RemotePerson>),
    Campaigns(Vec<RemoteCampaign>),
    Enrolments(Vec<RemoteEnrolment>),
}

impl SyncPage {
    pub fn len(&self) -> usize {
        match self {
            Self::People(rows) => rows.len(),
            Self::Campaigns(rows) => rows.len(),
            Self::Enrolments(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What applying a page did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub rows: usize,
    /// Enrolments whose person is not known (neither listed by the remote nor here).
    pub skipped: usize,
    /// People added to the account.
    pub added: usize,
}

/// A run's lease was lost: another node took the connection over (this node stalled
/// for longer than the lease).
fn lease_lost() -> StoreError {
    StoreError::Conflict(coachloop_core::FieldError::new(
        "lease",
        "another node took this sync over",
    ))
}

fn ms(duration: Duration) -> i64 {
    duration.as_millis() as i64
}

#[derive(Serialize)]
struct EnrolmentRecord {
    connection_id: i64,
    remote_id: i64,
    account_id: i64,
    user_id: i64,
    campaign_id: Option<i64>,
    campaign_name: Option<String>,
    module_name: String,
    content_type: String,
    status: String,
    enrolled_at: i64,
    due_at: Option<i64>,
    completed_at: Option<i64>,
    synced_at: i64,
}

impl Record for EnrolmentRecord {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("connection_id", "bigint"),
        ("remote_id", "bigint"),
        ("account_id", "bigint"),
        ("user_id", "bigint"),
        ("campaign_id", "bigint"),
        ("campaign_name", "text"),
        ("module_name", "text"),
        ("content_type", "text"),
        ("status", "text"),
        ("enrolled_at", "bigint"),
        ("due_at", "bigint"),
        ("completed_at", "bigint"),
        ("synced_at", "bigint"),
    ];

    fn bind<'args>(&self, row: &mut Separated<'_, 'args>) {
        row.push_bind(self.connection_id)
            .push_bind(self.remote_id)
            .push_bind(self.account_id)
            .push_bind(self.user_id)
            .push_bind(self.campaign_id)
            .push_bind(self.campaign_name.clone())
            .push_bind(self.module_name.clone())
            .push_bind(self.content_type.clone())
            .push_bind(self.status.clone())
            .push_bind(self.enrolled_at)
            .push_bind(self.due_at)
            .push_bind(self.completed_at)
            .push_bind(self.synced_at);
    }
}

/// The connections of an account: each one's name and the rule of what its enrolments
/// count for (empty when it has none: nothing else is read).
pub(crate) async fn countings(
    conn: &mut sqlx::AnyConnection,
    account: i64,
) -> Result<HashMap<i64, (String, Counting)>> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, name, requirements FROM sync_connections WHERE account_id = $1")
            .bind(account)
            .fetch_all(&mut *conn)
            .await?;
    rows.into_iter()
        .map(|(id, name, text)| Ok((id, (name, counting(id, &text)?))))
        .collect()
}

impl Store {
    pub async fn sync_connections(&self, account: AccountId) -> Result<Vec<Connection>> {
        let rows: Vec<ConnectionRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM sync_connections WHERE account_id = $1 ORDER BY id"
        ))
        .bind(account.0)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(Connection::try_from).collect()
    }

    pub async fn sync_connection(
        &self,
        account: AccountId,
        id: ConnectionId,
    ) -> Result<Connection> {
        let row: Option<ConnectionRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM sync_connections WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        row.ok_or(StoreError::NotFound("sync connection"))?
            .try_into()
    }

    /// The connection's sealed key.
    pub async fn sync_key(&self, account: AccountId, id: ConnectionId) -> Result<Vec<u8>> {
        let key: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT key_sealed FROM sync_connections WHERE account_id = $1 AND id = $2",
        )
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        key.ok_or(StoreError::NotFound("sync connection"))
    }

    /// Adds a connection; its first sync is due at once.
    pub async fn create_sync_connection(
        &self,
        account: AccountId,
        new: &NewConnection,
    ) -> Result<Connection> {
        let now = self.now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sync_connections (account_id, name, region, base_url, key_sealed, \
             key_hint, requirements, interval_minutes, next_sync_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9) RETURNING id",
        )
        .bind(account.0)
        .bind(&new.name)
        .bind(&new.region)
        .bind(&new.base_url)
        .bind(&new.key_sealed)
        .bind(&new.key_hint)
        .bind(new.requirements.to_json().to_string())
        .bind(new.interval_minutes)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| name_conflict(e, &new.name))?;
        self.wakes.sync_due(now);
        self.sync_connection(account, ConnectionId(id)).await
    }

    /// Changes a connection. A new rule of what counts re-evaluates the people with
    /// enrolments from it, in the same transaction.
    pub async fn update_sync_connection(
        &self,
        account: AccountId,
        id: ConnectionId,
        changes: &ConnectionChanges,
    ) -> Result<Connection> {
        let mut change = self.change_facts(account).await?;
        let mut update = QueryBuilder::new("UPDATE sync_connections SET updated_at = ");
        update.push_bind(change.now);
        if let Some(name) = &changes.name {
            update.push(", name = ").push_bind(name.clone());
        }
        if let Some((region, base_url)) = &changes.place {
            update
                .push(", region = ")
                .push_bind(region.clone())
                .push(", base_url = ")
                .push_bind(base_url.clone());
        }
        if let Some((sealed, hint)) = &changes.key {
            update
                .push(", key_sealed = ")
                .push_bind(sealed.clone())
                .push(", key_hint = ")
                .push_bind(hint.clone());
        }
        if let Some(requirements) = &changes.requirements {
            update
                .push(", requirements = ")
                .push_bind(requirements.to_json().to_string());
        }
        if let Some(minutes) = changes.interval_minutes {
            update.push(", interval_minutes = ").push_bind(minutes);
        }
        update
            .push(" WHERE account_id = ")
            .push_bind(account.0)
            .push(" AND id = ")
            .push_bind(id.0);
        let done = update
            .build()
            .execute(&mut *change.tx)
            .await
            .map_err(|e| name_conflict(e, changes.name.as_deref().unwrap_or_default()))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("sync connection"));
        }
        if changes.requirements.is_some() {
            let users = synced_people(&mut change, id).await?;
            change.recheck(account.0, users);
        }
        change.commit(&self.wakes).await?;
        self.sync_connection(account, id).await
    }

    /// Removes a connection and what it synced: its enrolments stop counting, and the
    /// people it added are archived.
    pub async fn delete_sync_connection(&self, account: AccountId, id: ConnectionId) -> Result<()> {
        let mut change = self.change_facts(account).await?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM sync_connections WHERE account_id = $1 AND id = $2")
                .bind(account.0)
                .bind(id.0)
                .fetch_optional(&mut *change.tx)
                .await?;
        if found.is_none() {
            return Err(StoreError::NotFound("sync connection"));
        }
        let users = synced_people(&mut change, id).await?;
        let added: Vec<i64> = sqlx::query_scalar(
            "SELECT user_id FROM sync_people WHERE connection_id = $1 AND created = $2",
        )
        .bind(id.0)
        .bind(true)
        .fetch_all(&mut *change.tx)
        .await?;
        archive(&mut change, account, &added).await?;
        for table in ["sync_enrollments", "sync_campaigns", "sync_people"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE connection_id = $1"))
                .bind(id.0)
                .execute(&mut *change.tx)
                .await?;
        }
        sqlx::query("DELETE FROM sync_connections WHERE id = $1")
            .bind(id.0)
            .execute(&mut *change.tx)
            .await?;
        let people: Vec<UserId> = added.iter().copied().map(UserId).collect();
        let outcome = crate::groups::settle_people(&mut change, account, &people).await?;
        change.wake_for(&outcome);
        change.recheck(account.0, users.into_iter().chain(added));
        change.commit(&self.wakes).await
    }

    /// Makes the connection's next sync due now (an admin's "sync now").
    pub async fn request_sync(&self, account: AccountId, id: ConnectionId) -> Result<Connection> {
        let now = self.now_ms();
        let done = sqlx::query(
            "UPDATE sync_connections SET next_sync_at = $1 WHERE account_id = $2 AND id = $3",
        )
        .bind(now)
        .bind(account.0)
        .bind(id.0)
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("sync connection"));
        }
        self.wakes.sync_due(now);
        self.sync_connection(account, id).await
    }

    /// When the next sync of any account is due (or a run held by a node that died can
    /// be taken over).
    pub async fn next_sync_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_sync_at \
             THEN lease_until ELSE next_sync_at END) FROM sync_connections",
        )
        .fetch_one(&self.read)
        .await?)
    }

    /// Claims a connection for a run, as `holder`, for `hold`: `id`'s (even if not due:
    /// a manual sync), else the one due longest. `None`: nothing due, or `id` is held by
    /// another run.
    pub async fn claim_sync(
        &self,
        id: Option<(AccountId, ConnectionId)>,
        holder: &str,
        hold: Duration,
    ) -> Result<Option<Claimed>> {
        let now = self.now_ms();
        let free = "(lease_until IS NULL OR lease_until < $2 OR lease_holder = $3)";
        let sql = match id {
            Some(_) => format!(
                "UPDATE sync_connections SET lease_holder = $3, lease_until = $1 \
                 WHERE id = $4 AND account_id = $5 AND {free} RETURNING id"
            ),
            None => format!(
                "UPDATE sync_connections SET lease_holder = $3, lease_until = $1 \
                 WHERE id = (SELECT id FROM sync_connections WHERE next_sync_at <= $2 \
                 AND {free} ORDER BY next_sync_at LIMIT 1) AND {free} RETURNING id"
            ),
        };
        let mut query = sqlx::query_scalar::<_, i64>(&sql)
            .bind(now + ms(hold))
            .bind(now)
            .bind(holder);
        if let Some((account, id)) = id {
            query = query.bind(id.0).bind(account.0);
        }
        let Some(claimed) = query.fetch_optional(&self.write).await? else {
            return Ok(None);
        };
        // A new run starts at its first page; an interrupted one goes on where it stopped.
        sqlx::query(
            "UPDATE sync_connections SET run_started_at = $1, stage = $2, next_page = 1, \
             run_skipped = 0 WHERE id = $3 AND run_started_at IS NULL",
        )
        .bind(now)
        .bind(Stage::People.as_str())
        .bind(claimed)
        .execute(&self.write)
        .await?;
        let row: ConnectionRow = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM sync_connections WHERE id = $1"
        ))
        .bind(claimed)
        .fetch_one(&self.write)
        .await?;
        let key_sealed: Vec<u8> =
            sqlx::query_scalar("SELECT key_sealed FROM sync_connections WHERE id = $1")
                .bind(claimed)
                .fetch_one(&self.write)
                .await?;
        let connection = Connection::try_from(row)?;
        let (Some(position), Some(run_started_at)) =
            (connection.position, connection.run_started_at)
        else {
            return Err(StoreError::Corrupt(format!(
                "sync connection {claimed} claimed without a run"
            )));
        };
        Ok(Some(Claimed {
            connection,
            key_sealed,
            position,
            run_started_at,
        }))
    }

    /// Applies one page of a run and records where the run goes on (`next`; `None`: the
    /// last stage is done), in one change of facts; renews the run's lease for `hold`.
    /// Fails without applying anything if `holder` no longer holds the run.
    pub async fn apply_sync_page(
        &self,
        claimed: &Claimed,
        holder: &str,
        hold: Duration,
        page: &SyncPage,
        next: Option<Position>,
    ) -> Result<Applied> {
        let connection = &claimed.connection;
        let account = connection.account_id;
        let id = connection.id.0;
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let renewed = sqlx::query(
            "UPDATE sync_connections SET lease_until = $1, stage = $2, next_page = $3 \
             WHERE id = $4 AND lease_holder = $5 AND lease_until >= $6",
        )
        .bind(now + ms(hold))
        .bind(next.map(|p| p.stage.as_str()))
        .bind(next.map(|p| p.page))
        .bind(id)
        .bind(holder)
        .bind(now)
        .execute(&mut *change.tx)
        .await?;
        if renewed.rows_affected() == 0 {
            return Err(lease_lost());
        }
        let started = claimed.run_started_at;
        let applied = match page {
            SyncPage::People(rows) => apply_people(&mut change, connection, rows, started).await?,
            SyncPage::Campaigns(rows) => {
                for c in rows {
                    sqlx::query(
                        "INSERT INTO sync_campaigns (connection_id, remote_id, name, status, \
                         end_date, relative_duration, synced_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (connection_id, remote_id) DO UPDATE SET name = excluded.name, \
                         status = excluded.status, end_date = excluded.end_date, \
                         relative_duration = excluded.relative_duration, synced_at = excluded.synced_at",
                    )
                    .bind(id)
                    .bind(c.remote_id)
                    .bind(&c.name)
                    .bind(&c.status)
                    .bind(c.end_date)
                    .bind(&c.relative_duration)
                    .bind(started)
                    .execute(&mut *change.tx)
                    .await?;
                }
                Applied {
                    rows: rows.len(),
                    ..Applied::default()
                }
            }
            SyncPage::Enrolments(rows) => {
                apply_enrolments(&mut change, connection, rows, started).await?
            }
        };
        if applied.skipped > 0 {
            sqlx::query("UPDATE sync_connections SET run_skipped = run_skipped + $1 WHERE id = $2")
                .bind(applied.skipped as i64)
                .bind(id)
                .execute(&mut *change.tx)
                .await?;
        }
        change.commit(&self.wakes).await?;
        Ok(applied)
    }

    /// Ends a run: what the remote no longer lists is removed (enrolments, campaigns) or
    /// archived (people the sync added), the counts are kept, and the next sync is due
    /// one interval from now.
    pub async fn finish_sync(&self, claimed: &Claimed, holder: &str) -> Result<Connection> {
        let connection = &claimed.connection;
        let account = connection.account_id;
        let id = connection.id.0;
        let started = claimed.run_started_at;
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sync_connections WHERE id = $1 AND lease_holder = $2 \
             AND lease_until >= $3",
        )
        .bind(id)
        .bind(holder)
        .bind(now)
        .fetch_optional(&mut *change.tx)
        .await?;
        if held.is_none() {
            return Err(lease_lost());
        }
        let gone: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT user_id FROM sync_enrollments WHERE connection_id = $1 \
             AND synced_at < $2",
        )
        .bind(id)
        .bind(started)
        .fetch_all(&mut *change.tx)
        .await?;
        sqlx::query("DELETE FROM sync_enrollments WHERE connection_id = $1 AND synced_at < $2")
            .bind(id)
            .bind(started)
            .execute(&mut *change.tx)
            .await?;
        sqlx::query("DELETE FROM sync_campaigns WHERE connection_id = $1 AND synced_at < $2")
            .bind(id)
            .bind(started)
            .execute(&mut *change.tx)
            .await?;
        let left: Vec<i64> = sqlx::query_scalar(
            "SELECT user_id FROM sync_people WHERE connection_id = $1 AND synced_at < $2 \
             AND created = $3",
        )
        .bind(id)
        .bind(started)
        .bind(true)
        .fetch_all(&mut *change.tx)
        .await?;
        archive(&mut change, account, &left).await?;
        sqlx::query("DELETE FROM sync_people WHERE connection_id = $1 AND synced_at < $2")
            .bind(id)
            .bind(started)
            .execute(&mut *change.tx)
            .await?;
        let count =
            |table: &str| format!("(SELECT COUNT(*) FROM {table} WHERE connection_id = $1)");
        sqlx::query(&format!(
            "UPDATE sync_connections SET people = {}, campaigns = {}, enrollments = {}, \
             skipped = run_skipped, last_success_at = $2, failures = 0, \
             next_sync_at = $2 + interval_minutes * 60000, lease_holder = NULL, \
             lease_until = NULL, run_started_at = NULL, stage = NULL, next_page = NULL \
             WHERE id = $1",
            count("sync_people"),
            count("sync_campaigns"),
            count("sync_enrollments"),
        ))
        .bind(id)
        .bind(now)
        .execute(&mut *change.tx)
        .await?;
        let people: Vec<UserId> = left.iter().copied().map(UserId).collect();
        let outcome = crate::groups::settle_people(&mut change, account, &people).await?;
        change.wake_for(&outcome);
        change.recheck(account.0, gone.into_iter().chain(left));
        change.commit(&self.wakes).await?;
        self.sync_connection(account, connection.id).await
    }

    /// Records a run's failure and frees the connection; the run resumes where it
    /// stopped at `retry_at`.
    pub async fn fail_sync(
        &self,
        claimed: &Claimed,
        holder: &str,
        error: &str,
        retry_at: i64,
    ) -> Result<()> {
        let now = self.now_ms();
        sqlx::query(
            "UPDATE sync_connections SET last_error = $1, last_error_at = $2, \
             failures = failures + 1, next_sync_at = $3, lease_holder = NULL, \
             lease_until = NULL WHERE id = $4 AND lease_holder = $5",
        )
        .bind(error)
        .bind(now)
        .bind(retry_at)
        .bind(claimed.connection.id.0)
        .bind(holder)
        .execute(&self.write)
        .await?;
        self.wakes.sync_due(retry_at);
        Ok(())
    }

    /// Renews a run's lease while it waits (a `Retry-After`); fails if it was lost.
    pub async fn renew_sync(&self, claimed: &Claimed, holder: &str, hold: Duration) -> Result<()> {
        let now = self.now_ms();
        let done = sqlx::query(
            "UPDATE sync_connections SET lease_until = $1 WHERE id = $2 AND lease_holder = $3 \
             AND lease_until >= $4",
        )
        .bind(now + ms(hold))
        .bind(claimed.connection.id.0)
        .bind(holder)
        .bind(now)
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost());
        }
        Ok(())
    }

    /// The campaigns last synced from a connection: `(remote id, name, status)`.
    pub async fn synced_campaigns(
        &self,
        account: AccountId,
        id: ConnectionId,
    ) -> Result<Vec<(i64, String, String)>> {
        self.sync_connection(account, id).await?;
        Ok(sqlx::query_as(
            "SELECT remote_id, name, status FROM sync_campaigns WHERE connection_id = $1 \
             ORDER BY remote_id",
        )
        .bind(id.0)
        .fetch_all(&self.read)
        .await?)
    }
}

fn name_conflict(err: sqlx::Error, name: &str) -> StoreError {
    if crate::is_unique_violation(&err) {
        StoreError::conflict(
            "name",
            format!("a connection named `{name}` exists already"),
        )
    } else {
        err.into()
    }
}

/// The people with enrolments synced by connection `id`.
async fn synced_people(change: &mut FactChange, id: ConnectionId) -> Result<Vec<i64>> {
    Ok(
        sqlx::query_scalar(
            "SELECT DISTINCT user_id FROM sync_enrollments WHERE connection_id = $1",
        )
        .bind(id.0)
        .fetch_all(&mut *change.tx)
        .await?,
    )
}

async fn archive(change: &mut FactChange, account: AccountId, users: &[i64]) -> Result<()> {
    let archived = UserChanges {
        status: Some(UserStatus::Archived),
        ..UserChanges::default()
    };
    for user in users {
        crate::users::update_user(
            &mut change.tx,
            account,
            UserId(*user),
            &archived,
            change.now,
        )
        .await?;
    }
    Ok(())
}

/// The remote ids of `rows` already matched to people here: remote id → (user, added by
/// the sync).
async fn matched(
    change: &mut FactChange,
    connection: i64,
    remote_ids: impl Iterator<Item = i64>,
) -> Result<HashMap<i64, (i64, bool)>> {
    let ids: BTreeSet<i64> = remote_ids.collect();
    let mut found = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let mut query = QueryBuilder::new(
        "SELECT remote_id, user_id, created FROM sync_people WHERE connection_id = ",
    );
    query.push_bind(connection).push(" AND remote_id IN (");
    let mut list = query.separated(", ");
    for id in &ids {
        list.push_bind(*id);
    }
    query.push(")");
    let rows: Vec<(i64, i64, Flag)> = query.build_query_as().fetch_all(&mut *change.tx).await?;
    for (remote, user, created) in rows {
        found.insert(remote, (user, created.0));
    }
    Ok(found)
}

/// The person of the account known by `email` (or an alias), if any.
async fn person_by_email(
    change: &mut FactChange,
    account: i64,
    email: &Email,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT user_id FROM user_identities WHERE account_id = $1 AND identity = $2",
    )
    .bind(account)
    .bind(email.normalized())
    .fetch_optional(&mut *change.tx)
    .await?)
}

async fn apply_people(
    change: &mut FactChange,
    connection: &Connection,
    rows: &[RemotePerson],
    started: i64,
) -> Result<Applied> {
    let account = connection.account_id;
    let id = connection.id.0;
    let now = change.now;
    let known = matched(change, id, rows.iter().map(|p| p.remote_id)).await?;
    let mut touched: Vec<UserId> = Vec::new();
    let mut applied = Applied {
        rows: rows.len(),
        ..Applied::default()
    };
    for person in rows {
        let facts = UserChanges {
            email: Some(person.email.clone()),
            attributes: vec![
                ("first_name", person.first_name.clone()),
                ("last_name", person.last_name.clone()),
                ("job_title", person.job_title.clone()),
                ("department", person.department.clone()),
                ("employee_start_date", person.employee_start_date.clone()),
            ],
            aliases: None,
            status: Some(if person.archived {
                UserStatus::Archived
            } else {
                UserStatus::Active
            }),
        };
        let (user, created) = match known.get(&person.remote_id) {
            // Added by this sync: the remote is where their facts come from.
            Some(&(user, true)) => {
                let mut facts = facts;
                // Their email may now be another person's here: keep theirs then.
                if person_by_email(change, account.0, &person.email)
                    .await?
                    .is_some_and(|other| other != user)
                {
                    facts.email = None;
                }
                crate::users::update_user(&mut change.tx, account, UserId(user), &facts, now)
                    .await?;
                touched.push(UserId(user));
                (user, true)
            }
            // A person of the account: their facts are kept here.
            Some(&(user, false)) => (user, false),
            None => match person_by_email(change, account.0, &person.email).await? {
                Some(user) => (user, false),
                None => {
                    let user =
                        crate::users::insert_user(&mut change.tx, account, &facts, now).await?;
                    touched.push(user);
                    applied.added += 1;
                    (user.0, true)
                }
            },
        };
        sqlx::query(
            "INSERT INTO sync_people (connection_id, remote_id, account_id, user_id, created, \
             synced_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (connection_id, remote_id) \
             DO UPDATE SET user_id = excluded.user_id, created = excluded.created, \
             synced_at = excluded.synced_at",
        )
        .bind(id)
        .bind(person.remote_id)
        .bind(account.0)
        .bind(user)
        .bind(created)
        .bind(started)
        .execute(&mut *change.tx)
        .await?;
    }
    let outcome = crate::groups::settle_people(change, account, &touched).await?;
    change.wake_for(&outcome);
    change.recheck(account.0, touched.iter().map(|u| u.0));
    Ok(applied)
}

async fn apply_enrolments(
    change: &mut FactChange,
    connection: &Connection,
    rows: &[RemoteEnrolment],
    started: i64,
) -> Result<Applied> {
    let account = connection.account_id.0;
    let id = connection.id.0;
    let backend = crate::db::Backend::of_connection(&change.tx);
    let known = matched(change, id, rows.iter().map(|e| e.user_remote_id)).await?;
    // The due rule of each campaign named.
    let mut campaigns: HashMap<i64, (Option<i64>, Option<String>)> = HashMap::new();
    let named: BTreeSet<i64> = rows.iter().filter_map(|e| e.campaign_id).collect();
    if !named.is_empty() {
        let mut query = QueryBuilder::new(
            "SELECT remote_id, end_date, relative_duration FROM sync_campaigns \
             WHERE connection_id = ",
        );
        query.push_bind(id).push(" AND remote_id IN (");
        let mut list = query.separated(", ");
        for c in &named {
            list.push_bind(*c);
        }
        query.push(")");
        let rows: Vec<(i64, Option<i64>, Option<String>)> =
            query.build_query_as().fetch_all(&mut *change.tx).await?;
        campaigns.extend(
            rows.into_iter()
                .map(|(c, end, relative)| (c, (end, relative))),
        );
    }
    let mut records = Vec::with_capacity(rows.len());
    let mut users = BTreeSet::new();
    let mut skipped = 0;
    for e in rows {
        let user = match known.get(&e.user_remote_id) {
            Some(&(user, _)) => Some(user),
            None => match e.user_email.as_deref().map(Email::parse) {
                Some(Ok(email)) => person_by_email(change, account, &email).await?,
                _ => None,
            },
        };
        let Some(user) = user else {
            skipped += 1;
            continue;
        };
        let due_at = e
            .campaign_id
            .and_then(|c| campaigns.get(&c))
            .and_then(|(end, relative)| {
                end.or_else(|| {
                    let enrolled = chrono::DateTime::from_timestamp_millis(e.enrolled_at)?;
                    coachloop_core::compliance::remote::due_after(enrolled, relative.as_deref()?)
                        .map(|t| t.timestamp_millis())
                })
            });
        users.insert(user);
        records.push(EnrolmentRecord {
            connection_id: id,
            remote_id: e.remote_id,
            account_id: account,
            user_id: user,
            campaign_id: e.campaign_id,
            campaign_name: e.campaign_name.clone(),
            module_name: e.module_name.clone(),
            content_type: e.content_type.clone(),
            status: e.status.clone(),
            enrolled_at: e.enrolled_at,
            due_at,
            completed_at: e.completed_at,
            synced_at: started,
        });
    }
    for chunk in records.chunks(backend.rows_per_insert()) {
        let mut upsert = QueryBuilder::with(backend, "");
        upsert.push_records(backend, "sync_enrollments", chunk);
        upsert.push(
            " ON CONFLICT (connection_id, remote_id) DO UPDATE SET user_id = excluded.user_id, \
             campaign_id = excluded.campaign_id, campaign_name = excluded.campaign_name, \
             module_name = excluded.module_name, content_type = excluded.content_type, \
             status = excluded.status, enrolled_at = excluded.enrolled_at, \
             due_at = excluded.due_at, completed_at = excluded.completed_at, \
             synced_at = excluded.synced_at",
        );
        upsert.build().execute(&mut *change.tx).await?;
    }
    change.recheck(account, users);
    Ok(Applied {
        rows: rows.len(),
        skipped,
        added: 0,
    })
}
