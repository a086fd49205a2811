//! Reading and deleting stored events (writing them is `ingest`).

use crate::sql::QueryBuilder;
use crate::{Page, Result, Store, StoreError};
use coachloop_core::event_id::EventId;
use coachloop_core::identity::normalize_identity;
use coachloop_core::ids::{AccountId, EventTypeId, UserId};
use sqlx::FromRow;
use tracing::instrument;

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub id_low: i64,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    #[sqlx(try_from = "crate::db::NullableId")]
    pub user_id: Option<UserId>,
    pub user_email: Option<String>,
    #[sqlx(try_from = "crate::db::Flag")]
    pub user_archived: bool,
    pub target_user: String,
    pub external_id: Option<String>,
    pub source: Option<String>,
    pub description: Option<String>,
    pub occurred_at: i64,
    pub risk_level: Option<i64>,
    pub risk_decay_mode: Option<i64>,
    pub risk_expire_date: Option<i64>,
    pub metadata: Option<String>,
    #[sqlx(try_from = "i64")]
    pub event_type_id: EventTypeId,
    pub event_type_name: String,
    pub event_type_description: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventOrder {
    Id,
    EventType,
    #[default]
    OccurredDate,
}

/// Filters of `GET /events`; every one is optional.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub target_user: Option<String>,
    pub external_id: Option<String>,
    pub source: Option<String>,
    /// Events that occurred on this UTC day: `[start, start + 1 day)` in epoch ms.
    pub occurred_between: Option<(i64, i64)>,
    pub risk_level: Option<i64>,
    pub order_by: EventOrder,
    pub ascending: bool,
}

impl EventRow {
    pub fn event_id(&self) -> EventId {
        EventId {
            hi: self.id,
            lo: self.id_low,
        }
    }
}

const SELECT: &str = "SELECT e.id, e.id_low, e.account_id, e.user_id, u.email AS user_email, \
    (COALESCE(u.status, '') = 'archived') AS user_archived, e.target_user, e.external_id, e.source, \
    e.description, e.occurred_at, e.risk_level, e.risk_decay_mode, e.risk_expire_date, \
    e.metadata, e.event_type_id, t.name AS event_type_name, \
    t.description AS event_type_description \
    FROM events e JOIN event_types t ON t.id = e.event_type_id \
    LEFT JOIN users u ON u.id = e.user_id";

impl Store {
    #[instrument(skip_all)]
    pub async fn event(&self, account: AccountId, id: EventId) -> Result<EventRow> {
        sqlx::query_as(&format!(
            "{SELECT} WHERE e.id = $1 AND e.id_low = $2 AND e.account_id = $3"
        ))
        .bind(id.hi)
        .bind(id.lo)
        .bind(account.0)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound("event"))
    }

    /// A page of events and how many match in all.
    #[instrument(skip_all)]
    pub async fn list_events(
        &self,
        account: AccountId,
        filter: &EventFilter,
        page: Page,
    ) -> Result<(Vec<EventRow>, i64)> {
        let mut select = QueryBuilder::new(SELECT);
        push_event_filter(&mut select, account, filter);
        let direction = if filter.ascending { "ASC" } else { "DESC" };
        let order = match filter.order_by {
            EventOrder::Id => format!(" ORDER BY e.id {direction}"),
            EventOrder::EventType => format!(" ORDER BY t.name {direction}, e.id {direction}"),
            EventOrder::OccurredDate => {
                format!(" ORDER BY e.occurred_at {direction}, e.id {direction}")
            }
        };
        select
            .push(order)
            .push(" LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset());
        let rows: Vec<EventRow> = select.build_query_as().fetch_all(&self.read).await?;
        let total = self
            .page_total(
                page,
                rows.len(),
                "events e JOIN event_types t ON t.id = e.event_type_id",
                |query| push_event_filter(query, account, filter),
            )
            .await?;
        Ok((rows, total))
    }

    /// A person's events, newest first, and how many there are.
    #[instrument(skip_all)]
    pub async fn timeline(
        &self,
        account: AccountId,
        user: UserId,
        page: Page,
    ) -> Result<(Vec<EventRow>, i64)> {
        // Proves the person is of this account (404 otherwise).
        self.user(account, user).await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE account_id = $1 AND user_id = $2",
        )
        .bind(account.0)
        .bind(user.0)
        .fetch_one(&self.read)
        .await?;
        let rows = sqlx::query_as(&format!(
            "{SELECT} WHERE e.account_id = $1 AND e.user_id = $2 \
             ORDER BY e.occurred_at DESC, e.id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(account.0)
        .bind(user.0)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        Ok((rows, total))
    }

    /// Deletes an event; it stops counting everywhere at once.
    #[instrument(skip_all)]
    pub async fn delete_event(&self, account: AccountId, id: EventId) -> Result<()> {
        let mut change = self.change_facts(account).await?;
        let deleted: Option<Option<i64>> = sqlx::query_scalar(
            "DELETE FROM events WHERE id = $1 AND id_low = $2 AND account_id = $3 \
             RETURNING user_id",
        )
        .bind(id.hi)
        .bind(id.lo)
        .bind(account.0)
        .fetch_optional(&mut *change.tx)
        .await?;
        let Some(user) = deleted else {
            return Err(StoreError::NotFound("event"));
        };
        // The event stops counting toward every smart group at once. Its person's row
        // is marked changed, for a smart group's backfill reading beside the locks.
        if let Some(user) = user {
            sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2")
                .bind(change.now)
                .bind(user)
                .execute(&mut *change.tx)
                .await?;
        }
        let people: Vec<UserId> = user.map(UserId).into_iter().collect();
        self.commit_people(change, account, &people).await
    }
}

fn push_event_filter(query: &mut QueryBuilder<'_>, account: AccountId, filter: &EventFilter) {
    query.push(" WHERE e.account_id = ").push_bind(account.0);
    if let Some(name) = &filter.event_type {
        query.push(" AND t.name = ").push_bind(name.clone());
    }
    if let Some(target) = &filter.target_user {
        let norm = normalize_identity(target);
        query
            .push(" AND (e.target_norm = ")
            .push_bind(norm.clone())
            .push(" OR e.user_id = (SELECT user_id FROM user_identities WHERE account_id = ")
            .push_bind(account.0)
            .push(" AND identity = ")
            .push_bind(norm)
            .push("))");
    }
    if let Some(external_id) = &filter.external_id {
        query
            .push(" AND e.external_id = ")
            .push_bind(external_id.clone());
    }
    if let Some(source) = &filter.source {
        query.push(" AND e.source = ").push_bind(source.clone());
    }
    if let Some((from, to)) = filter.occurred_between {
        query
            .push(" AND e.occurred_at >= ")
            .push_bind(from)
            .push(" AND e.occurred_at < ")
            .push_bind(to);
    }
    if let Some(level) = filter.risk_level {
        query.push(" AND e.risk_level = ").push_bind(level);
    }
}
