//! The admin console's sign-in and sessions. The store keeps what must hold across
//! nodes: an administrator's password hash, their run of failed sign-ins and when a
//! lock-out ends, and each session (known by the SHA-256 of its cookie's secret, never
//! the secret) with the token its forms carry. Hashing passwords is the server's.

use crate::admins::Admin;
use crate::{Result, Store, StoreError};
use coachloop_core::identity::Email;
use coachloop_core::ids::{AccountId, AdminId};
use sqlx::FromRow;
use subtle::ConstantTimeEq;

/// What signing in needs to know of an administrator.
#[derive(Debug, Clone, FromRow)]
pub struct Credentials {
    #[sqlx(try_from = "i64")]
    pub account: AccountId,
    #[sqlx(try_from = "i64")]
    pub admin: AdminId,
    /// None: the administrator has no password (they cannot sign in to the console).
    pub password_hash: Option<String>,
    /// When a lock-out ends (epoch ms), if one was set.
    pub locked_until: Option<i64>,
}

/// A live console session.
#[derive(Debug, Clone, FromRow)]
pub struct ConsoleSession {
    #[sqlx(try_from = "i64")]
    pub account: AccountId,
    pub account_name: String,
    #[sqlx(try_from = "i64")]
    pub admin: AdminId,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The token every form of this session carries.
    pub csrf: String,
    pub expires_at: i64,
    token_hash: String,
}

/// When repeated failures lock an administrator out.
#[derive(Debug, Clone, Copy)]
pub struct LockOut {
    /// Failures in a row that lock.
    pub after: i64,
    /// For how long, in ms.
    pub for_ms: i64,
}

impl ConsoleSession {
    /// The stored hash of the session's secret (what signing out ends it by).
    pub fn token_hash(&self) -> &str {
        &self.token_hash
    }
}

impl Store {
    /// Sets an administrator's console password (a PHC string), adding the administrator
    /// when the account has none with that email. Ends their sessions and any lock-out.
    /// Returns the administrator and whether they were added.
    pub async fn set_admin_password(
        &self,
        account: AccountId,
        email: &Email,
        password_hash: &str,
    ) -> Result<(Admin, bool)> {
        let now = self.now_ms();
        let mut tx = self.begin_write(&crate::Locks::none()).await?;
        let existing: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM admins WHERE account_id = $1 AND email_norm = $2")
                .bind(account.0)
                .bind(email.normalized())
                .fetch_optional(&mut *tx)
                .await?;
        let id = match existing {
            Some((id,)) => {
                sqlx::query(
                    "UPDATE admins SET password_hash = $3, failed_sign_ins = 0, locked_until = NULL \
                     WHERE account_id = $1 AND id = $2",
                )
                .bind(account.0)
                .bind(id)
                .bind(password_hash)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE console_sessions SET ended_at = $3 \
                     WHERE account_id = $1 AND admin_id = $2 AND ended_at IS NULL",
                )
                .bind(account.0)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO admins (account_id, email, email_norm, created_at, password_hash) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(account.0)
                .bind(email.as_str())
                .bind(email.normalized())
                .bind(now)
                .bind(password_hash)
                .fetch_one(&mut *tx)
                .await?;
                id
            }
        };
        tx.commit().await?;
        let admin = self.admin(account, AdminId(id)).await?;
        Ok((admin, existing.is_none()))
    }

    /// The administrator who signs in as `email` to the account named `account`.
    pub async fn sign_in_credentials(
        &self,
        account: &str,
        email: &Email,
    ) -> Result<Option<Credentials>> {
        Ok(sqlx::query_as(
            "SELECT ad.account_id AS account, ad.id AS admin, ad.password_hash, ad.locked_until \
             FROM admins ad JOIN accounts a ON a.id = ad.account_id \
             WHERE a.name = $1 AND ad.email_norm = $2",
        )
        .bind(account)
        .bind(email.normalized())
        .fetch_optional(&self.read)
        .await?)
    }

    /// Counts a failed sign-in. The failure that completes a run of `lock.after` locks
    /// the administrator out until the returned instant (and starts the count again);
    /// one node or several, the count is the database's.
    pub async fn sign_in_failed(
        &self,
        account: AccountId,
        admin: AdminId,
        lock: LockOut,
    ) -> Result<Option<i64>> {
        let now = self.now_ms();
        let (locked_until,): (Option<i64>,) = sqlx::query_as(
            "UPDATE admins SET \
               locked_until = CASE WHEN failed_sign_ins + 1 >= $3 THEN $4 ELSE locked_until END, \
               failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= $3 THEN 0 \
                                      ELSE failed_sign_ins + 1 END \
             WHERE account_id = $1 AND id = $2 RETURNING locked_until",
        )
        .bind(account.0)
        .bind(admin.0)
        .bind(lock.after)
        .bind(now + lock.for_ms)
        .fetch_one(&self.write)
        .await?;
        Ok(locked_until.filter(|&at| at > now))
    }

    /// Opens a session for an administrator who gave the right password: their run of
    /// failures ends.
    pub async fn open_console_session(
        &self,
        account: AccountId,
        admin: AdminId,
        token_hash: &str,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()> {
        let mut tx = self.begin_write(&crate::Locks::none()).await?;
        sqlx::query(
            "UPDATE admins SET failed_sign_ins = 0, locked_until = NULL \
             WHERE account_id = $1 AND id = $2",
        )
        .bind(account.0)
        .bind(admin.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, account_id, admin_id, csrf, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(account.0)
        .bind(admin.0)
        .bind(csrf)
        .bind(self.now_ms())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live session whose secret hashes to `token_hash`: not ended, not expired, its
    /// administrator still there. The hash is compared in constant time.
    pub async fn console_session(&self, token_hash: &str) -> Result<Option<ConsoleSession>> {
        let row: Option<ConsoleSession> = sqlx::query_as(
            "SELECT s.account_id AS account, a.name AS account_name, s.admin_id AS admin, \
                    ad.email, ad.first_name, ad.last_name, s.csrf, s.expires_at, s.token_hash \
             FROM console_sessions s \
             JOIN admins ad ON ad.id = s.admin_id AND ad.account_id = s.account_id \
             JOIN accounts a ON a.id = s.account_id \
             WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(self.now_ms())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.filter(|s| bool::from(s.token_hash.as_bytes().ct_eq(token_hash.as_bytes()))))
    }

    /// Ends a session (signing out): it never works again, on any node.
    pub async fn end_console_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query(
            "UPDATE console_sessions SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL",
        )
        .bind(token_hash)
        .bind(self.now_ms())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// One administrator of the account.
    pub async fn admin(&self, account: AccountId, id: AdminId) -> Result<Admin> {
        sqlx::query_as(
            "SELECT id, email, first_name, last_name, created_at FROM admins \
             WHERE account_id = $1 AND id = $2",
        )
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?
        .ok_or(StoreError::NotFound("admin"))
    }
}

/// A join or leave of one person, with the group's name.
#[derive(Debug, Clone, FromRow)]
pub struct PersonChange {
    pub group_id: i64,
    pub group_name: String,
    pub change: String,
    pub at: i64,
    pub version: i64,
    pub reason: String,
}

impl Store {
    /// A person's latest joins and leaves across the account's groups, newest first.
    pub async fn person_group_history(
        &self,
        account: AccountId,
        user: coachloop_core::ids::UserId,
        limit: i64,
    ) -> Result<Vec<PersonChange>> {
        Ok(sqlx::query_as(
            "SELECT h.group_id, g.name AS group_name, h.change, h.at, h.version, h.reason \
             FROM group_history h JOIN groups g ON g.id = h.group_id AND g.account_id = h.account_id \
             WHERE h.account_id = $1 AND h.user_id = $2 ORDER BY h.id DESC LIMIT $3",
        )
        .bind(account.0)
        .bind(user.0)
        .bind(limit)
        .fetch_all(&self.read)
        .await?)
    }
}

/// A join or leave in one group, with the person's name.
#[derive(Debug, Clone, FromRow)]
pub struct GroupChange {
    pub user_id: i64,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub change: String,
    pub at: i64,
    pub version: i64,
    pub reason: String,
}

impl Store {
    /// A group's joins and leaves, newest first, a page at a time; with how many there
    /// are.
    pub async fn group_changes(
        &self,
        account: AccountId,
        group: coachloop_core::ids::GroupId,
        page: crate::Page,
    ) -> Result<(Vec<GroupChange>, i64)> {
        // The group is the account's: its id alone scopes its history (the count then
        // reads only the `(group_id, id)` index).
        self.require_group(account, group).await?;
        let rows: Vec<GroupChange> = sqlx::query_as(
            "SELECT h.user_id, u.email, u.first_name, u.last_name, h.change, h.at, h.version, \
             h.reason FROM group_history h JOIN users u ON u.id = h.user_id \
             WHERE h.group_id = $1 ORDER BY h.id DESC LIMIT $2 OFFSET $3",
        )
        .bind(group.0)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        let total = self
            .page_total(page, rows.len(), "group_history", |query| {
                query.push(" WHERE group_id = ").push_bind(group.0);
            })
            .await?;
        Ok((rows, total))
    }
}

impl Store {
    /// The person of the account with this email, if any.
    pub async fn user_id_by_email(
        &self,
        account: AccountId,
        email: &Email,
    ) -> Result<Option<coachloop_core::ids::UserId>> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND email_norm = $2")
                .bind(account.0)
                .bind(email.normalized())
                .fetch_optional(&self.read)
                .await?;
        Ok(id.map(coachloop_core::ids::UserId))
    }
}
