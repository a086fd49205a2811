//! Event types of an account: the built-in catalog and the ones senders create.

use crate::fact_change::FactChange;
use crate::groups::group_counting_type;
use crate::{Result, Store, StoreError, is_unique_violation};
use coachloop_core::ids::{AccountId, EventTypeId};
use sqlx::FromRow;
use std::sync::atomic::Ordering;
use tracing::instrument;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct EventType {
    #[sqlx(try_from = "i64")]
    pub id: EventTypeId,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    pub name: String,
    pub description: Option<String>,
    #[sqlx(try_from = "crate::db::Flag")]
    pub built_in: bool,
}

const SELECT: &str = "SELECT id, account_id, name, description, built_in FROM event_types";

fn name_conflict(err: sqlx::Error, name: &str) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::conflict(
            "name",
            format!("an event type named `{name}` exists already"),
        )
    } else {
        err.into()
    }
}

impl Store {
    #[instrument(skip_all)]
    pub async fn list_event_types(
        &self,
        account: AccountId,
        name: Option<&str>,
    ) -> Result<Vec<EventType>> {
        let rows = match name {
            Some(name) => {
                sqlx::query_as(&format!(
                    "{SELECT} WHERE account_id = $1 AND name = $2 ORDER BY id"
                ))
                .bind(account.0)
                .bind(name.trim())
                .fetch_all(&self.read)
                .await?
            }
            None => {
                sqlx::query_as(&format!("{SELECT} WHERE account_id = $1 ORDER BY id"))
                    .bind(account.0)
                    .fetch_all(&self.read)
                    .await?
            }
        };
        Ok(rows)
    }

    #[instrument(skip_all)]
    pub async fn event_type(&self, account: AccountId, id: EventTypeId) -> Result<EventType> {
        sqlx::query_as(&format!("{SELECT} WHERE account_id = $1 AND id = $2"))
            .bind(account.0)
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound("event type"))
    }

    #[instrument(skip_all)]
    pub async fn create_event_type(
        &self,
        account: AccountId,
        name: &str,
        description: Option<&str>,
    ) -> Result<EventType> {
        sqlx::query_as(
            "INSERT INTO event_types (account_id, name, description, built_in, created_at) \
             VALUES ($1, $2, $3, FALSE, $4) RETURNING id, account_id, name, description, built_in",
        )
        .bind(account.0)
        .bind(name)
        .bind(description)
        .bind(self.now_ms())
        .fetch_one(&self.write)
        .await
        .map_err(|e| name_conflict(e, name))
    }

    /// Renames and/or re-describes a type; `None` keeps the field.
    #[instrument(skip_all)]
    pub async fn update_event_type(
        &self,
        account: AccountId,
        id: EventTypeId,
        name: Option<&str>,
        description: Option<Option<&str>>,
    ) -> Result<EventType> {
        let current = self.event_type(account, id).await?;
        let name = name.unwrap_or(&current.name);
        let description = description.unwrap_or(current.description.as_deref());
        if name != current.name {
            // A rename would silently change what smart groups count.
            let mut conn = self.read.acquire().await?;
            for side in [current.name.as_str(), name] {
                if let Some(group) = group_counting_type(&mut conn, account.0, side).await? {
                    return Err(StoreError::conflict(
                        "name",
                        format!(
                            "smart group `{group}` counts events of type `{side}`; \
                             change its criteria before renaming this type"
                        ),
                    ));
                }
            }
        }
        let mut change = self.change_facts(account).await?;
        let renamed: EventType = sqlx::query_as(
            "UPDATE event_types SET name = $1, description = $2 WHERE account_id = $3 AND id = $4 \
             RETURNING id, account_id, name, description, built_in",
        )
        .bind(name)
        .bind(description)
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&mut *change.tx)
        .await
        .map_err(|e| name_conflict(e, name))?
        .ok_or(StoreError::NotFound("event type"))?;
        self.commit_type_change(change, account).await?;
        Ok(renamed)
    }

    /// Commits a change of the account's event types: cached people's events name their
    /// types, and every event writer keeps names of types (other nodes' learn of it from
    /// the account's rules version).
    async fn commit_type_change(&self, mut change: FactChange, account: AccountId) -> Result<()> {
        change.engine.take(account.0);
        change.engine.rules_changed(account.0);
        change.commit(&self.wakes).await?;
        self.event_types_changed();
        Ok(())
    }

    pub(crate) fn event_types_changed(&self) {
        self.type_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Deletes a type no event uses; one in use is a conflict.
    #[instrument(skip_all)]
    pub async fn delete_event_type(&self, account: AccountId, id: EventTypeId) -> Result<()> {
        let mut change = self.change_facts(account).await?;
        let tx = &mut change.tx;
        // Scoped to the account, so another account's type answers "not found", not
        // "in use".
        let in_use: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events \
             WHERE event_type_id = $1 AND account_id = $2 LIMIT 1) AS used",
        )
        .bind(id.0)
        .bind(account.0)
        .fetch_one(&mut **tx)
        .await?;
        if in_use > 0 {
            return Err(StoreError::conflict(
                "id",
                "events of this type exist; delete them first or keep the type",
            ));
        }
        let name: Option<String> =
            sqlx::query_scalar("SELECT name FROM event_types WHERE account_id = $1 AND id = $2")
                .bind(account.0)
                .bind(id.0)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(name) = name
            && let Some(group) = group_counting_type(tx, account.0, &name).await?
        {
            return Err(StoreError::conflict(
                "id",
                format!(
                    "smart group `{group}` counts events of this type; change its criteria first"
                ),
            ));
        }
        let done = sqlx::query("DELETE FROM event_types WHERE account_id = $1 AND id = $2")
            .bind(account.0)
            .bind(id.0)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("event type"));
        }
        self.commit_type_change(change, account).await
    }
}
