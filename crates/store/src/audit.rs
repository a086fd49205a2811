//! The audit log: every change an administrator (console) or a token (APIs) made, with
//! the resource before and after. Written by the server once a change has succeeded,
//! before its answer goes out; read newest first with filters.

use crate::sql::QueryBuilder;
use crate::{Page, Result, Store};
use coachloop_core::ids::AccountId;
use sqlx::FromRow;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Admin { id: i64, email: String },
    Token { id: i64, name: String },
}

impl Actor {
    fn parts(&self) -> (&'static str, i64, &str) {
        match self {
            Actor::Admin { id, email } => ("admin", *id, email),
            Actor::Token { id, name } => ("token", *id, name),
        }
    }
}

/// A change to record.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub account: AccountId,
    pub actor: Actor,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// JSON, secrets left out.
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor_kind: String,
    pub actor_id: i64,
    pub actor: String,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Filters of the audit log; every one optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The admin's email or the token's name, exactly.
    pub actor: Option<String>,
    /// Paths that start with this (`/api/groups`).
    pub path: Option<String>,
    /// From this instant (epoch ms, inclusive) …
    pub since: Option<i64>,
    /// … to this one (exclusive).
    pub until: Option<i64>,
}

impl Store {
    pub async fn record_audit(&self, entry: &NewAuditEntry) -> Result<()> {
        let (kind, id, name) = entry.actor.parts();
        sqlx::query(
            "INSERT INTO audit_log (account_id, at, actor_kind, actor_id, actor, method, path, \
             status, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(entry.account.0)
        .bind(self.now_ms())
        .bind(kind)
        .bind(id)
        .bind(name)
        .bind(&entry.method)
        .bind(&entry.path)
        .bind(i64::from(entry.status))
        .bind(&entry.before)
        .bind(&entry.after)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// A page of the account's audit log, newest first, and how many entries match.
    pub async fn audit_log(
        &self,
        account: AccountId,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(Vec<AuditEntry>, i64)> {
        let push_filter = |query: &mut QueryBuilder<'_>| {
            query.push(" WHERE account_id = ").push_bind(account.0);
            if let Some(actor) = &filter.actor {
                query.push(" AND actor = ").push_bind(actor.clone());
            }
            if let Some(path) = &filter.path {
                // A prefix, compared as text (no LIKE: its wildcards would need escaping).
                query
                    .push(" AND substr(path, 1, CAST(")
                    .push_bind(path.chars().count() as i64)
                    .push(" AS INTEGER)) = ")
                    .push_bind(path.clone());
            }
            if let Some(since) = filter.since {
                query.push(" AND at >= ").push_bind(since);
            }
            if let Some(until) = filter.until {
                query.push(" AND at < ").push_bind(until);
            }
        };
        let mut select = QueryBuilder::new(
            "SELECT id, at, actor_kind, actor_id, actor, method, path, status, before, after \
             FROM audit_log",
        );
        push_filter(&mut select);
        select
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset());
        let rows: Vec<_> = select.build_query_as().fetch_all(&self.read).await?;
        let total = self
            .page_total(page, rows.len(), "audit_log", push_filter)
            .await?;
        Ok((rows, total))
    }
}
