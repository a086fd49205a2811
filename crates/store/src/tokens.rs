//! API tokens: only a SHA-256 of the secret is stored; the secret is shown once.

use crate::{Result, Store, StoreError, is_unique_violation};
use coachloop_core::ids::{AccountId, TokenId};
use coachloop_core::scope::Scopes;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use subtle::ConstantTimeEq;
use tracing::instrument;

/// Every secret starts with this, so a leaked one is easy to recognise in a scan.
pub const SECRET_PREFIX: &str = "cl_";

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    #[sqlx(try_from = "i64")]
    pub id: TokenId,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    pub account_name: String,
    pub name: String,
    pub scopes: String,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub rate_per_second: Option<i64>,
    pub rate_per_day: Option<i64>,
    pub last_event_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub secret_hash: String,
    pub lrs_key: Option<String>,
}

/// A token as listed: everything but the secret.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: TokenId,
    pub account_id: AccountId,
    pub account_name: String,
    pub name: String,
    pub scopes: Scopes,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The most requests a second and a UTC day the token may make (none: no limit).
    pub limits: RateLimits,
    /// A sender's activity: when an event it sent was last stored, and its last refused
    /// request (when, and why in words).
    pub last_event_at: Option<i64>,
    pub last_error: Option<(i64, String)>,
    /// An LRS credential's key: the user name of HTTP Basic auth, with the secret as
    /// its password.
    pub lrs_key: Option<String>,
}

/// A token's request quota; both are off unless set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub per_second: Option<u32>,
    pub per_day: Option<u32>,
}

impl RateLimits {
    pub fn is_none(&self) -> bool {
        self.per_second.is_none() && self.per_day.is_none()
    }
}

impl Token {
    /// Why the token may not be used at `now_ms`, if it may not.
    pub fn unusable_reason(&self, now_ms: i64) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("the token was revoked")
        } else if self.expires_at.is_some_and(|at| at <= now_ms) {
            Some("the token has expired")
        } else {
            None
        }
    }
}

impl From<TokenRow> for Token {
    fn from(row: TokenRow) -> Self {
        Self {
            id: row.id,
            account_id: row.account_id,
            account_name: row.account_name,
            name: row.name,
            // Stored scopes were parsed on the way in; an unknown one grants nothing.
            scopes: Scopes::parse_list(&row.scopes).unwrap_or_default(),
            expires_at: row.expires_at,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            limits: RateLimits {
                per_second: row.rate_per_second.and_then(|r| u32::try_from(r).ok()),
                per_day: row.rate_per_day.and_then(|r| u32::try_from(r).ok()),
            },
            last_event_at: row.last_event_at,
            last_error: row.last_error_at.zip(row.last_error),
            lrs_key: row.lrs_key,
        }
    }
}

/// What to create.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    pub name: String,
    pub scopes: Scopes,
    pub expires_at: Option<i64>,
    pub limits: RateLimits,
    /// An LRS credential: give it a key for HTTP Basic auth.
    pub lrs: bool,
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", hex::encode(bytes))
}

const SELECT: &str = "SELECT t.id, t.account_id, a.name AS account_name, t.name, t.scopes, \
    t.expires_at, t.created_at, t.last_used_at, t.revoked_at, t.rate_per_second, \
    t.rate_per_day, t.last_event_at, t.last_error, t.last_error_at, t.secret_hash, t.lrs_key \
    FROM tokens t JOIN accounts a ON a.id = t.account_id";

fn parse_label(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "name",
            "a token name is 1 to 100 printable characters",
        ));
    }
    Ok(name)
}

impl Store {
    /// Creates a token and returns it with its secret, which is not kept.
    #[instrument(skip_all)]
    pub async fn create_token(
        &self,
        account: AccountId,
        new: &NewToken,
    ) -> Result<(Token, String)> {
        let name = parse_label(&new.name)?;
        let now = self.now_ms();
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(StoreError::invalid(
                "expires",
                "the expiry must be in the future",
            ));
        }
        let secret = new_secret();
        let lrs_key = new.lrs.then(|| {
            let mut bytes = [0u8; 10];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            format!("lrs_{}", hex::encode(bytes))
        });
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (account_id, name, secret_hash, scopes, expires_at, created_at, \
             rate_per_second, rate_per_day, lrs_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id",
        )
        .bind(account.0)
        .bind(name)
        .bind(hex::encode(hash_secret(&secret)))
        .bind(new.scopes.to_list())
        .bind(new.expires_at)
        .bind(now)
        .bind(new.limits.per_second.map(i64::from))
        .bind(new.limits.per_day.map(i64::from))
        .bind(lrs_key)
        .fetch_one(&self.write)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::conflict(
                    "name",
                    format!(
                        "a live token named `{name}` exists already; revoke it or pick another name"
                    ),
                )
            } else {
                e.into()
            }
        })?;
        let token = self.token(account, TokenId(id)).await?;
        Ok((token, secret))
    }

    #[instrument(skip_all)]
    pub async fn token(&self, account: AccountId, id: TokenId) -> Result<Token> {
        let row: Option<TokenRow> =
            sqlx::query_as(&format!("{SELECT} WHERE t.account_id = $1 AND t.id = $2"))
                .bind(account.0)
                .bind(id.0)
                .fetch_optional(&self.write)
                .await?;
        row.map(Token::from).ok_or(StoreError::NotFound("token"))
    }

    #[instrument(skip_all)]
    pub async fn list_tokens(&self, account: AccountId) -> Result<Vec<Token>> {
        let rows: Vec<TokenRow> =
            sqlx::query_as(&format!("{SELECT} WHERE t.account_id = $1 ORDER BY t.id"))
                .bind(account.0)
                .fetch_all(&self.read)
                .await?;
        Ok(rows.into_iter().map(Token::from).collect())
    }

    /// Revokes the live token named `name`.
    #[instrument(skip_all)]
    pub async fn revoke_token(&self, account: AccountId, name: &str) -> Result<Token> {
        self.revoke(account, "name", name, "token").await
    }

    /// Revokes the live LRS credential with this key.
    #[instrument(skip_all)]
    pub async fn revoke_lrs_credential(&self, account: AccountId, key: &str) -> Result<Token> {
        self.revoke(account, "lrs_key", key, "LRS credential").await
    }

    /// Revokes the account's live token whose `column` (its name or LRS key) is `value`.
    async fn revoke(
        &self,
        account: AccountId,
        column: &'static str,
        value: &str,
        what: &'static str,
    ) -> Result<Token> {
        let id: Option<i64> = sqlx::query_scalar(&format!(
            "UPDATE tokens SET revoked_at = $1 \
             WHERE account_id = $2 AND {column} = $3 AND revoked_at IS NULL RETURNING id"
        ))
        .bind(self.now_ms())
        .bind(account.0)
        .bind(value.trim())
        .fetch_optional(&self.write)
        .await?;
        let id = id.ok_or(StoreError::NotFound(what))?;
        self.wakes.token_revoked();
        self.token(account, TokenId(id)).await
    }

    /// Finds the token a secret belongs to, revoked or expired ones included (the caller
    /// says which it is). The stored hash is compared in constant time.
    #[instrument(skip_all)]
    pub async fn token_by_secret(&self, secret: &str) -> Result<Option<Token>> {
        let hash = hex::encode(hash_secret(secret));
        let row: Option<TokenRow> = sqlx::query_as(&format!("{SELECT} WHERE t.secret_hash = $1"))
            .bind(&hash)
            .fetch_optional(&self.read)
            .await?;
        Ok(row
            .filter(|row| bool::from(row.secret_hash.as_bytes().ct_eq(hash.as_bytes())))
            .map(Token::from))
    }

    /// Records that a token was used at `at`.
    #[instrument(skip_all)]
    pub async fn touch_token(&self, id: TokenId, at: i64) -> Result<()> {
        // In the order of changes of facts, the fair queue the event writer waits in too:
        // met at SQLite's lock instead, its busy handler sleeps in growing steps and
        // stalls event POSTs.
        let mut change = self.change_facts_in(crate::Locks::none()).await?;
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
            .bind(at)
            .bind(id.0)
            .execute(&mut *change.tx)
            .await?;
        change.commit(&self.wakes).await
    }

    /// Records what a sender's token did: an event stored at `event_at`, a request
    /// refused at `error.0` for the reason `error.1`. Callers batch these (the server
    /// writes a token's activity at most once a second), so this is off the event path.
    #[instrument(skip_all)]
    pub async fn record_token_activity(
        &self,
        id: TokenId,
        event_at: Option<i64>,
        error: Option<(i64, &str)>,
    ) -> Result<()> {
        // In the order of changes of facts, as `touch_token` and for the same reason.
        let mut change = self.change_facts_in(crate::Locks::none()).await?;
        if let Some(at) = event_at {
            sqlx::query(
                "UPDATE tokens SET last_event_at = $1 \
                 WHERE id = $2 AND (last_event_at IS NULL OR last_event_at < $1)",
            )
            .bind(at)
            .bind(id.0)
            .execute(&mut *change.tx)
            .await?;
        }
        if let Some((at, why)) = error {
            sqlx::query("UPDATE tokens SET last_error = $1, last_error_at = $2 WHERE id = $3")
                .bind(why)
                .bind(at)
                .bind(id.0)
                .execute(&mut *change.tx)
                .await?;
        }
        change.commit(&self.wakes).await
    }
}
