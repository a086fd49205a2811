//! The record of each accepted `POST /events` request (`GET /statuses`).

use crate::{Page, Result, Store, StoreError};
use coachloop_core::ids::AccountId;
use sqlx::FromRow;
use tracing::instrument;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct StatusRow {
    pub uuid: String,
    pub token_name: String,
    pub integration: Option<String>,
    /// Event ids, packed (see `coachloop_core::event_id::pack`).
    pub events: Vec<u8>,
    /// JSON array of `{index, reason, ...}`.
    pub failures: String,
    pub processed_at: i64,
}

const SELECT: &str =
    "SELECT uuid, token_name, integration, events, failures, processed_at FROM event_requests";

impl Store {
    #[instrument(skip_all)]
    pub async fn status(&self, account: AccountId, uuid: &str) -> Result<StatusRow> {
        sqlx::query_as(&format!("{SELECT} WHERE account_id = $1 AND uuid = $2"))
            .bind(account.0)
            .bind(uuid)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound("status"))
    }

    /// A page of request statuses, newest first, and how many there are. Every stored
    /// request is processed (it is processed before it is answered), so asking for
    /// unprocessed ones yields none.
    #[instrument(skip_all)]
    pub async fn list_statuses(
        &self,
        account: AccountId,
        processed: Option<bool>,
        page: Page,
    ) -> Result<(Vec<StatusRow>, i64)> {
        if processed == Some(false) {
            return Ok((Vec::new(), 0));
        }
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM event_requests WHERE account_id = $1")
                .bind(account.0)
                .fetch_one(&self.read)
                .await?;
        let rows = sqlx::query_as(&format!(
            "{SELECT} WHERE account_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(account.0)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        Ok((rows, total))
    }
}
