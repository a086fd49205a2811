//! Training campaigns and enrolments. A campaign assigns content to the members of its
//! groups (or to everyone). Starting it enrols the current members; with `auto_enroll`
//! a later joiner is enrolled inside the transaction that records the join (see
//! [`enrol_joins`]). Past-due marking, campaign starts and ends happen at their exact
//! instants in [`Store::run_due_training`].

use crate::db::Backend;
use crate::membership::Change;
use crate::notices::{self, EnrolmentNotice, Notices};
use crate::sql::QueryBuilder;
use crate::{Page, Result, Store, StoreError};
use coachloop_core::duration::IsoDuration;
use coachloop_core::enrolment::{EnrolmentStatus, Previous, may_enrol};
use coachloop_core::ids::{AccountId, CampaignId, ContentId, EnrollmentId, GroupId, UserId};
use coachloop_core::notice::{Notice, NoticeSettings};
use coachloop_core::time::format_ms;
use serde_json::{Value, json};
use sqlx::{AnyConnection, FromRow};
use std::collections::HashMap;
use tracing::instrument;

pub const CREATED: &str = "Created";
pub const IN_PROGRESS: &str = "In Progress";
pub const COMPLETED: &str = "Completed";
pub const CLOSED: &str = "Closed";

/// Rows per multi-row statement.
const CHUNK: usize = 500;

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Campaign {
    #[sqlx(try_from = "i64")]
    pub id: CampaignId,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    pub name: String,
    pub status: String,
    #[sqlx(try_from = "crate::db::Flag")]
    pub all_users: bool,
    #[sqlx(try_from = "crate::db::Flag")]
    pub auto_enroll: bool,
    #[sqlx(try_from = "crate::db::Flag")]
    pub allow_multiple: bool,
    pub cooldown: Option<String>,
    pub start_at: i64,
    pub end_at: Option<i64>,
    pub relative_duration: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Enrolments, and those finished (Passed or Completed).
    pub enrolled: i64,
    pub finished: i64,
    /// Content ids in order.
    #[sqlx(skip)]
    pub content: Vec<ContentId>,
    /// (group id, name).
    #[sqlx(skip)]
    pub groups: Vec<(GroupId, String)>,
}

impl Campaign {
    /// Finished enrolments as a whole percentage of all (0 with none).
    pub fn completion_percentage(&self) -> i64 {
        if self.enrolled == 0 {
            0
        } else {
            self.finished * 100 / self.enrolled
        }
    }
}

/// A new campaign, validated by the caller but for the ids it names.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub content: Vec<ContentId>,
    pub groups: Vec<GroupId>,
    pub all_users: bool,
    /// Default: now.
    pub start_at: Option<i64>,
    pub due: Due,
    pub auto_enroll: bool,
    pub allow_multiple: bool,
    pub cooldown: Option<IsoDuration>,
}

/// When a campaign's enrolments are due.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// A specific end date: every enrolment is due then, and the campaign completes.
    At(i64),
    /// A duration from each enrolment.
    After(IsoDuration),
}

/// Changes to a campaign; absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct CampaignChanges {
    pub name: Option<String>,
    pub auto_enroll: Option<bool>,
    pub allow_multiple: Option<bool>,
    pub cooldown: Option<Option<IsoDuration>>,
}

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Enrollment {
    #[sqlx(try_from = "i64")]
    pub id: EnrollmentId,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    #[sqlx(try_from = "i64")]
    pub campaign_id: CampaignId,
    pub campaign_name: String,
    #[sqlx(try_from = "i64")]
    pub content_id: ContentId,
    pub content_kind: String,
    pub content_title: String,
    #[sqlx(try_from = "i64")]
    pub user_id: UserId,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub employee_number: Option<String>,
    pub status: String,
    pub enrolled_at: i64,
    pub due_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub past_due_at: Option<i64>,
    pub time_spent: i64,
    pub score: Option<i64>,
    pub attempts: i64,
    #[sqlx(try_from = "crate::db::Flag")]
    pub policy_acknowledged: bool,
    pub cause: String,
}

impl Enrollment {
    /// Passed or Completed.
    pub fn is_finished(&self) -> bool {
        EnrolmentStatus::parse(&self.status).is_some_and(EnrolmentStatus::is_finished)
    }
}

#[derive(Debug, Clone, Default)]
pub struct EnrollmentFilter {
    pub campaign_id: Option<CampaignId>,
    pub user_id: Option<UserId>,
    pub content_id: Option<ContentId>,
    pub status: Option<String>,
}

pub(crate) const CAMPAIGN_COLUMNS: &str = "c.id, c.account_id, c.name, c.status, c.all_users, \
    c.auto_enroll, c.allow_multiple, c.cooldown, c.start_at, c.end_at, c.relative_duration, \
    c.created_at, c.updated_at, \
    (SELECT COUNT(*) FROM enrollments e WHERE e.campaign_id = c.id) AS enrolled, \
    (SELECT COUNT(*) FROM enrollments e WHERE e.campaign_id = c.id \
     AND e.status IN ('Passed', 'Completed')) AS finished";

pub(crate) const ENROLLMENT_COLUMNS: &str = "e.id, e.account_id, e.campaign_id, \
    c.name AS campaign_name, e.content_id, t.kind AS content_kind, t.title AS content_title, \
    e.user_id, u.email, u.first_name, u.last_name, u.employee_number, e.status, \
    e.enrolled_at, e.due_at, e.started_at, e.completed_at, e.past_due_at, e.time_spent, \
    e.score, e.attempts, e.policy_acknowledged, e.cause";
pub(crate) const ENROLLMENT_FROM: &str = "enrollments e JOIN campaigns c ON c.id = e.campaign_id \
    JOIN content t ON t.id = e.content_id JOIN users u ON u.id = e.user_id";

/// What an enrolment needs to know of its campaign.
struct Target {
    campaign: i64,
    account: i64,
    content: Vec<i64>,
    allow_multiple: bool,
    cooldown: Option<IsoDuration>,
    due: Option<Due>,
    notices: NoticeSettings,
}

impl Target {
    fn due_at(&self, enrolled_at: i64) -> Option<i64> {
        match &self.due {
            Some(Due::At(at)) => Some(*at),
            Some(Due::After(period)) => Some(
                period
                    .after(chrono::DateTime::from_timestamp_millis(enrolled_at).unwrap_or_default())
                    .timestamp_millis(),
            ),
            None => None,
        }
    }
}

/// A campaign's [`Target`], its content in order from one subquery.
fn target_columns(backend: Backend) -> String {
    format!(
        "c.id AS campaign, c.account_id AS account, c.allow_multiple, c.cooldown, c.end_at, \
         c.relative_duration, c.notices, \
         (SELECT {} FROM campaign_content WHERE campaign_id = c.id) AS content",
        backend.json_list("content_id ORDER BY position")
    )
}

#[derive(FromRow)]
struct TargetRow {
    campaign: i64,
    account: i64,
    #[sqlx(try_from = "crate::db::Flag")]
    allow_multiple: bool,
    cooldown: Option<String>,
    end_at: Option<i64>,
    relative_duration: Option<String>,
    notices: Option<String>,
    /// JSON array of content ids.
    content: String,
}

impl TryFrom<TargetRow> for Target {
    type Error = StoreError;

    /// A stored value that cannot be read is an error naming the campaign, never a
    /// campaign without content, due date or cooldown.
    fn try_from(row: TargetRow) -> Result<Self> {
        let campaign = row.campaign;
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("campaign {campaign}: {what} cannot be read: {e}"))
        };
        let duration = |what: &str, text: Option<&str>| {
            text.map(|t| IsoDuration::parse(t).map_err(|e| corrupt(what, &e)))
                .transpose()
        };
        let due = match (
            row.end_at,
            duration("relative_duration", row.relative_duration.as_deref())?,
        ) {
            (Some(at), _) => Some(Due::At(at)),
            (None, Some(period)) => Some(Due::After(period)),
            (None, None) => None,
        };
        Ok(Self {
            campaign,
            account: row.account,
            content: serde_json::from_str(&row.content).map_err(|e| corrupt("content", &e))?,
            allow_multiple: row.allow_multiple,
            cooldown: duration("cooldown", row.cooldown.as_deref())?,
            due,
            notices: NoticeSettings::from_stored(row.notices.as_deref())
                .map_err(|e| corrupt("notices", &e))?,
        })
    }
}

/// A campaign that auto-enrols joiners of some groups, with those of its groups that a
/// batch of joins named (a JSON array).
#[derive(FromRow)]
struct AutoTarget {
    #[sqlx(flatten)]
    target: TargetRow,
    groups: String,
}

async fn load_target(conn: &mut AnyConnection, campaign: i64) -> Result<Target> {
    let row: TargetRow = sqlx::query_as(&format!(
        "SELECT {} FROM campaigns c WHERE c.id = $1",
        target_columns(Backend::of_connection(conn))
    ))
    .bind(campaign)
    .fetch_one(&mut *conn)
    .await?;
    row.try_into()
}

/// What enrolling did: how many enrolments, and the earliest due instant among them
/// (for the training executor's wake-up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrolled {
    pub made: usize,
    pub earliest_due: Option<i64>,
    /// Who was enrolled (account, user): their compliance is evaluated again.
    pub people: Vec<(i64, i64)>,
}

impl Enrolled {
    fn add(&mut self, other: Enrolled) {
        self.made += other.made;
        self.people.extend(other.people);
        self.earliest_due = match (self.earliest_due, other.earliest_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// A row of `enrollments` as enrolling writes it.
#[derive(serde::Serialize)]
struct NewEnrollment<'a> {
    account_id: i64,
    campaign_id: i64,
    content_id: i64,
    user_id: i64,
    status: &'static str,
    enrolled_at: i64,
    due_at: Option<i64>,
    cause: &'a str,
}

impl crate::sql::Record for NewEnrollment<'_> {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("account_id", "bigint"),
        ("campaign_id", "bigint"),
        ("content_id", "bigint"),
        ("user_id", "bigint"),
        ("status", "text"),
        ("enrolled_at", "bigint"),
        ("due_at", "bigint"),
        ("cause", "text"),
    ];

    fn bind<'args>(&self, row: &mut crate::sql::Separated<'_, 'args>) {
        row.push_bind(self.account_id)
            .push_bind(self.campaign_id)
            .push_bind(self.content_id)
            .push_bind(self.user_id)
            .push_bind(self.status)
            .push_bind(self.enrolled_at)
            .push_bind(self.due_at)
            .push_bind(self.cause.to_owned());
    }
}

/// Enrols `people` (user id, cause) in every content of the campaign, unless an earlier
/// enrolment rules it out.
async fn enrol(
    conn: &mut AnyConnection,
    target: &Target,
    people: &[(i64, String)],
    now: i64,
    outbox: &mut Notices,
) -> Result<Enrolled> {
    let mut made = 0;
    let mut enrolled = Vec::new();
    for chunk in people.chunks(CHUNK) {
        let mut query = QueryBuilder::new(
            "SELECT user_id, content_id, completed_at FROM enrollments WHERE campaign_id = ",
        );
        query.push_bind(target.campaign).push(" AND user_id IN (");
        let mut ids = query.separated(", ");
        for (user, _) in chunk {
            ids.push_bind(*user);
        }
        query.push(")");
        let rows: Vec<(i64, i64, Option<i64>)> =
            query.build_query_as().fetch_all(&mut *conn).await?;
        let mut previous: HashMap<(i64, i64), Vec<Previous>> = HashMap::new();
        for (user, content, finished_at) in rows {
            previous
                .entry((user, content))
                .or_default()
                .push(Previous { finished_at });
        }
        let due_at = target.due_at(now);
        let mut new: Vec<(i64, i64, &str)> = Vec::new();
        for (user, cause) in chunk {
            for content in &target.content {
                let before = previous
                    .get(&(*user, *content))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if may_enrol(before, target.allow_multiple, target.cooldown.as_ref(), now) {
                    new.push((*user, *content, cause.as_str()));
                }
            }
        }
        let backend = Backend::of_connection(conn);
        let new: Vec<NewEnrollment<'_>> = (new.into_iter())
            .map(|(user_id, content_id, cause)| NewEnrollment {
                account_id: target.account,
                campaign_id: target.campaign,
                content_id,
                user_id,
                status: "Not Started",
                enrolled_at: now,
                due_at,
                cause,
            })
            .collect();
        for rows in new.chunks(backend.rows_per_insert().min(CHUNK)) {
            let mut insert = QueryBuilder::with(backend, "");
            insert.push_records(backend, "enrollments", rows);
            insert.push(" RETURNING id, user_id, content_id, cause");
            let created: Vec<(i64, i64, i64, String)> =
                insert.build_query_as().fetch_all(&mut *conn).await?;
            announce(conn, target, &created, due_at, now, outbox).await?;
        }
        made += new.len();
        enrolled.extend(new.iter().map(|e| (e.account_id, e.user_id)));
    }
    enrolled.dedup();
    Ok(Enrolled {
        made,
        earliest_due: target.due_at(now).filter(|_| made > 0),
        people: enrolled,
    })
}

/// Queues the notices of new enrolments, as the campaign's settings say (the email with
/// the learner's link, reminders before the due time), and `enrollment.created`
/// webhooks.
async fn announce(
    conn: &mut AnyConnection,
    target: &Target,
    created: &[(i64, i64, i64, String)],
    due_at: Option<i64>,
    now: i64,
    outbox: &mut Notices,
) -> Result<()> {
    let mut facts = Vec::with_capacity(created.len());
    let settings = &target.notices;
    let reminders = due_at
        .map(|due| settings.reminder_times(now, due))
        .unwrap_or_default();
    let mut queued = Vec::with_capacity(created.len() * (1 + reminders.len()));
    for (id, user, content, cause) in created {
        let notice = |notice, offset, run_at| EnrolmentNotice {
            campaign: target.campaign,
            notice,
            enrollment: *id,
            offset,
            run_at,
        };
        if settings.enrolled {
            queued.push(notice(Notice::Enrolled, None, now));
        }
        for (offset, at) in &reminders {
            queued.push(notice(Notice::Reminder, Some(offset.as_str()), *at));
        }
        facts.push((
            format!("enrollment:{id}"),
            json!({
                "enrollment_id": id,
                "campaign_id": target.campaign,
                "content_id": content,
                "user_id": user,
                "status": "Not Started",
                "enrollment_date": format_ms(now),
                "due_date": due_at.map(format_ms),
                "cause": serde_json::from_str::<Value>(cause).unwrap_or(Value::Null),
            }),
        ));
    }
    outbox.notices(conn, target.account, &queued).await?;
    outbox
        .event(
            conn,
            target.account,
            notices::ENROLLMENT_CREATED,
            &facts,
            now,
        )
        .await
}

/// The notice settings of `campaigns` (repeats allowed), read in the caller's
/// transaction.
pub(crate) async fn notice_settings(
    conn: &mut AnyConnection,
    campaigns: impl Iterator<Item = i64>,
) -> Result<HashMap<i64, NoticeSettings>> {
    let mut ids: Vec<i64> = campaigns.collect();
    ids.sort_unstable();
    ids.dedup();
    let mut settings = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut query = QueryBuilder::new("SELECT id, notices FROM campaigns WHERE id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(")");
        let rows: Vec<(i64, Option<String>)> = query.build_query_as().fetch_all(&mut *conn).await?;
        for (id, stored) in rows {
            let read = NoticeSettings::from_stored(stored.as_deref())
                .map_err(|e| StoreError::Corrupt(format!("campaign {id}: {e}")))?;
            settings.insert(id, read);
        }
    }
    Ok(settings)
}

/// Enrols people who just joined groups in the active auto-enrolling campaigns that
/// target those groups, in the caller's transaction (the join's).
pub(crate) async fn enrol_joins(
    conn: &mut AnyConnection,
    joins: &[&Change],
    now: i64,
    outbox: &mut Notices,
) -> Result<Enrolled> {
    let mut enrolled = Enrolled::default();
    if joins.is_empty() {
        return Ok(enrolled);
    }
    let backend = Backend::of_connection(conn);
    let mut query = QueryBuilder::new(format!(
        "SELECT {}, {} AS groups FROM campaign_groups cg \
         JOIN campaigns c ON c.id = cg.campaign_id \
         WHERE c.status = 'In Progress' AND c.auto_enroll = TRUE AND cg.group_id IN (",
        target_columns(backend),
        backend.json_list("cg.group_id"),
    ));
    let mut groups: Vec<i64> = joins.iter().map(|j| j.group).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut ids = query.separated(", ");
    for group in &groups {
        ids.push_bind(*group);
    }
    query.push(") GROUP BY c.id ORDER BY c.id");
    let targets: Vec<AutoTarget> = query.build_query_as().fetch_all(&mut *conn).await?;
    for AutoTarget { target, groups } in targets {
        let target = Target::try_from(target)?;
        let groups: Vec<i64> = serde_json::from_str(&groups).map_err(|e| {
            StoreError::Corrupt(format!(
                "campaign {}: its groups cannot be read: {e}",
                target.campaign
            ))
        })?;
        // One enrolment per person even if they joined two of the campaign's groups.
        let mut people: Vec<(i64, String)> = Vec::new();
        for join in joins.iter().filter(|j| groups.contains(&j.group)) {
            if people.iter().any(|(user, _)| *user == join.user) {
                continue;
            }
            let evidence: Value = serde_json::from_str(&join.reason).unwrap_or(Value::Null);
            let cause = json!({
                "kind": "group_joined",
                "group_id": join.group,
                "at": format_ms(join.at),
                "version": join.version,
                "evidence": evidence,
            });
            people.push((join.user, cause.to_string()));
        }
        enrolled.add(enrol(conn, &target, &people, now, outbox).await?);
    }
    Ok(enrolled)
}

/// Enrols people just created in the running auto-enrolling campaigns that target all
/// users, in the caller's transaction.
pub(crate) async fn enrol_new_people(
    conn: &mut AnyConnection,
    account: i64,
    users: &[i64],
    now: i64,
) -> Result<Enrolled> {
    let mut enrolled = Enrolled::default();
    if users.is_empty() {
        return Ok(enrolled);
    }
    let campaigns: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM campaigns WHERE account_id = $1 AND all_users = TRUE \
         AND auto_enroll = TRUE AND status = 'In Progress'",
    )
    .bind(account)
    .fetch_all(&mut *conn)
    .await?;
    let cause = json!({"kind": "user_created", "at": format_ms(now)}).to_string();
    let people: Vec<(i64, String)> = users.iter().map(|u| (*u, cause.clone())).collect();
    let mut outbox = Notices::default();
    for campaign in campaigns {
        let target = load_target(conn, campaign).await?;
        enrolled.add(enrol(conn, &target, &people, now, &mut outbox).await?);
    }
    outbox.send(conn, now).await?;
    Ok(enrolled)
}

/// Starts a campaign: enrols the current members of its groups (or every active person).
/// Starts a campaign that is still `Created` and enrols its people; `None` when it had
/// started already (another node got to it first).
pub(crate) async fn start(
    conn: &mut AnyConnection,
    campaign: i64,
    now: i64,
) -> Result<Option<Enrolled>> {
    let started = sqlx::query(
        "UPDATE campaigns SET status = 'In Progress', updated_at = $1 \
         WHERE id = $2 AND status = 'Created'",
    )
    .bind(now)
    .bind(campaign)
    .execute(&mut *conn)
    .await?;
    if started.rows_affected() == 0 {
        return Ok(None);
    }
    let crate::db::Flag(all_users) =
        sqlx::query_scalar("SELECT all_users FROM campaigns WHERE id = $1")
            .bind(campaign)
            .fetch_one(&mut *conn)
            .await?;
    let target = load_target(conn, campaign).await?;
    let people: Vec<i64> = if all_users {
        sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND status = 'active'")
            .bind(target.account)
            .fetch_all(&mut *conn)
            .await?
    } else {
        sqlx::query_scalar(
            "SELECT DISTINCT m.user_id FROM campaign_groups cg \
             JOIN group_members m ON m.group_id = cg.group_id \
             JOIN users u ON u.id = m.user_id \
             WHERE cg.campaign_id = $1 AND u.status = 'active' ORDER BY m.user_id",
        )
        .bind(campaign)
        .fetch_all(&mut *conn)
        .await?
    };
    let cause = json!({"kind": "campaign_started", "at": format_ms(now)}).to_string();
    let people: Vec<(i64, String)> = people.into_iter().map(|u| (u, cause.clone())).collect();
    let mut outbox = Notices::default();
    let enrolled = enrol(conn, &target, &people, now, &mut outbox).await?;
    outbox.send(conn, now).await?;
    Ok(Some(enrolled))
}

impl Store {
    /// Creates a campaign; one whose start has come is started at once.
    #[instrument(skip_all)]
    pub async fn create_campaign(
        &self,
        account: AccountId,
        new: &NewCampaign,
    ) -> Result<(Campaign, usize)> {
        // The account's lock: a campaign that starts at once enrols people, and a join on
        // another node must not enrol them beside it.
        let mut tx = self.begin_write(&crate::Locks::account(account.0)).await?;
        let now = self.now_ms();
        for (i, id) in new.content.iter().enumerate() {
            let retired: Option<Option<i64>> = sqlx::query_scalar(
                "SELECT retired_at FROM content WHERE account_id = $1 AND id = $2",
            )
            .bind(account.0)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
            match retired {
                None => {
                    return Err(StoreError::invalid(
                        &format!("content[{i}]"),
                        format!("no content with id {id}"),
                    ));
                }
                Some(Some(_)) => {
                    return Err(StoreError::invalid(
                        &format!("content[{i}]"),
                        format!("content {id} is retired"),
                    ));
                }
                Some(None) => {}
            }
        }
        for (i, id) in new.groups.iter().enumerate() {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM groups WHERE account_id = $1 AND id = $2")
                    .bind(account.0)
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            if status.as_deref() != Some("active") {
                return Err(StoreError::invalid(
                    &format!("groups[{i}]"),
                    format!("no active group with id {id}"),
                ));
            }
        }
        let start_at = new.start_at.unwrap_or(now);
        let (end_at, relative) = match &new.due {
            Due::At(at) => (Some(*at), None),
            Due::After(period) => (None, Some(period.to_string())),
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (account_id, name, status, all_users, auto_enroll, \
             allow_multiple, cooldown, start_at, end_at, relative_duration, created_at, \
             updated_at) VALUES ($1, $2, 'Created', $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             RETURNING id",
        )
        .bind(account.0)
        .bind(new.name.trim())
        .bind(new.all_users)
        .bind(new.auto_enroll)
        .bind(new.allow_multiple)
        .bind(new.cooldown.as_ref().map(ToString::to_string))
        .bind(start_at)
        .bind(end_at)
        .bind(relative)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        for (position, content) in new.content.iter().enumerate() {
            sqlx::query(
                "INSERT INTO campaign_content (campaign_id, content_id, position) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(content.0)
            .bind(position as i64)
            .execute(&mut *tx)
            .await?;
        }
        for group in &new.groups {
            sqlx::query(
                "INSERT INTO campaign_groups (campaign_id, group_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(group.0)
            .execute(&mut *tx)
            .await?;
        }
        let enrolled = if start_at <= now {
            start(&mut tx, id, now).await?.unwrap_or_default()
        } else {
            Enrolled::default()
        };
        crate::compliance::recheck(&mut tx, &enrolled.people, now).await?;
        tx.commit().await?;
        // Its start, end and deadlines, and any compliance change, are the executor's.
        self.wakes.training_changed();
        self.wakes.jobs_queued();
        self.analyze_after("enrollments", enrolled.made).await;
        Ok((self.campaign(account, CampaignId(id)).await?, enrolled.made))
    }

    pub async fn update_campaign(
        &self,
        account: AccountId,
        id: CampaignId,
        changes: &CampaignChanges,
    ) -> Result<Campaign> {
        let current = self.campaign(account, id).await?;
        let mut query = QueryBuilder::new("UPDATE campaigns SET updated_at = ");
        query.push_bind(self.now_ms());
        if let Some(name) = &changes.name {
            query.push(", name = ").push_bind(name.trim().to_owned());
        }
        if let Some(auto) = changes.auto_enroll {
            query.push(", auto_enroll = ").push_bind(auto);
        }
        if let Some(multiple) = changes.allow_multiple {
            query.push(", allow_multiple = ").push_bind(multiple);
        }
        if let Some(cooldown) = &changes.cooldown {
            query
                .push(", cooldown = ")
                .push_bind(cooldown.as_ref().map(ToString::to_string));
        }
        query.push(" WHERE id = ").push_bind(current.id.0);
        query.build().execute(&self.write).await?;
        self.campaign(account, id).await
    }

    /// Closes a campaign: nobody new is enrolled; open enrolments stay for the record.
    pub async fn close_campaign(&self, account: AccountId, id: CampaignId) -> Result<Campaign> {
        let current = self.campaign(account, id).await?;
        sqlx::query("UPDATE campaigns SET status = 'Closed', updated_at = $1 WHERE id = $2")
            .bind(self.now_ms())
            .bind(current.id.0)
            .execute(&self.write)
            .await?;
        self.campaign(account, id).await
    }

    pub async fn campaign(&self, account: AccountId, id: CampaignId) -> Result<Campaign> {
        let mut conn = self.read.acquire().await?;
        let mut campaign: Campaign = sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns c WHERE c.account_id = $1 AND c.id = $2"
        ))
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("campaign"))?;
        fill_campaign(&mut conn, &mut campaign).await?;
        Ok(campaign)
    }

    pub async fn list_campaigns(
        &self,
        account: AccountId,
        status: Option<&str>,
        page: Page,
    ) -> Result<(Vec<Campaign>, i64)> {
        let mut conn = self.read.acquire().await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM campaigns WHERE account_id = $1 AND ($2 IS NULL OR status = $2)",
        )
        .bind(account.0)
        .bind(status)
        .fetch_one(&mut *conn)
        .await?;
        let mut campaigns: Vec<Campaign> = sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns c WHERE c.account_id = $1 \
             AND ($2 IS NULL OR c.status = $2) ORDER BY c.id LIMIT $3 OFFSET $4"
        ))
        .bind(account.0)
        .bind(status)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&mut *conn)
        .await?;
        for campaign in &mut campaigns {
            fill_campaign(&mut conn, campaign).await?;
        }
        Ok((campaigns, total))
    }

    pub async fn list_enrollments(
        &self,
        account: AccountId,
        filter: &EnrollmentFilter,
        page: Page,
    ) -> Result<(Vec<Enrollment>, i64)> {
        let push_filter = |query: &mut QueryBuilder<'_>| {
            query.push(" WHERE e.account_id = ").push_bind(account.0);
            if let Some(campaign) = filter.campaign_id {
                query.push(" AND e.campaign_id = ").push_bind(campaign.0);
            }
            if let Some(user) = filter.user_id {
                query.push(" AND e.user_id = ").push_bind(user.0);
            }
            if let Some(content) = filter.content_id {
                query.push(" AND e.content_id = ").push_bind(content.0);
            }
            if let Some(status) = &filter.status {
                query.push(" AND e.status = ").push_bind(status.clone());
            }
        };
        let mut select = QueryBuilder::new(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM {ENROLLMENT_FROM}"
        ));
        push_filter(&mut select);
        select
            .push(" ORDER BY e.id LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset());
        let rows: Vec<Enrollment> = select.build_query_as().fetch_all(&self.read).await?;
        let total = self
            .page_total(page, rows.len(), "enrollments e", push_filter)
            .await?;
        Ok((rows, total))
    }

    pub async fn enrollment(&self, account: AccountId, id: EnrollmentId) -> Result<Enrollment> {
        sqlx::query_as(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM {ENROLLMENT_FROM} \
             WHERE e.account_id = $1 AND e.id = $2"
        ))
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound("enrollment"))
    }

    /// A person's latest enrolment in a campaign; with none, a sample of the one they
    /// would get (id 0: its first content, due as the campaign says from now), to
    /// preview the campaign's notices with.
    pub async fn enrollment_or_sample(
        &self,
        account: AccountId,
        campaign: CampaignId,
        user: UserId,
    ) -> Result<Enrollment> {
        let latest: Option<Enrollment> = sqlx::query_as(&format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM {ENROLLMENT_FROM} \
             WHERE e.account_id = $1 AND e.campaign_id = $2 AND e.user_id = $3 \
             ORDER BY e.id DESC LIMIT 1"
        ))
        .bind(account.0)
        .bind(campaign.0)
        .bind(user.0)
        .fetch_optional(&self.read)
        .await?;
        if let Some(latest) = latest {
            return Ok(latest);
        }
        let found = self.campaign(account, campaign).await?;
        let person = self.user(account, user).await?;
        let target = load_target(&mut *self.read.acquire().await?, campaign.0).await?;
        let first = ContentId(
            *(target.content.first()).ok_or(StoreError::NotFound("content of the campaign"))?,
        );
        let content = self.content(account, first).await?;
        let now = self.now_ms();
        Ok(Enrollment {
            id: EnrollmentId(0),
            account_id: account,
            campaign_id: campaign,
            campaign_name: found.name,
            content_id: first,
            content_kind: content.kind.as_str().to_owned(),
            content_title: content.title,
            user_id: user,
            email: person.email,
            first_name: person.first_name,
            last_name: person.last_name,
            employee_number: person.employee_number,
            status: "Not Started".into(),
            enrolled_at: now,
            due_at: target.due_at(now),
            started_at: None,
            completed_at: None,
            past_due_at: None,
            time_spent: 0,
            score: None,
            attempts: 0,
            policy_acknowledged: false,
            cause: String::new(),
        })
    }
}

pub(crate) async fn fill_campaign(conn: &mut AnyConnection, campaign: &mut Campaign) -> Result<()> {
    let content: Vec<i64> = sqlx::query_scalar(
        "SELECT content_id FROM campaign_content WHERE campaign_id = $1 ORDER BY position",
    )
    .bind(campaign.id.0)
    .fetch_all(&mut *conn)
    .await?;
    campaign.content = content.into_iter().map(ContentId).collect();
    let groups: Vec<(i64, String)> = sqlx::query_as(
        "SELECT g.id, g.name FROM campaign_groups cg JOIN groups g ON g.id = cg.group_id \
         WHERE cg.campaign_id = $1 ORDER BY g.id",
    )
    .bind(campaign.id.0)
    .fetch_all(&mut *conn)
    .await?;
    campaign.groups = groups
        .into_iter()
        .map(|(id, name)| (GroupId(id), name))
        .collect();
    Ok(())
}
