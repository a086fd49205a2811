//! Groups: manual (`console_group`), provisioned (`adi_managed_group`) and smart
//! (`smart_group`, members derived from criteria by the [`engine`](crate::engine)).
//! Creating or editing a smart group evaluates it over the existing history (backfill)
//! in the same transaction; every version of its criteria is kept.

use crate::db::{Backend, ListOf};
use crate::engine::{
    AccountRules, Engine, Outcome, Person, Rule, Schedule, Versions, When, attribute_names,
    cooperate, creates_cycle, fact_of, load_attributes, load_rules, queue_membership_events,
};
use crate::fact_change::FactChange;
use crate::membership::Change;
use crate::scan::{Walk, each_event};
use crate::sql::QueryBuilder;
use crate::users::require_user;
use crate::{Page, Result, Store, StoreError, is_unique_violation};
use coachloop_core::criteria::{
    Criteria, EventFact, EventLeaf, Evidence, Pruner, SharedText, Window, matches_at, shared,
};
use coachloop_core::event_id::EventId;
use coachloop_core::ids::{AccountId, GroupId, UserId};
use coachloop_core::time::{date_of_ms, date_start_ms, format_date};
use serde_json::{Value, json};
use sqlx::{AnyConnection, FromRow};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tracing::{debug, instrument};

pub const MANUAL: &str = "console_group";
pub const SMART: &str = "smart_group";
pub const PROVISIONED: &str = "adi_managed_group";

/// Days a preview looks back over.
pub const PREVIEW_DAYS: i64 = 90;
/// People a preview names (the count covers all).
pub const PREVIEW_PEOPLE: usize = 100;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Group {
    #[sqlx(try_from = "i64")]
    pub id: GroupId,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    pub name: String,
    pub description: Option<String>,
    pub group_type: String,
    pub provisioning_guid: Option<String>,
    pub version: i64,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived_at: Option<i64>,
    pub member_count: i64,
    /// The current criteria (smart groups), as stored JSON.
    pub criteria: Option<String>,
}

/// A new group. Criteria make it a smart group.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub description: Option<String>,
    pub criteria: Option<(Value, Criteria)>,
}

/// Changes to a group; absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct GroupChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub criteria: Option<(Value, Criteria)>,
}

/// What evaluating a smart group over the existing history did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backfill {
    pub evaluated: usize,
    pub joined: usize,
    pub left: usize,
    pub took_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    pub status: Option<String>,
    pub group_type: Option<String>,
}

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Member {
    #[sqlx(try_from = "i64")]
    pub user_id: UserId,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub joined_at: i64,
    pub version: i64,
}

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct HistoryEntry {
    /// The row's own id (the history's order).
    pub id: i64,
    #[sqlx(try_from = "i64")]
    pub group_id: GroupId,
    #[sqlx(try_from = "i64")]
    pub user_id: UserId,
    pub change: String,
    pub at: i64,
    pub version: i64,
    pub reason: String,
    pub recorded_at: i64,
}

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct Version {
    pub version: i64,
    pub criteria: String,
    pub created_at: i64,
}

/// Why a person is (or is not) in a group.
#[derive(Debug, Clone)]
pub struct Why {
    pub member: bool,
    pub joined_at: Option<i64>,
    pub joined_version: Option<i64>,
    /// For a smart group: whether the current criteria hold now, and the evidence.
    pub holds: Option<bool>,
    pub evidence: Vec<Evidence>,
    /// The person's history in this group, newest first.
    pub history: Vec<HistoryEntry>,
}

/// Who criteria would match, now and on each of the last days.
#[derive(Debug, Clone)]
pub struct Preview {
    pub matching: usize,
    /// The first [`PREVIEW_PEOPLE`] matching people, in id order, with their emails.
    pub people: Vec<(UserId, String)>,
    /// (`YYYY-MM-DD`, people matching at the end of that day; today: now).
    pub daily: Vec<(String, usize)>,
    pub took_ms: i64,
}

pub(crate) const GROUP_COLUMNS: &str = "g.id, g.account_id, g.name, g.description, g.group_type, \
    g.provisioning_guid, g.version, g.status, g.created_at, g.updated_at, g.archived_at, \
    (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS member_count, \
    v.criteria";
pub(crate) const GROUP_FROM: &str =
    "groups g LEFT JOIN group_versions v ON v.group_id = g.id AND v.version = g.version";

impl Store {
    #[instrument(skip_all)]
    pub async fn create_group(
        &self,
        account: AccountId,
        new: &NewGroup,
    ) -> Result<(Group, Option<Backfill>)> {
        let snapshot = match &new.criteria {
            Some((_, criteria)) => Some(self.snapshot(account, criteria, None).await?),
            None => None,
        };
        let mut change = self.change_facts(account).await?;
        let group_type = if new.criteria.is_some() {
            SMART
        } else {
            MANUAL
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO groups (account_id, name, description, group_type, version, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 0, 'active', $5, $5) RETURNING id",
        )
        .bind(account.0)
        .bind(new.name.trim())
        .bind(new.description.as_deref())
        .bind(group_type)
        .bind(change.now)
        .fetch_one(&mut *change.tx)
        .await
        .map_err(|e| name_conflict(e, &new.name))?;
        let backfill = match (&new.criteria, snapshot) {
            (Some((json, criteria)), Some(snapshot)) => Some(
                self.set_criteria(&mut change, account, id, json, criteria, snapshot)
                    .await?,
            ),
            _ => None,
        };
        change.commit(&self.wakes).await?;
        self.analyze_backfilled(backfill.as_ref()).await;
        Ok((self.group(account, GroupId(id)).await?, backfill))
    }

    #[instrument(skip_all)]
    pub async fn update_group(
        &self,
        account: AccountId,
        id: GroupId,
        changes: &GroupChanges,
    ) -> Result<(Group, Option<Backfill>)> {
        let snapshot = match &changes.criteria {
            Some((_, criteria)) => Some(self.snapshot(account, criteria, Some(id.0)).await?),
            None => None,
        };
        let mut change = self.change_facts(account).await?;
        let (group_type, status) = group_kind(&mut change.tx, account, id).await?;
        if let Some(name) = &changes.name {
            sqlx::query("UPDATE groups SET name = $1 WHERE id = $2")
                .bind(name.trim())
                .bind(id.0)
                .execute(&mut *change.tx)
                .await
                .map_err(|e| name_conflict(e, name))?;
        }
        if let Some(description) = &changes.description {
            sqlx::query("UPDATE groups SET description = $1 WHERE id = $2")
                .bind(description.as_deref())
                .bind(id.0)
                .execute(&mut *change.tx)
                .await?;
        }
        let backfill = match &changes.criteria {
            Some(_) if group_type != SMART => {
                return Err(StoreError::invalid(
                    "criteria",
                    format!("a {group_type} has no criteria; create a smart group instead"),
                ));
            }
            Some(_) if status != "active" => {
                return Err(StoreError::conflict(
                    "criteria",
                    "the group is archived; restore it before changing its criteria",
                ));
            }
            Some((json, criteria)) => {
                let snapshot = snapshot.expect("taken for criteria");
                Some(
                    self.set_criteria(&mut change, account, id.0, json, criteria, snapshot)
                        .await?,
                )
            }
            None => None,
        };
        sqlx::query("UPDATE groups SET updated_at = $1 WHERE id = $2")
            .bind(change.now)
            .bind(id.0)
            .execute(&mut *change.tx)
            .await?;
        change.commit(&self.wakes).await?;
        self.analyze_backfilled(backfill.as_ref()).await;
        Ok((self.group(account, id).await?, backfill))
    }

    /// Archives a group: it stops being evaluated, its members stay as they were for the
    /// record, and its name is free again.
    pub async fn archive_group(&self, account: AccountId, id: GroupId) -> Result<Group> {
        let mut change = self.change_facts(account).await?;
        group_kind(&mut change.tx, account, id).await?;
        let named_by: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT g.id FROM groups g JOIN group_versions v ON v.group_id = g.id \
             AND v.version = g.version WHERE g.account_id = $1 AND g.status = 'active' \
             AND g.id <> $2 AND {} LIMIT 1",
            self.backend.json_names("v.criteria", "member_of", 2)
        ))
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&mut *change.tx)
        .await?;
        if let Some(other) = named_by {
            return Err(StoreError::conflict(
                "id",
                format!("smart group {other} names this group in its criteria; change it first"),
            ));
        }
        sqlx::query(
            "UPDATE groups SET status = 'archived', archived_at = COALESCE(archived_at, $1), \
             updated_at = $1 WHERE id = $2",
        )
        .bind(change.now)
        .bind(id.0)
        .execute(&mut *change.tx)
        .await?;
        sqlx::query("DELETE FROM group_schedule WHERE group_id = $1")
            .bind(id.0)
            .execute(&mut *change.tx)
            .await?;
        // Without the state, a failed commit leaves the account to be loaded again.
        if let Some(rules) = change.engine.take(account.0) {
            change.replace_rules(account.0, rules.without(id.0));
        }
        change.commit(&self.wakes).await?;
        self.group(account, id).await
    }

    /// Restores an archived group; a smart group is evaluated again from scratch.
    pub async fn restore_group(
        &self,
        account: AccountId,
        id: GroupId,
    ) -> Result<(Group, Option<Backfill>)> {
        // The backfill reads its snapshot before the locks are taken, so the stored
        // criteria are read first (and checked unchanged under the locks).
        let stored = self.current_criteria(account, id).await?;
        let snapshot = match &stored {
            Some((_, criteria)) => Some(self.snapshot(account, criteria, Some(id.0)).await?),
            None => None,
        };
        let mut change = self.change_facts(account).await?;
        let FactChange {
            engine, tx, now, ..
        } = &mut change;
        let now = *now;
        let (group_type, _) = group_kind(tx, account, id).await?;
        sqlx::query(
            "UPDATE groups SET status = 'active', archived_at = NULL, updated_at = $1 \
             WHERE id = $2",
        )
        .bind(now)
        .bind(id.0)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::conflict("name", "another active group has this name now; rename one")
            } else {
                e.into()
            }
        })?;
        let backfill = match (stored, snapshot) {
            (Some((version, criteria)), Some(snapshot)) if group_type == SMART => {
                let current: i64 = sqlx::query_scalar("SELECT version FROM groups WHERE id = $1")
                    .bind(id.0)
                    .fetch_one(&mut **tx)
                    .await?;
                if current != version {
                    return Err(StoreError::conflict(
                        "criteria",
                        "the group's criteria changed while it was being restored; try again",
                    ));
                }
                check_named_groups(tx, engine, account.0, id.0, &criteria)
                    .await
                    .map_err(|e| match e {
                        StoreError::Invalid(details) => {
                            StoreError::Conflict(details.into_iter().next().unwrap_or_else(|| {
                                coachloop_core::FieldError::new("criteria", "cannot be restored")
                            }))
                        }
                        other => other,
                    })?;
                let (summary, outcome, people) = backfill(
                    tx,
                    account.0,
                    id.0,
                    version,
                    &criteria,
                    now,
                    self.current(snapshot, engine.seen(account.0)),
                )
                .await?;
                let rules = load_rules(tx, account.0).await?;
                let next = AccountRules::rebuilt(engine.take(account.0), rules, id.0, people).await;
                change.wake_for(&outcome);
                change.wake_groups();
                change.replace_rules(account.0, next);
                Some(summary)
            }
            _ => None,
        };
        change.commit(&self.wakes).await?;
        self.analyze_backfilled(backfill.as_ref()).await;
        Ok((self.group(account, id).await?, backfill))
    }

    /// The current criteria of a smart group, with their version (`None` for other
    /// groups), read outside any transaction.
    async fn current_criteria(
        &self,
        account: AccountId,
        id: GroupId,
    ) -> Result<Option<(i64, Criteria)>> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT g.version, v.criteria FROM groups g JOIN group_versions v \
             ON v.group_id = g.id AND v.version = g.version \
             WHERE g.account_id = $1 AND g.id = $2 AND g.group_type = 'smart_group'",
        )
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        let Some((version, text)) = row else {
            return Ok(None);
        };
        let value = stored_criteria(id, &text)?;
        let criteria =
            Criteria::parse(&value).map_err(|e| StoreError::invalid("criteria", e.to_string()))?;
        Ok(Some((version, criteria)))
    }

    fn types_generation(&self) -> u64 {
        self.type_generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `snapshot`, unless event types were renamed or deleted since it was read (its
    /// matching of types by name is then stale, and the backfill reads everyone again),
    /// or on PostgreSQL the account's rules changed since (`seen`: the versions checked
    /// under the account's lock).
    fn current(&self, snapshot: Snapshot, seen: Option<Versions>) -> Option<Snapshot> {
        let rules_kept = match (snapshot.versions, seen) {
            (Some(read), Some(now)) => read.rules == now.rules,
            _ => true,
        };
        (rules_kept && snapshot.type_generation == self.types_generation()).then_some(snapshot)
    }

    /// What a backfill of `criteria` reads, taken in one read transaction before the
    /// group change takes the engine and the write lock: reading every counting event
    /// takes seconds at full size, and ingest must not wait for it. The write transaction
    /// then catches up with what changed since (see [`catch_up`]).
    async fn snapshot(
        &self,
        account: AccountId,
        criteria: &Criteria,
        group: Option<i64>,
    ) -> Result<Snapshot> {
        self.watch_facts(account).await?;
        let type_generation = self.types_generation();
        // Taken before the read begins: a change stamped at this instant or later may
        // be missing from the read, so it counts as a change since.
        let at = self.now_ms();
        let mut tx = self.read.begin_with(self.backend.begin_snapshot()).await?;
        let (last_event, last_history) = marks(&mut tx).await?;
        let versions = read_versions(&mut tx, account.0).await?;
        let people = population(&mut tx, account.0, criteria, at, group).await?;
        tx.rollback().await?;
        let mut snapshot = Snapshot {
            people,
            versions,
            last_event,
            last_history,
            at,
            type_generation,
        };
        // Events keep arriving while the population is read (seconds at full size):
        // catch up with them here, still outside the locks, so the write transaction
        // re-reads only the few people changed in its last moments.
        for _ in 0..CATCH_UP_ROUNDS {
            if !self
                .catch_up_beside(account, criteria, group, &mut snapshot)
                .await?
            {
                break;
            }
        }
        Ok(snapshot)
    }

    /// Before a backfill's snapshot (PostgreSQL): the events of an account that never had
    /// a smart group are stored under its lock shared, and not logged. Bumping its rules
    /// version under the lock exclusively waits for those writers and makes every later
    /// one lock it exclusively and log whom it touched, so the snapshot's catch-up finds
    /// every change made after it.
    async fn watch_facts(&self, account: AccountId) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let rules: i64 = sqlx::query_scalar("SELECT rules_version FROM accounts WHERE id = $1")
            .bind(account.0)
            .fetch_one(&self.read)
            .await?;
        if rules != 0 {
            return Ok(());
        }
        let mut change = self.change_facts(account).await?;
        change.engine.rules_changed(account.0);
        change.commit(&self.wakes).await
    }

    /// One round of [`catch_up`] in a new read snapshot. True while so many people
    /// changed that another round is worth it before the locks.
    async fn catch_up_beside(
        &self,
        account: AccountId,
        criteria: &Criteria,
        group: Option<i64>,
        snapshot: &mut Snapshot,
    ) -> Result<bool> {
        let at = self.now_ms();
        let mut tx = self.read.begin_with(self.backend.begin_snapshot()).await?;
        let touched = catch_up(&mut tx, account.0, criteria, group, snapshot, at).await?;
        tx.rollback().await?;
        Ok(touched > CAUGHT_UP)
    }

    /// Stores a new criteria version for a smart group and evaluates it over everyone, in
    /// `change`; the account's new engine state goes in place once it commits (see
    /// [`AccountRules::rebuilt`]). Returns the backfill's summary.
    async fn set_criteria(
        &self,
        change: &mut FactChange,
        account: AccountId,
        group: i64,
        json: &Value,
        criteria: &Criteria,
        snapshot: Snapshot,
    ) -> Result<Backfill> {
        let FactChange {
            engine, tx, now, ..
        } = change;
        let now = *now;
        check_named_groups(tx, engine, account.0, group, criteria).await?;
        let version: i64 = sqlx::query_scalar(
            "UPDATE groups SET version = version + 1 WHERE id = $1 RETURNING version",
        )
        .bind(group)
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO group_versions (group_id, version, criteria, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(group)
        .bind(version)
        .bind(json.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let (summary, outcome, people) = backfill(
            tx,
            account.0,
            group,
            version,
            criteria,
            now,
            self.current(snapshot, engine.seen(account.0)),
        )
        .await?;
        let rules = load_rules(tx, account.0).await?;
        let mut next = AccountRules::rebuilt(engine.take(account.0), rules, group, people).await;
        // Smart groups that name this one follow its new membership.
        let dependents: Vec<usize> = next.dependents(group).collect();
        let mut followers = Outcome::default();
        if !dependents.is_empty() {
            for user in outcome.changes.iter().map(|c| c.user) {
                next.person(tx, account.0, user, now).await?;
                next.evaluate(
                    account.0,
                    user,
                    dependents.iter().copied(),
                    When::fact(now),
                    &mut followers,
                );
            }
            followers.write(tx, now).await?;
        }
        change.wake_for(&outcome);
        change.wake_for(&followers);
        change.wake_groups();
        change.replace_rules(account.0, next);
        Ok(summary)
    }

    #[instrument(skip_all)]
    pub async fn group(&self, account: AccountId, id: GroupId) -> Result<Group> {
        sqlx::query_as(&format!(
            "SELECT {GROUP_COLUMNS} FROM {GROUP_FROM} WHERE g.account_id = $1 AND g.id = $2"
        ))
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound("group"))
    }

    /// After a backfill's commit: its joins and leaves (and the enrolments they made) in
    /// the statistics when they are many.
    async fn analyze_backfilled(&self, backfill: Option<&Backfill>) {
        if let Some(b) = backfill {
            self.analyze_after(
                "group_members, group_history, enrollments",
                b.joined + b.left,
            )
            .await;
        }
    }

    /// Proves the group is the account's (404 otherwise) without counting its members.
    pub(crate) async fn require_group(&self, account: AccountId, id: GroupId) -> Result<()> {
        sqlx::query_scalar::<_, i64>("SELECT id FROM groups WHERE account_id = $1 AND id = $2")
            .bind(account.0)
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .map(drop)
            .ok_or(StoreError::NotFound("group"))
    }

    #[instrument(skip_all)]
    pub async fn list_groups(
        &self,
        account: AccountId,
        filter: &GroupFilter,
        page: Page,
    ) -> Result<(Vec<Group>, i64)> {
        let push_filter = |query: &mut QueryBuilder<'_>| {
            query.push(" WHERE g.account_id = ").push_bind(account.0);
            if let Some(status) = &filter.status {
                query.push(" AND g.status = ").push_bind(status.clone());
            }
            if let Some(kind) = &filter.group_type {
                query.push(" AND g.group_type = ").push_bind(kind.clone());
            }
        };
        let mut select = QueryBuilder::new(format!("SELECT {GROUP_COLUMNS} FROM {GROUP_FROM}"));
        push_filter(&mut select);
        select
            .push(" ORDER BY g.id LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset());
        let groups: Vec<Group> = select.build_query_as().fetch_all(&self.read).await?;
        let total = self
            .page_total(page, groups.len(), "groups g", push_filter)
            .await?;
        Ok((groups, total))
    }

    /// A page of a group's current members, in user id order.
    pub async fn group_members(
        &self,
        account: AccountId,
        id: GroupId,
        page: Page,
    ) -> Result<(Vec<Member>, i64)> {
        let group = self.group(account, id).await?;
        let members = sqlx::query_as(
            "SELECT m.user_id, u.email, u.first_name, u.last_name, m.joined_at, m.version \
             FROM group_members m JOIN users u ON u.id = m.user_id \
             WHERE m.group_id = $1 ORDER BY m.user_id LIMIT $2 OFFSET $3",
        )
        .bind(id.0)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        Ok((members, group.member_count))
    }

    /// Joins and leaves of a group, newest first; optionally of one person.
    pub async fn group_history(
        &self,
        account: AccountId,
        id: GroupId,
        user: Option<UserId>,
        page: Page,
    ) -> Result<(Vec<HistoryEntry>, i64)> {
        // The group is the account's; its id alone then scopes its history, which
        // keeps the count to the `(group_id, id)` index instead of reading every row.
        self.require_group(account, id).await?;
        let push_filter = |query: &mut QueryBuilder<'_>| {
            query.push(" WHERE group_id = ").push_bind(id.0);
            if let Some(user) = user {
                query.push(" AND user_id = ").push_bind(user.0);
            }
        };
        let mut select = QueryBuilder::new(
            "SELECT id, group_id, user_id, change, at, version, reason, recorded_at \
             FROM group_history",
        );
        push_filter(&mut select);
        select
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset());
        let rows: Vec<HistoryEntry> = select.build_query_as().fetch_all(&self.read).await?;
        let total = self
            .page_total(page, rows.len(), "group_history", push_filter)
            .await?;
        Ok((rows, total))
    }

    /// Every criteria version of a smart group, oldest first.
    pub async fn group_versions(&self, account: AccountId, id: GroupId) -> Result<Vec<Version>> {
        self.require_group(account, id).await?;
        Ok(sqlx::query_as(
            "SELECT version, criteria, created_at FROM group_versions WHERE group_id = $1 \
             ORDER BY version",
        )
        .bind(id.0)
        .fetch_all(&self.read)
        .await?)
    }

    /// Adds a person to a manual group by hand.
    pub async fn add_group_member(
        &self,
        account: AccountId,
        id: GroupId,
        user: UserId,
    ) -> Result<bool> {
        self.change_member(account, id, user, true).await
    }

    /// Removes a person from a manual group by hand.
    pub async fn remove_group_member(
        &self,
        account: AccountId,
        id: GroupId,
        user: UserId,
    ) -> Result<bool> {
        self.change_member(account, id, user, false).await
    }

    /// Returns whether membership changed (adding a member twice changes nothing).
    async fn change_member(
        &self,
        account: AccountId,
        id: GroupId,
        user: UserId,
        join: bool,
    ) -> Result<bool> {
        let mut change = self.change_facts(account).await?;
        let tx = &mut change.tx;
        let (group_type, status) = group_kind(tx, account, id).await?;
        match group_type.as_str() {
            SMART => {
                return Err(StoreError::conflict(
                    "group_type",
                    "members of a smart group come from its criteria; change the criteria instead",
                ));
            }
            PROVISIONED => {
                return Err(StoreError::conflict(
                    "group_type",
                    "members of a provisioned group are managed by the identity provider (SCIM)",
                ));
            }
            _ if status != "active" => {
                return Err(StoreError::conflict(
                    "status",
                    "the group is archived; restore it first",
                ));
            }
            _ => {}
        }
        require_user(tx, account, user).await?;
        let kind = if join {
            "added_by_admin"
        } else {
            "removed_by_admin"
        };
        if !set_membership(&mut change, account, id, user, join, kind).await? {
            return Ok(false);
        }
        change.commit(&self.wakes).await?;
        Ok(true)
    }

    /// Why a person is or is not in a group: their membership, the evidence that makes a
    /// smart group's criteria hold for them now, and their history in the group.
    pub async fn why(&self, account: AccountId, id: GroupId, user: UserId) -> Result<Why> {
        let group = self.group(account, id).await?;
        let mut conn = self.read.acquire().await?;
        let now = self.now_ms();
        require_user(&mut conn, account, user).await?;
        let mut person = load_attributes(&mut conn, account.0, user.0).await?;
        let membership: Option<(i64, i64)> = sqlx::query_as(
            "SELECT joined_at, version FROM group_members WHERE group_id = $1 AND user_id = $2",
        )
        .bind(id.0)
        .bind(user.0)
        .fetch_optional(&mut *conn)
        .await?;
        let (holds, evidence) = match group.criteria.as_deref() {
            Some(text) => {
                let value = stored_criteria(id, text)?;
                let criteria = Criteria::parse(&value)
                    .map_err(|e| StoreError::invalid("criteria", e.to_string()))?;
                let types = matching_types(&mut conn, account.0, &criteria).await?;
                let rows: Vec<(i64, i64, i64, Option<String>, i64)> = sqlx::query_as(&format!(
                    "SELECT id, id_low, event_type_id, description, occurred_at FROM events \
                     WHERE user_id = $1 AND {}",
                    self.backend.in_list("event_type_id", 2, ListOf::Integers)
                ))
                .bind(user.0)
                .bind(Backend::list(&types.keys().collect::<Vec<_>>()))
                .fetch_all(&mut *conn)
                .await?;
                person.events = rows
                    .into_iter()
                    .map(|(hi, lo, type_id, description, occurred_ms)| EventFact {
                        id: EventId { hi, lo },
                        event_type: types[&type_id].clone(),
                        description: description.as_deref().map(shared),
                        occurred_ms,
                    })
                    .collect();
                person.groups =
                    sqlx::query_scalar("SELECT group_id FROM group_members WHERE user_id = $1")
                        .bind(user.0)
                        .fetch_all(&mut *conn)
                        .await?
                        .into_iter()
                        .collect();
                let holds = person.active && criteria.evaluate(&person, now);
                let evidence = if holds {
                    criteria.explain(&person, now)
                } else {
                    Vec::new()
                };
                (Some(holds), evidence)
            }
            None => (None, Vec::new()),
        };
        let history = sqlx::query_as(
            "SELECT id, group_id, user_id, change, at, version, reason, recorded_at \
             FROM group_history WHERE group_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT 100",
        )
        .bind(id.0)
        .bind(user.0)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Why {
            member: membership.is_some(),
            joined_at: membership.map(|m| m.0),
            joined_version: membership.map(|m| m.1),
            holds,
            evidence,
            history,
        })
    }

    /// Who `criteria` would match now, and how many on each of the last
    /// [`PREVIEW_DAYS`] days (at the end of each UTC day; today: now). Nothing is saved.
    /// Attributes and memberships are taken as they are now.
    #[instrument(skip_all)]
    pub async fn preview_group(&self, account: AccountId, criteria: &Criteria) -> Result<Preview> {
        let started = std::time::Instant::now();
        let now = self.now_ms();
        let today = date_start_ms(date_of_ms(now));
        let mut instants: Vec<i64> = (1..PREVIEW_DAYS)
            .rev()
            .map(|days_ago| today - (days_ago - 1) * DAY_MS - 1)
            .collect();
        instants.push(now);
        let mut conn = self.read.acquire().await?;
        let people = population(&mut conn, account.0, criteria, instants[0], None).await?;
        let read_ms = started.elapsed().as_millis();
        // Each person is evaluated on their own: spread them over the cores.
        let active: Vec<(&i64, &Person)> = people.iter().filter(|(_, p)| p.active).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let tallies: Vec<Tally> = std::thread::scope(|scope| {
            let handles: Vec<_> = (active.chunks(active.len().div_ceil(threads).max(1)))
                .map(|part| scope.spawn(|| Tally::of(criteria, part, &instants)))
                .collect();
            (handles.into_iter())
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut daily = vec![0usize; instants.len()];
        let mut matching: Vec<i64> = Vec::new();
        for tally in tallies {
            for (count, part) in daily.iter_mut().zip(tally.daily) {
                *count += part;
            }
            matching.extend(tally.matching);
        }
        debug!(
            people = people.len(),
            read_ms,
            evaluate_ms = started.elapsed().as_millis() - read_ms,
            "preview"
        );
        matching.sort_unstable();
        let named: Vec<i64> = matching.iter().take(PREVIEW_PEOPLE).copied().collect();
        let emails: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT id, email FROM users WHERE account_id = $1 AND {} ORDER BY id",
            self.backend.in_list("id", 2, ListOf::Integers)
        ))
        .bind(account.0)
        .bind(Backend::list(&named))
        .fetch_all(&mut *conn)
        .await?;
        Ok(Preview {
            matching: matching.len(),
            people: emails
                .into_iter()
                .map(|(id, email)| (UserId(id), email))
                .collect(),
            daily: instants
                .iter()
                .zip(daily)
                .map(|(at, count)| (format_date(date_of_ms(*at)), count))
                .collect(),
            took_ms: started.elapsed().as_millis() as i64,
        })
    }

    /// Acts on every schedule entry that is due: re-evaluates that group for that person
    /// and records a change at the entry's instant. Returns how many entries it handled.
    ///
    /// Each account's entries are read and acted on under the account's lock, in the
    /// order of changes of its facts: when several nodes run them at once, whoever comes
    /// second finds them done, so a change is recorded once.
    #[instrument(skip_all)]
    pub async fn run_due_groups(&self) -> Result<usize> {
        let accounts: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT account_id FROM group_schedule WHERE due_at <= $1 ORDER BY account_id",
        )
        .bind(self.now_ms())
        .fetch_all(&self.read)
        .await?;
        let mut handled = 0;
        for account in accounts {
            handled += self.run_due_groups_of(account).await?;
        }
        Ok(handled)
    }

    async fn run_due_groups_of(&self, account: i64) -> Result<usize> {
        let mut handled = 0;
        loop {
            let mut change = self.change_facts(AccountId(account)).await?;
            let FactChange {
                engine, tx, now, ..
            } = &mut change;
            let now = *now;
            let due: Vec<(i64, i64, i64)> = sqlx::query_as(
                "SELECT group_id, user_id, due_at FROM group_schedule \
                 WHERE due_at <= $1 AND account_id = $2 ORDER BY due_at LIMIT 1000",
            )
            .bind(now)
            .bind(account)
            .fetch_all(&mut **tx)
            .await?;
            if due.is_empty() {
                return Ok(handled);
            }
            let mut outcome = Outcome::default();
            let mut touched = HashSet::new();
            let account = &account;
            for (group, user, at) in &due {
                engine.touch(*account, *user);
                let rules = engine.account(tx, *account).await?;
                let Some(index) = rules.rule_index(*group) else {
                    // The group was archived or is no longer smart.
                    outcome.dues.push((*account, *group, *user, None));
                    continue;
                };
                // Long overdue (the server was down): the cache may have pruned events that
                // counted back then; reload keeping what counts from the entry's instant on.
                // Once per person: entries come earliest first, and a second reload would
                // drop the changes this batch has made to them but not yet written.
                if now - *at > 1_000 && !touched.contains(&(*account, *user)) {
                    rules.forget(*user);
                }
                let person = rules.person(tx, *account, *user, *at).await?;
                // The entry fires now: evaluate against exactly what the schedule expects.
                person.dues.insert(*group, *at);
                rules.evaluate(
                    *account,
                    *user,
                    [index],
                    When {
                        now,
                        at: *at,
                        schedule: Schedule::Exact,
                    },
                    &mut outcome,
                );
                touched.insert((*account, *user));
            }
            outcome.write(tx, now).await?;
            change.wake_for(&outcome);
            change.commit(&self.wakes).await?;
            handled += due.len();
            if due.len() < 1000 {
                return Ok(handled);
            }
        }
    }

    /// The earliest schedule entry, if any.
    pub async fn next_due_group(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(due_at) FROM group_schedule")
            .fetch_one(&self.read)
            .await?)
    }

    /// Settles the smart groups of people whose facts `change` changed, then commits it.
    pub(crate) async fn commit_people(
        &self,
        mut change: FactChange,
        account: AccountId,
        users: &[UserId],
    ) -> Result<()> {
        let outcome = settle_people(&mut change, account, users).await?;
        change.wake_for(&outcome);
        change.recheck(account.0, users.iter().map(|u| u.0));
        change.commit(&self.wakes).await
    }
}

/// Re-evaluates every smart group for people whose facts changed (attributes,
/// identities, status, a deleted event) and writes the changes, in the change's
/// transaction.
pub(crate) async fn settle_people(
    change: &mut FactChange,
    account: AccountId,
    users: &[UserId],
) -> Result<Outcome> {
    let FactChange {
        engine, tx, now, ..
    } = change;
    let now = *now;
    // Forgotten by the cache unless the change commits.
    for user in users {
        engine.touch(account.0, user.0);
    }
    let rules = engine.account(tx, account.0).await?;
    let mut outcome = Outcome::default();
    if rules.is_empty() {
        return Ok(outcome);
    }
    for user in users {
        rules.forget(user.0);
        rules.person(tx, account.0, user.0, now).await?;
        let all = 0..rules.rules.len();
        rules.evaluate(account.0, user.0, all, When::fact(now), &mut outcome);
    }
    outcome.write(tx, now).await?;
    Ok(outcome)
}

/// Adds `user` to group `id` or removes them, in `change`, as `kind` (the reason its
/// history records): the same consequences whoever asks — enrolment in the campaigns
/// that target the group (active people only), webhooks, and the smart groups that name
/// it. Returns whether membership changed.
pub(crate) async fn set_membership(
    change: &mut FactChange,
    account: AccountId,
    id: GroupId,
    user: UserId,
    join: bool,
    kind: &str,
) -> Result<bool> {
    let FactChange {
        engine, tx, now, ..
    } = change;
    let now = *now;
    let changed = if join {
        sqlx::query(
            "INSERT INTO group_members (group_id, user_id, account_id, joined_at, version) \
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT (group_id, user_id) DO NOTHING",
        )
        .bind(id.0)
        .bind(user.0)
        .bind(account.0)
        .bind(now)
        .execute(&mut **tx)
        .await?
    } else {
        sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .execute(&mut **tx)
            .await?
    }
    .rows_affected()
        > 0;
    if !changed {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO group_history (account_id, group_id, user_id, change, at, version, \
         reason, recorded_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $5)",
    )
    .bind(account.0)
    .bind(id.0)
    .bind(user.0)
    .bind(if join { "joined" } else { "left" })
    .bind(now)
    .bind(json!([{ "kind": kind }]).to_string())
    .execute(&mut **tx)
    .await?;
    let joined = Change {
        account: account.0,
        group: id.0,
        user: user.0,
        joined: join,
        at: now,
        version: 0,
        reason: json!([{ "kind": kind }]).to_string(),
    };
    let mut outbox = crate::notices::Notices::default();
    // An archived person stays out of future enrolment, whatever groups they are in.
    let active: bool = sqlx::query_scalar::<_, String>("SELECT status FROM users WHERE id = $1")
        .bind(user.0)
        .fetch_one(&mut **tx)
        .await?
        == "active";
    let enrolled = if join && active {
        crate::campaigns::enrol_joins(tx, &[&joined], now, &mut outbox).await?
    } else {
        Default::default()
    };
    queue_membership_events(tx, std::slice::from_ref(&joined), now, &mut outbox).await?;
    outbox.send(tx, now).await?;
    engine.touch(account.0, user.0);
    let rules = engine.account(tx, account.0).await?;
    let mut outcome = Outcome::default();
    let dependents = rules.group_changed(user.0, id.0, join);
    if !dependents.is_empty() {
        rules.person(tx, account.0, user.0, now).await?;
        rules.evaluate(account.0, user.0, dependents, When::fact(now), &mut outcome);
    }
    outcome.write(tx, now).await?;
    change.wake_for(&outcome);
    change.wake_training(enrolled.earliest_due);
    // The change may have queued webhooks and enrolment emails.
    change.wake_jobs();
    Ok(true)
}

fn name_conflict(err: sqlx::Error, name: &str) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::conflict(
            "name",
            format!("an active group named `{}` exists already", name.trim()),
        )
    } else {
        err.into()
    }
}

/// The type and status of a group of this account.
pub(crate) async fn group_kind(
    conn: &mut AnyConnection,
    account: AccountId,
    id: GroupId,
) -> Result<(String, String)> {
    sqlx::query_as("SELECT group_type, status FROM groups WHERE account_id = $1 AND id = $2")
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("group"))
}

/// Criteria may name only active groups of the same account, not themselves, and not
/// through a cycle of smart groups.
async fn check_named_groups(
    conn: &mut AnyConnection,
    engine: &mut Engine,
    account: i64,
    group: i64,
    criteria: &Criteria,
) -> Result<()> {
    let named = criteria.groups();
    for other in &named {
        if *other == group {
            return Err(StoreError::invalid(
                "criteria",
                "a group's criteria cannot name the group itself",
            ));
        }
        let found: Option<String> =
            sqlx::query_scalar("SELECT status FROM groups WHERE account_id = $1 AND id = $2")
                .bind(account)
                .bind(other)
                .fetch_optional(&mut *conn)
                .await?;
        if found.as_deref() != Some("active") {
            return Err(StoreError::invalid(
                "criteria",
                format!(
                    "group {other} named by `member_of` is not an active group of this account"
                ),
            ));
        }
    }
    let rules = engine.account(conn, account).await?;
    let edges: Vec<(i64, Vec<i64>)> = rules
        .rules
        .iter()
        .map(|r| (r.group, r.groups.clone()))
        .collect();
    if creates_cycle(&edges, group, &named) {
        return Err(StoreError::invalid(
            "criteria",
            "the groups named by `member_of` lead back to this group (a cycle)",
        ));
    }
    Ok(())
}

/// The first active smart group whose criteria count events of the type `name`.
pub(crate) async fn group_counting_type(
    conn: &mut AnyConnection,
    account: i64,
    name: &str,
) -> Result<Option<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT g.name, v.criteria FROM groups g JOIN group_versions v ON v.group_id = g.id \
         AND v.version = g.version WHERE g.account_id = $1 AND g.group_type = 'smart_group' \
         AND g.status = 'active' ORDER BY g.id",
    )
    .bind(account)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().find_map(|(group, text)| {
        let value: Value = serde_json::from_str(&text).ok()?;
        let criteria = Criteria::parse(&value).ok()?;
        criteria.mentions_type(name).then_some(group)
    }))
}

/// A group's stored criteria as JSON; text that does not parse is an error naming the
/// group, not criteria of `null` (which would read as the caller's invalid input).
fn stored_criteria(group: GroupId, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Corrupt(format!(
            "group {}: its criteria cannot be read: {e}",
            group.0
        ))
    })
}

/// Event type ids of the account whose names some event leaf matches, with the names.
async fn matching_types(
    conn: &mut AnyConnection,
    account: i64,
    criteria: &Criteria,
) -> Result<HashMap<i64, SharedText>> {
    let types: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM event_types WHERE account_id = $1")
            .bind(account)
            .fetch_all(&mut *conn)
            .await?;
    Ok(types
        .into_iter()
        .filter(|(_, name)| criteria.mentions_type(name))
        .map(|(id, name)| (id, Arc::new(name)))
        .collect())
}

/// The earliest `occurred_at` an event can have and still count for `criteria` at some
/// instant from `from` on.
fn earliest_counting(criteria: &Criteria, from: i64) -> i64 {
    criteria
        .event_leaves()
        .iter()
        .map(|leaf| match leaf.window {
            Window::Any => i64::MIN,
            Window::Rolling(period) => period.before_ms(from),
            Window::Between(start, _) => start - 1,
        })
        .min()
        .unwrap_or(i64::MAX)
}

/// Everyone of the account with the facts `criteria` need to be evaluated at any instant
/// from `from` on: status, the attributes it names, memberships of the groups it names,
/// and matching events (pruned at `from`). With `group`, also that group's schedule.
pub(crate) async fn population(
    conn: &mut AnyConnection,
    account: i64,
    criteria: &Criteria,
    from: i64,
    group: Option<i64>,
) -> Result<HashMap<i64, Person>> {
    use sqlx::Row;
    let attributes = criteria.user_attributes();
    let columns: String = attributes
        .iter()
        .map(|a| format!(", {a}"))
        .collect::<String>();
    let rows = sqlx::query(&format!(
        "SELECT id, status{columns} FROM users WHERE account_id = $1"
    ))
    .bind(account)
    .fetch_all(&mut *conn)
    .await?;
    let mut people: HashMap<i64, Person> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        cooperate(i).await;
        let mut person = Person {
            active: row.try_get::<String, _>(1)? == "active",
            ..Person::default()
        };
        for (i, name) in attributes.iter().enumerate() {
            if let Some(value) = row.try_get::<Option<String>, _>(i + 2)?
                && !value.is_empty()
            {
                person.attributes.push((name, value));
            }
        }
        people.insert(row.try_get(0)?, person);
    }
    debug_assert!(
        attributes
            .iter()
            .all(|a| attribute_names().any(|n| n == *a))
    );

    let leaves = criteria.event_leaves();
    if !leaves.is_empty() {
        let since = earliest_counting(criteria, from);
        let types = matching_types(conn, account, criteria).await?;
        // Without a description test the read is covered by `events_type_time`.
        let description = leaves.iter().any(|l| l.description.is_some());
        // One copy of each description, as in the engine.
        let mut descriptions = HashMap::new();
        let mut pruner = Pruner::new(&leaves, from);
        for (&type_id, name) in &types {
            let walk = Walk::Recent { type_id, since };
            let type_leaves: Vec<&EventLeaf> = leaves
                .iter()
                .filter(|l| l.matches_type(name))
                .copied()
                .collect();
            each_event(conn, walk, description, |row| {
                let Some(person) = people.get_mut(&row.user) else {
                    return;
                };
                let Some(fact) = fact_of(&row, name, &type_leaves, &mut descriptions) else {
                    return;
                };
                person.events.push(fact);
                if person.events.len() >= 64 && person.events.len().is_power_of_two() {
                    pruner.prune(&mut person.events);
                }
            })
            .await?;
        }
        // Only what can still count is kept: these facts become the engine's cache (see
        // `AccountRules::rebuilt`), where a person's whole history of the watched types
        // held ten times the memory and made every evaluation walk it.
        for (i, person) in people.values_mut().enumerate() {
            cooperate(i).await;
            pruner.prune(&mut person.events);
            person.pruned_len = person.events.len();
            person.events.shrink_to_fit();
        }
    }

    let mut named = criteria.groups();
    named.extend(group);
    if !named.is_empty() {
        let members: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT user_id, group_id FROM group_members WHERE {}",
            Backend::of_connection(conn).in_list("group_id", 1, ListOf::Integers)
        ))
        .bind(Backend::list(&named))
        .fetch_all(&mut *conn)
        .await?;
        for (user, group) in members {
            if let Some(person) = people.get_mut(&user) {
                person.groups.insert(group);
            }
        }
    }
    if let Some(group) = group {
        let dues: Vec<(i64, i64)> =
            sqlx::query_as("SELECT user_id, due_at FROM group_schedule WHERE group_id = $1")
                .bind(group)
                .fetch_all(&mut *conn)
                .await?;
        for (user, due) in dues {
            if let Some(person) = people.get_mut(&user) {
                person.dues.insert(group, due);
            }
        }
    }
    Ok(people)
}

/// A preview's answers over some people.
struct Tally {
    /// How many match at each instant.
    daily: Vec<usize>,
    /// Who matches at the last instant.
    matching: Vec<i64>,
}

impl Tally {
    fn of(criteria: &Criteria, people: &[(&i64, &Person)], instants: &[i64]) -> Self {
        let mut tally = Tally {
            daily: vec![0; instants.len()],
            matching: Vec::new(),
        };
        for (user, person) in people {
            let answers = matches_at(criteria, *person, instants);
            for (count, holds) in tally.daily.iter_mut().zip(&answers) {
                *count += usize::from(*holds);
            }
            if answers.last() == Some(&true) {
                tally.matching.push(**user);
            }
        }
        tally
    }
}

/// What [`Store::snapshot`] read: everyone's facts for one criteria, and how far the
/// read saw (the last event and history row, the instant it began).
pub(crate) struct Snapshot {
    people: HashMap<i64, Person>,
    /// PostgreSQL: the account's versions the read saw. Other nodes change facts beside
    /// it, with ids and clocks of their own: what changed since is what `fact_log` says
    /// changed after these versions, not what `last_event` and `last_history` mark.
    versions: Option<Versions>,
    last_event: i64,
    last_history: i64,
    at: i64,
    /// Event types renamed or deleted since make the read's type matching stale.
    type_generation: u64,
}

/// Rounds of [`Store::catch_up`] before a group change takes the locks regardless.
const CATCH_UP_ROUNDS: usize = 8;

/// Few enough people changed since a snapshot to read them under the locks.
const CAUGHT_UP: usize = 64;

/// How far a read sees: the last event and the last group history row.
/// The account's versions (PostgreSQL; `None` on SQLite, where one writer orders every
/// change and [`marks`] tell what came since).
async fn read_versions(conn: &mut AnyConnection, account: i64) -> Result<Option<Versions>> {
    if Backend::of_connection(conn) != Backend::Postgres {
        return Ok(None);
    }
    let (facts, rules): (i64, i64) =
        sqlx::query_as("SELECT fact_version, rules_version FROM accounts WHERE id = $1")
            .bind(account)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Some(Versions { facts, rules }))
}

/// The people whose facts changed after `since` (PostgreSQL), up to what `conn` sees
/// now, and the facts version that is; `None` when the log no longer reaches back to
/// `since` (it keeps minutes).
async fn changed_since(
    conn: &mut AnyConnection,
    account: i64,
    since: Versions,
) -> Result<(Option<HashSet<i64>>, Versions)> {
    let now = read_versions(conn, account).await?.unwrap_or(since);
    let log: Vec<(i64, String)> = sqlx::query_as(
        "SELECT version, array_to_string(users, ',') FROM fact_log \
         WHERE account_id = $1 AND version > $2 AND version <= $3 ORDER BY version",
    )
    .bind(account)
    .bind(since.facts)
    .bind(now.facts)
    .fetch_all(&mut *conn)
    .await?;
    if log.len() as i64 != now.facts - since.facts {
        return Ok((None, now));
    }
    let users = (log.iter())
        .flat_map(|(_, users)| users.split(','))
        .filter_map(|user| user.parse().ok())
        .collect();
    Ok((Some(users), now))
}

async fn marks(conn: &mut AnyConnection) -> Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT COALESCE((SELECT MAX(id) FROM events), 0), \
         COALESCE((SELECT MAX(id) FROM group_history), 0)",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Brings `snapshot` up to what `conn` sees (a read snapshot beside the locks, or the
/// write transaction under them), reading at `at`: the people whose row (attributes,
/// status, aliases, a deleted event) or relevant memberships changed are read again
/// whole; the events stored since are added to the others' facts, and their schedule
/// entries for `group` read again. Reading those people again whole would read all
/// their events, many times what changed. Returns how many people changed.
async fn catch_up(
    conn: &mut AnyConnection,
    account: i64,
    criteria: &Criteria,
    group: Option<i64>,
    snapshot: &mut Snapshot,
    at: i64,
) -> Result<usize> {
    let backend = Backend::of_connection(conn);
    let (changed, events) = match snapshot.versions {
        // PostgreSQL: everyone another change touched since is read again whole.
        Some(since) => {
            let (changed, now) = changed_since(conn, account, since).await?;
            snapshot.versions = Some(now);
            match changed {
                Some(changed) => (changed, Vec::new()),
                None => {
                    snapshot.people = population(conn, account, criteria, at, group).await?;
                    snapshot.at = at;
                    return Ok(snapshot.people.len());
                }
            }
        }
        // SQLite: one writer, whose ids and history rows come in commit order.
        None => {
            let (last_event, last_history) = marks(conn).await?;
            let mut named = criteria.groups();
            named.extend(group);
            let changed: HashSet<i64> = sqlx::query_scalar(&format!(
                "SELECT id FROM users WHERE account_id = $1 AND updated_at >= $2 \
                 UNION SELECT user_id FROM group_history WHERE id > $3 AND id <= $4 \
                 AND account_id = $1 AND {}",
                backend.in_list("group_id", 5, ListOf::Integers)
            ))
            .bind(account)
            .bind(snapshot.at)
            .bind(snapshot.last_history)
            .bind(last_history)
            .bind(Backend::list(&named))
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
            // By the key's range: given the choice, SQLite walks the account's index, every
            // event of the account (0.7 s at 10 M events, under the locks).
            let events: Vec<(i64, i64, i64, String, Option<String>, i64)> =
                sqlx::query_as(&format!(
                    "SELECT e.user_id, e.id, e.id_low, t.name, e.description, e.occurred_at \
                 FROM {} JOIN event_types t ON t.id = e.event_type_id \
                 WHERE e.id > $2 AND e.id <= $3 AND e.account_id = $1 AND e.user_id IS NOT NULL",
                    backend.table_using("events e", None)
                ))
                .bind(account)
                .bind(snapshot.last_event)
                .bind(last_event)
                .fetch_all(&mut *conn)
                .await?;
            snapshot.last_event = last_event;
            snapshot.last_history = last_history;
            (changed, events)
        }
    };
    // The facts a rule of these criteria needs, whatever its group and version.
    let mut rules = AccountRules::new(vec![Rule::new(0, 0, criteria.clone())]);
    rules.adopt(std::mem::take(&mut snapshot.people));
    for user in &changed {
        rules.forget(*user);
    }
    let reread: Vec<i64> = changed.iter().copied().collect();
    rules.load_people(conn, account, &reread, at).await?;
    let mut added = HashSet::new();
    for (i, (user, hi, lo, event_type, description, occurred_ms)) in events.into_iter().enumerate()
    {
        cooperate(i).await;
        if changed.contains(&user) {
            continue;
        }
        added.insert(user);
        let fact = EventFact {
            id: EventId { hi, lo },
            event_type: Arc::new(event_type),
            description: description.map(Arc::new),
            occurred_ms,
        };
        rules.add_event(user, fact, &[0], at);
    }
    let mut people = rules.into_people();
    // An event moves its person's due in the group's current version.
    if let Some(group) = group
        && !added.is_empty()
    {
        let users: Vec<i64> = added.iter().copied().collect();
        let dues: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT user_id, due_at FROM group_schedule WHERE group_id = $1 AND {}",
            backend.in_list("user_id", 2, ListOf::Integers)
        ))
        .bind(group)
        .bind(Backend::list(&users))
        .fetch_all(&mut *conn)
        .await?;
        for user in &users {
            if let Some(person) = people.get_mut(user) {
                person.dues.remove(&group);
            }
        }
        for (user, due) in dues {
            if let Some(person) = people.get_mut(&user) {
                person.dues.insert(group, due);
            }
        }
    }
    snapshot.people = people;
    snapshot.at = at;
    Ok(changed.len() + added.len())
}

/// Evaluates a (new version of a) smart group over everyone and records joins, leaves
/// and schedule entries in the caller's transaction: from `snapshot`, caught up here with
/// what changed since (without one, everyone is read here). Returns what it wrote, and
/// everyone evaluated with the facts the criteria need (for the engine's cache).
async fn backfill(
    conn: &mut AnyConnection,
    account: i64,
    group: i64,
    version: i64,
    criteria: &Criteria,
    now: i64,
    snapshot: Option<Snapshot>,
) -> Result<(Backfill, Outcome, HashMap<i64, Person>)> {
    let started = std::time::Instant::now();
    let (people, changed) = match snapshot {
        Some(mut snapshot) => {
            // Under the locks: what changed since the snapshot's last catch-up.
            let changed =
                catch_up(conn, account, criteria, Some(group), &mut snapshot, now).await?;
            (snapshot.people, changed)
        }
        None => {
            let group = Some(group);
            let people = population(conn, account, criteria, now, group).await?;
            (people, 0)
        }
    };
    let loaded_at = started.elapsed();
    let mut rules = AccountRules::new(vec![Rule::new(group, version, criteria.clone())]);
    rules.adopt(people);
    let mut outcome = Outcome::default();
    let evaluated = rules.people_ids().len();
    for (i, user) in rules.people_ids().into_iter().enumerate() {
        cooperate(i).await;
        rules.evaluate(
            account,
            user,
            [0],
            When {
                now,
                at: now,
                schedule: Schedule::Exact,
            },
            &mut outcome,
        );
    }
    let evaluated_at = started.elapsed();
    outcome.write(conn, now).await?;
    tracing::debug!(
        changed,
        catch_up_ms = loaded_at.as_millis() as u64,
        evaluate_ms = (evaluated_at - loaded_at).as_millis() as u64,
        write_ms = (started.elapsed() - evaluated_at).as_millis() as u64,
        "backfill under the locks"
    );
    let summary = Backfill {
        evaluated,
        joined: outcome.joined(),
        left: outcome.left(),
        took_ms: started.elapsed().as_millis() as i64,
    };
    Ok((summary, outcome, rules.into_people()))
}
