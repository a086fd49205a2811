//! People and the names they are known by. Adding a person or an alias attributes the
//! unmatched events that named them, in the same transaction.

use crate::script::Script;
use crate::sql::QueryBuilder;
use crate::{Page, Result, Store, StoreError, is_unique_violation};
use coachloop_core::identity::normalize_identity;
use coachloop_core::ids::{AccountId, UserId};
use coachloop_core::user::{UserChanges, UserStatus};
use sqlx::{AnyConnection, FromRow};
use tracing::instrument;

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct User {
    #[sqlx(try_from = "i64")]
    pub id: UserId,
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    pub email: String,
    pub employee_number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub job_title: Option<String>,
    pub phone_number: Option<String>,
    pub extension: Option<String>,
    pub mobile_phone_number: Option<String>,
    pub location: Option<String>,
    pub division: Option<String>,
    pub department: Option<String>,
    pub organization: Option<String>,
    pub manager_name: Option<String>,
    pub manager_email: Option<String>,
    pub language: Option<String>,
    pub comment: Option<String>,
    pub employee_start_date: Option<String>,
    pub custom_field_1: Option<String>,
    pub custom_field_2: Option<String>,
    pub custom_field_3: Option<String>,
    pub custom_field_4: Option<String>,
    pub custom_date_1: Option<String>,
    pub custom_date_2: Option<String>,
    #[sqlx(try_from = "crate::db::Flag")]
    pub provisioning_managed: bool,
    pub provisioning_guid: Option<String>,
    pub status: String,
    pub joined_on: i64,
    pub last_sign_in: Option<i64>,
    pub archived_at: Option<i64>,
    pub updated_at: i64,
    #[sqlx(skip)]
    pub aliases: Vec<String>,
}

/// Filters of the user list; every one is optional.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub status: Option<UserStatus>,
    /// Matches email, first or last name (substring, case-insensitive).
    pub q: Option<String>,
    pub department: Option<String>,
    pub division: Option<String>,
    pub location: Option<String>,
    pub job_title: Option<String>,
    pub manager_email: Option<String>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created(UserId),
    Updated(UserId),
}

pub(crate) const COLUMNS: &str = "id, account_id, email, employee_number, first_name, last_name, job_title, \
    phone_number, extension, mobile_phone_number, location, division, department, organization, \
    manager_name, manager_email, language, comment, employee_start_date, custom_field_1, \
    custom_field_2, custom_field_3, custom_field_4, custom_date_1, custom_date_2, \
    provisioning_managed, provisioning_guid, status, joined_on, last_sign_in, archived_at, updated_at";

impl Store {
    #[instrument(skip_all)]
    pub async fn create_user(&self, account: AccountId, changes: &UserChanges) -> Result<User> {
        let mut change = self.change_facts(account).await?;
        let id = insert_user(&mut change.tx, account, changes, change.now).await?;
        let enrolled =
            crate::campaigns::enrol_new_people(&mut change.tx, account.0, &[id.0], change.now)
                .await?;
        change.wake_enrolled(&enrolled);
        self.commit_people(change, account, &[id]).await?;
        self.user(account, id).await
    }

    #[instrument(skip_all)]
    pub async fn update_user(
        &self,
        account: AccountId,
        id: UserId,
        changes: &UserChanges,
    ) -> Result<User> {
        let mut change = self.change_facts(account).await?;
        update_user(&mut change.tx, account, id, changes, change.now).await?;
        self.commit_people(change, account, &[id]).await?;
        self.user(account, id).await
    }

    /// Archives a person: their history stays, they stop counting as current.
    pub async fn archive_user(&self, account: AccountId, id: UserId) -> Result<User> {
        let changes = UserChanges {
            status: Some(UserStatus::Archived),
            ..UserChanges::default()
        };
        self.update_user(account, id, &changes).await
    }

    /// Creates or updates people by email, all in one transaction; one bad row fails
    /// alone (its savepoint rolls back) and the others are kept.
    #[instrument(skip_all)]
    pub async fn upsert_users(
        &self,
        account: AccountId,
        rows: &[UserChanges],
    ) -> Result<Vec<Result<Upserted>>> {
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let mut outcomes = Vec::with_capacity(rows.len());
        for changes in rows {
            let mut savepoint = sqlx::Connection::begin(&mut *change.tx).await?;
            let outcome = upsert_user(&mut savepoint, account, changes, now).await;
            if outcome.is_ok() {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
            outcomes.push(outcome);
        }
        let changed: Vec<UserId> = outcomes
            .iter()
            .filter_map(|o| match o {
                Ok(Upserted::Created(id) | Upserted::Updated(id)) => Some(*id),
                Err(_) => None,
            })
            .collect();
        let created: Vec<i64> = outcomes
            .iter()
            .filter_map(|o| match o {
                Ok(Upserted::Created(id)) => Some(id.0),
                _ => None,
            })
            .collect();
        let enrolled =
            crate::campaigns::enrol_new_people(&mut change.tx, account.0, &created, now).await?;
        change.wake_enrolled(&enrolled);
        self.commit_people(change, account, &changed).await?;
        Ok(outcomes)
    }

    #[instrument(skip_all)]
    pub async fn user(&self, account: AccountId, id: UserId) -> Result<User> {
        let user: Option<User> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM users WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        let mut user = user.ok_or(StoreError::NotFound("user"))?;
        user.aliases = sqlx::query_scalar(
            "SELECT display FROM user_identities WHERE user_id = $1 AND is_alias = TRUE ORDER BY display",
        )
        .bind(id.0)
        .fetch_all(&self.read)
        .await?;
        Ok(user)
    }

    /// A page of people, in id order, and how many match in all.
    #[instrument(skip_all)]
    pub async fn list_users(
        &self,
        account: AccountId,
        filter: &UserFilter,
        page: Page,
    ) -> Result<(Vec<User>, i64)> {
        let mut select = QueryBuilder::new(format!("SELECT {COLUMNS} FROM users u"));
        push_user_filter(&mut select, account, filter);
        select
            .push(" ORDER BY u.id LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset());
        let mut users: Vec<User> = select.build_query_as().fetch_all(&self.read).await?;
        let total = self
            .page_total(page, users.len(), "users u", |query| {
                push_user_filter(query, account, filter)
            })
            .await?;
        self.load_aliases(&mut users).await?;
        Ok((users, total))
    }

    pub(crate) async fn load_aliases(&self, users: &mut [User]) -> Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        let mut query = QueryBuilder::new(
            "SELECT user_id, display FROM user_identities WHERE is_alias = TRUE AND user_id IN (",
        );
        let mut ids = query.separated(", ");
        for user in users.iter() {
            ids.push_bind(user.id.0);
        }
        query.push(") ORDER BY display");
        let rows: Vec<(i64, String)> = query.build_query_as().fetch_all(&self.read).await?;
        for (user_id, alias) in rows {
            if let Some(user) = users.iter_mut().find(|u| u.id.0 == user_id) {
                user.aliases.push(alias);
            }
        }
        Ok(())
    }
}

/// The text a search (`q`) looks in: email and names, lower-case, as the `users_search`
/// index holds it (written the same, so that the index is used).
const SEARCH_TEXT: &str = "(u.email_norm || ' ' || lower(coalesce(u.first_name, '')) || ' ' \
     || lower(coalesce(u.last_name, '')))";

fn push_user_filter(query: &mut QueryBuilder<'_>, account: AccountId, filter: &UserFilter) {
    query.push(" WHERE u.account_id = ").push_bind(account.0);
    if let Some(status) = filter.status {
        query.push(" AND u.status = ").push_bind(status.as_str());
    }
    if let Some(q) = &filter.q {
        let pattern = format!("%{}%", q.to_lowercase().replace(['%', '_'], ""));
        query
            .push(format!(" AND {SEARCH_TEXT} LIKE "))
            .push_bind(pattern);
    }
    let exact = [
        ("department", &filter.department),
        ("division", &filter.division),
        ("location", &filter.location),
        ("job_title", &filter.job_title),
        ("manager_email", &filter.manager_email),
    ];
    for (column, value) in exact {
        if let Some(value) = value {
            query
                .push(format!(" AND u.{column} = "))
                .push_bind(value.clone());
        }
    }
}

async fn upsert_user(
    conn: &mut AnyConnection,
    account: AccountId,
    changes: &UserChanges,
    now: i64,
) -> Result<Upserted> {
    let email = changes
        .require_email()
        .map_err(|e| StoreError::Invalid(vec![e]))?;
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND email_norm = $2")
            .bind(account.0)
            .bind(email.normalized())
            .fetch_optional(&mut *conn)
            .await?;
    match existing {
        Some(id) => {
            update_user(conn, account, UserId(id), changes, now).await?;
            Ok(Upserted::Updated(UserId(id)))
        }
        None => Ok(Upserted::Created(
            insert_user(conn, account, changes, now).await?,
        )),
    }
}

pub(crate) async fn insert_user(
    conn: &mut AnyConnection,
    account: AccountId,
    changes: &UserChanges,
    now: i64,
) -> Result<UserId> {
    let email = changes
        .require_email()
        .map_err(|e| StoreError::Invalid(vec![e]))?;
    let status = changes.status.unwrap_or(UserStatus::Active);
    let mut insert = QueryBuilder::new(
        "INSERT INTO users (account_id, email, email_norm, status, archived_at, joined_on, updated_at",
    );
    for (field, _) in &changes.attributes {
        insert.push(", ").push(*field);
    }
    insert.push(") VALUES (");
    let mut values = insert.separated(", ");
    values
        .push_bind(account.0)
        .push_bind(email.as_str())
        .push_bind(email.normalized())
        .push_bind(status.as_str())
        .push_bind((status == UserStatus::Archived).then_some(now))
        .push_bind(now)
        .push_bind(now);
    for (_, value) in &changes.attributes {
        values.push_bind(value.clone());
    }
    insert.push(") RETURNING id");
    let id: i64 = insert
        .build_query_scalar()
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| email_conflict(e, email.as_str()))?;
    let id = UserId(id);
    set_identities(conn, account, id, changes).await?;
    Ok(id)
}

pub(crate) async fn update_user(
    conn: &mut AnyConnection,
    account: AccountId,
    id: UserId,
    changes: &UserChanges,
    now: i64,
) -> Result<()> {
    let mut update = QueryBuilder::new("UPDATE users SET updated_at = ");
    update.push_bind(now);
    if let Some(email) = &changes.email {
        update
            .push(", email = ")
            .push_bind(email.as_str())
            .push(", email_norm = ")
            .push_bind(email.normalized());
    }
    if let Some(status) = changes.status {
        push_status(&mut update, status, now);
    }
    for (field, value) in &changes.attributes {
        update
            .push(format!(", {field} = "))
            .push_bind(value.clone());
    }
    update
        .push(" WHERE account_id = ")
        .push_bind(account.0)
        .push(" AND id = ")
        .push_bind(id.0);
    let email = changes
        .email
        .as_ref()
        .map(|e| e.as_str())
        .unwrap_or_default();
    let done = update
        .build()
        .execute(&mut *conn)
        .await
        .map_err(|e| email_conflict(e, email))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("user"));
    }
    set_identities(conn, account, id, changes).await
}

/// Appends the `SET` items of a change of status to an `UPDATE users`.
pub(crate) fn push_status(update: &mut QueryBuilder<'_>, status: UserStatus, now: i64) {
    update.push(", status = ").push_bind(status.as_str());
    match status {
        // Keep the first archiving instant when archived twice.
        UserStatus::Archived => update
            .push(", archived_at = COALESCE(archived_at, ")
            .push_bind(now)
            .push(")"),
        UserStatus::Active => update.push(", archived_at = NULL"),
    };
}

pub(crate) fn email_conflict(err: sqlx::Error, email: &str) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::conflict(
            "email",
            format!("`{email}` belongs to another person already"),
        )
    } else {
        err.into()
    }
}

/// Replaces the email identity and/or the aliases named in `changes`, then attributes
/// unmatched events that named any of this person's identities.
async fn set_identities(
    conn: &mut AnyConnection,
    account: AccountId,
    id: UserId,
    changes: &UserChanges,
) -> Result<()> {
    if changes.email.is_none() && changes.aliases.is_none() {
        return Ok(());
    }
    let email_norm: String = sqlx::query_scalar("SELECT email_norm FROM users WHERE id = $1")
        .bind(id.0)
        .fetch_one(&mut *conn)
        .await?;
    if let Some(email) = &changes.email {
        replace_main_identity(conn, account, id, email.as_str()).await?;
    }
    if let Some(aliases) = &changes.aliases {
        sqlx::query("DELETE FROM user_identities WHERE user_id = $1 AND is_alias = TRUE")
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
        for alias in aliases {
            if normalize_identity(alias) != email_norm {
                insert_identity(conn, account, id, alias, true).await?;
            }
        }
    }
    attribute_events(conn, account, id).await
}

/// Makes `display` the identity a person is known by first (their email; for a person an
/// identity provider named without one, its userName), in place of the one they had.
pub(crate) async fn replace_main_identity(
    conn: &mut AnyConnection,
    account: AccountId,
    id: UserId,
    display: &str,
) -> Result<()> {
    let mut script = Script::new(conn);
    queue_main_identity(&mut script, account, id, display, true);
    script
        .run(conn)
        .await
        .map_err(|e| identity_taken(e, "email", display))
}

/// Queues the statements of [`replace_main_identity`] into `script` (`replacing`: the
/// person had one; a new person has none to take away).
pub(crate) fn queue_main_identity(
    script: &mut Script<'_>,
    account: AccountId,
    id: UserId,
    display: &str,
    replacing: bool,
) {
    let norm = normalize_identity(display);
    if replacing {
        (script.statement(1))
            .push("DELETE FROM user_identities WHERE user_id = ")
            .push_bind(id.0)
            .push(" AND is_alias = FALSE");
        // An alias equal to the new identity becomes it.
        (script.statement(2))
            .push("DELETE FROM user_identities WHERE user_id = ")
            .push_bind(id.0)
            .push(" AND identity = ")
            .push_bind(norm.clone());
    }
    let insert = script.statement(5);
    insert.push(
        "INSERT INTO user_identities (account_id, identity, display, user_id, is_alias) VALUES (",
    );
    insert
        .separated(", ")
        .push_bind(account.0)
        .push_bind(norm)
        .push_bind(display.to_owned())
        .push_bind(id.0)
        .push_bind(false);
    insert.push(")");
}

/// Gives a person the unmatched events that named any of their identities.
pub(crate) async fn attribute_events(
    conn: &mut AnyConnection,
    account: AccountId,
    id: UserId,
) -> Result<()> {
    let mut script = Script::new(conn);
    queue_attribute_events(&mut script, account, id);
    script.run(conn).await
}

/// Queues [`attribute_events`] into `script`.
pub(crate) fn queue_attribute_events(script: &mut Script<'_>, account: AccountId, id: UserId) {
    (script.statement(3))
        .push("UPDATE events SET user_id = ")
        .push_bind(id.0)
        .push(" WHERE account_id = ")
        .push_bind(account.0)
        .push(
            " AND user_id IS NULL AND target_norm IN \
             (SELECT identity FROM user_identities WHERE user_id = ",
        )
        .push_bind(id.0)
        .push(")");
}

/// A unique violation of an identity as a conflict on `field`.
pub(crate) fn identity_taken(err: StoreError, field: &str, display: &str) -> StoreError {
    match err {
        StoreError::Database(e) if is_unique_violation(&e) => StoreError::conflict(
            field,
            format!("`{display}` belongs to another person already"),
        ),
        other => other,
    }
}

async fn insert_identity(
    conn: &mut AnyConnection,
    account: AccountId,
    id: UserId,
    display: &str,
    is_alias: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO user_identities (account_id, identity, display, user_id, is_alias) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(account.0)
    .bind(normalize_identity(display))
    .bind(display)
    .bind(id.0)
    .bind(is_alias)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        identity_taken(
            e.into(),
            if is_alias { "aliases" } else { "email" },
            display,
        )
    })?;
    Ok(())
}

/// Fails with "user not found" unless `user` is a person of `account`.
pub(crate) async fn require_user(
    conn: &mut AnyConnection,
    account: AccountId,
    user: UserId,
) -> Result<()> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE account_id = $1 AND id = $2")
            .bind(account.0)
            .bind(user.0)
            .fetch_optional(&mut *conn)
            .await?;
    found.map(drop).ok_or(StoreError::NotFound("user"))
}
