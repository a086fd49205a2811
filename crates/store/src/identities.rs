//! The names a person is known by besides their email (aliases), and the inbox of
//! identities that sent events but match nobody. Adding an alias is how an unmatched
//! identity is mapped: its events become the person's and their smart groups are
//! evaluated again, in one transaction.

use crate::sql::QueryBuilder;
use crate::users::{User, require_user};
use crate::{Page, Result, Store, StoreError};
use coachloop_core::identity::normalize_identity;
use coachloop_core::ids::{AccountId, UserId};

/// The longest alias accepted (an email address is at most 320 characters).
const MAX_ALIAS: usize = 320;

/// An identity that sent events matching no person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    /// As the events named it (one of the spellings, when several differ in case).
    pub identity: String,
    pub events: i64,
    /// When coachloop received its first and its latest event (epoch ms).
    pub first_seen: i64,
    pub last_seen: i64,
    /// The types of its events, by name, with how many of each.
    pub event_types: Vec<(String, i64)>,
}

impl Store {
    /// Makes `alias` one of the person's names: the unmatched events that named it become
    /// theirs and their smart groups are evaluated again, all in one transaction. Returns
    /// the person and how many events were attributed. Adding a name the person has
    /// already is not an error.
    pub async fn add_alias(
        &self,
        account: AccountId,
        id: UserId,
        alias: &str,
    ) -> Result<(User, u64)> {
        let alias = alias.trim();
        if alias.is_empty() {
            return Err(StoreError::invalid("alias", "must not be empty"));
        }
        if alias.chars().count() > MAX_ALIAS {
            return Err(StoreError::invalid(
                "alias",
                format!("must be at most {MAX_ALIAS} characters"),
            ));
        }
        let identity = normalize_identity(alias);
        let mut change = self.change_facts(account).await?;
        require_user(&mut change.tx, account, id).await?;
        let owner: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM user_identities WHERE account_id = $1 AND identity = $2",
        )
        .bind(account.0)
        .bind(&identity)
        .fetch_optional(&mut *change.tx)
        .await?;
        match owner {
            Some(owner) if owner == id.0 => {}
            Some(_) => {
                return Err(StoreError::conflict(
                    "alias",
                    format!("`{alias}` belongs to another person already"),
                ));
            }
            None => {
                sqlx::query(
                    "INSERT INTO user_identities (account_id, identity, display, user_id, \
                     is_alias) VALUES ($1, $2, $3, $4, TRUE)",
                )
                .bind(account.0)
                .bind(&identity)
                .bind(alias)
                .bind(id.0)
                .execute(&mut *change.tx)
                .await?;
            }
        }
        let attributed = sqlx::query(
            "UPDATE events SET user_id = $1 WHERE account_id = $2 AND user_id IS NULL \
             AND target_norm = $3",
        )
        .bind(id.0)
        .bind(account.0)
        .bind(&identity)
        .execute(&mut *change.tx)
        .await?
        .rows_affected();
        self.commit_people(change, account, &[id]).await?;
        Ok((self.user(account, id).await?, attributed))
    }

    /// Removes one of the person's aliases. The events already theirs stay theirs; new
    /// events that name it match nobody.
    pub async fn remove_alias(&self, account: AccountId, id: UserId, alias: &str) -> Result<User> {
        let mut change = self.change_facts(account).await?;
        require_user(&mut change.tx, account, id).await?;
        let removed = sqlx::query(
            "DELETE FROM user_identities WHERE account_id = $1 AND user_id = $2 \
             AND identity = $3 AND is_alias = TRUE",
        )
        .bind(account.0)
        .bind(id.0)
        .bind(normalize_identity(alias))
        .execute(&mut *change.tx)
        .await?
        .rows_affected();
        if removed == 0 {
            return Err(StoreError::NotFound("alias"));
        }
        self.commit_people(change, account, &[id]).await?;
        self.user(account, id).await
    }

    /// A page of the identities that sent events but match nobody, the most recently
    /// seen first, and how many there are.
    pub async fn unmatched(&self, account: AccountId, page: Page) -> Result<(Vec<Unmatched>, i64)> {
        let unmatched = "FROM events WHERE account_id = $1 AND user_id IS NULL \
            AND target_norm IS NOT NULL";
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(DISTINCT target_norm) {unmatched}"))
                .bind(account.0)
                .fetch_one(&self.read)
                .await?;
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(&format!(
            "SELECT target_norm, MAX(target_user), COUNT(*), MIN(created_at), MAX(created_at) \
             {unmatched} GROUP BY target_norm ORDER BY MAX(created_at) DESC, target_norm \
             LIMIT $2 OFFSET $3"
        ))
        .bind(account.0)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            return Ok((Vec::new(), total));
        }
        let mut query = QueryBuilder::new(
            "SELECT e.target_norm, t.name, COUNT(*) FROM events e \
             JOIN event_types t ON t.id = e.event_type_id \
             WHERE e.user_id IS NULL AND e.account_id = ",
        );
        query.push_bind(account.0).push(" AND e.target_norm IN (");
        let mut names = query.separated(", ");
        for row in &rows {
            names.push_bind(row.0.clone());
        }
        query.push(") GROUP BY e.target_norm, t.name ORDER BY t.name");
        let types: Vec<(String, String, i64)> =
            query.build_query_as().fetch_all(&self.read).await?;
        let list = rows
            .into_iter()
            .map(
                |(norm, identity, events, first_seen, last_seen)| Unmatched {
                    identity,
                    events,
                    first_seen,
                    last_seen,
                    event_types: types
                        .iter()
                        .filter(|(n, _, _)| *n == norm)
                        .map(|(_, name, count)| (name.clone(), *count))
                        .collect(),
                },
            )
            .collect();
        Ok((list, total))
    }
}
