//! An account's administrators: the people who run its training (the Reporting API's
//! `admins`). Email is unique per account, case-insensitively.

use crate::{Result, Store, StoreError, is_unique_violation};
use coachloop_core::identity::Email;
use coachloop_core::ids::{AccountId, AdminId};
use sqlx::FromRow;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Admin {
    #[sqlx(try_from = "i64")]
    pub id: AdminId,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub created_at: i64,
}

/// A new administrator.
#[derive(Debug, Clone)]
pub struct NewAdmin {
    pub email: Email,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

const COLUMNS: &str = "id, email, first_name, last_name, created_at";

impl Store {
    pub async fn create_admin(&self, account: AccountId, new: &NewAdmin) -> Result<Admin> {
        sqlx::query_as(&format!(
            "INSERT INTO admins (account_id, email, email_norm, first_name, last_name, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(account.0)
        .bind(new.email.as_str())
        .bind(new.email.normalized())
        .bind(&new.first_name)
        .bind(&new.last_name)
        .bind(self.now_ms())
        .fetch_one(&self.write)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::conflict(
                    "email",
                    format!("`{}` is an administrator already", new.email.as_str()),
                )
            } else {
                e.into()
            }
        })
    }

    pub async fn list_admins(&self, account: AccountId) -> Result<Vec<Admin>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM admins WHERE account_id = $1 ORDER BY id"
        ))
        .bind(account.0)
        .fetch_all(&self.read)
        .await?)
    }

    pub async fn delete_admin(&self, account: AccountId, id: AdminId) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM admins WHERE account_id = $1 AND id = $2")
            .bind(account.0)
            .bind(id.0)
            .execute(&self.write)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound("admin"));
        }
        Ok(())
    }
}
