//! Accounts (tenants) and the catalog every new account starts with.

use crate::sql::QueryBuilder;
use crate::{Result, Store, StoreError, is_unique_violation};
use coachloop_core::catalog;
use coachloop_core::ids::AccountId;
use sqlx::FromRow;
use tracing::instrument;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Account {
    #[sqlx(try_from = "i64")]
    pub id: AccountId,
    pub name: String,
    pub created_at: i64,
}

fn parse_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "name",
            "an account name is 1 to 100 printable characters",
        ));
    }
    Ok(name)
}

impl Store {
    /// Creates an account with the built-in event catalog; a taken name is a conflict.
    #[instrument(skip_all)]
    pub async fn create_account(&self, name: &str) -> Result<Account> {
        let name = parse_name(name)?;
        let now = self.now_ms();
        let mut tx = self.begin_write(&crate::Locks::none()).await?;
        let account: Account = sqlx::query_as(
            "INSERT INTO accounts (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at",
        )
        .bind(name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::conflict("name", format!("an account named `{name}` exists already"))
            } else {
                e.into()
            }
        })?;
        seed_catalog(&mut tx, account.id, now).await?;
        crate::content::sync_library(&mut tx, account.id.0, now).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// Returns the account named `name`, creating it when missing.
    #[instrument(skip_all)]
    pub async fn ensure_account(&self, name: &str) -> Result<Account> {
        if let Some(account) = self.account_by_name(name).await? {
            return Ok(account);
        }
        match self.create_account(name).await {
            Err(StoreError::Conflict(_)) => self
                .account_by_name(name)
                .await?
                .ok_or(StoreError::NotFound("account")),
            other => other,
        }
    }

    #[instrument(skip_all)]
    pub async fn account_by_name(&self, name: &str) -> Result<Option<Account>> {
        Ok(
            sqlx::query_as("SELECT id, name, created_at FROM accounts WHERE name = $1")
                .bind(name.trim())
                .fetch_optional(&self.read)
                .await?,
        )
    }

    #[instrument(skip_all)]
    pub async fn account(&self, id: AccountId) -> Result<Account> {
        sqlx::query_as("SELECT id, name, created_at FROM accounts WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound("account"))
    }

    #[instrument(skip_all)]
    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        Ok(
            sqlx::query_as("SELECT id, name, created_at FROM accounts ORDER BY id")
                .fetch_all(&self.read)
                .await?,
        )
    }
}

async fn seed_catalog(tx: &mut sqlx::AnyConnection, account: AccountId, now: i64) -> Result<()> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO event_types (account_id, name, description, built_in, created_at) ",
    );
    insert.push_values(catalog::DASHLANE, |mut row, entry| {
        row.push_bind(account.0)
            .push_bind(entry.name)
            .push_bind(entry.description)
            .push_bind(true)
            .push_bind(now);
    });
    insert.push(" ON CONFLICT (account_id, name) DO NOTHING");
    insert.build().execute(&mut *tx).await?;
    Ok(())
}
