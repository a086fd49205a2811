//! SCIM users: people, written and read with the attributes a provider sends.

use super::filter::{Scope, push_filter};
use super::{Window, bad_filter, known_total};
use crate::script::Script;
use crate::sql::QueryBuilder;
use crate::users::{
    COLUMNS, User, email_conflict, identity_taken, push_status, queue_attribute_events,
    queue_main_identity,
};
use crate::{Result, Store, StoreError};
use coachloop_core::identity::{Email, normalize_identity};
use coachloop_core::ids::{AccountId, UserId};
use coachloop_core::scim::Filter;
use coachloop_core::user::UserStatus;
use sqlx::{AnyConnection, FromRow};
use tracing::instrument;

/// The person's columns a SCIM user writes besides its own (name, title, language and the
/// enterprise extension's attributes).
pub const SCIM_TEXT_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "job_title",
    "language",
    "employee_number",
    "department",
    "division",
    "organization",
];

/// One of a SCIM user's emails, as given.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimEmail {
    pub value: String,
    pub kind: Option<String>,
    pub primary: bool,
    pub display: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ScimUser {
    pub user: User,
    /// The provider's userName; for a person no provider named, their email.
    pub user_name: String,
    pub display_name: Option<String>,
    pub name_formatted: Option<String>,
    /// The manager's id as the provider gave it (`manager.value`).
    pub manager_ref: Option<String>,
    pub emails: Vec<ScimEmail>,
}

/// The whole state a provider gives a user (a create or a replace; a PATCH is applied to
/// the current state first).
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserInput {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub name_formatted: Option<String>,
    pub manager_ref: Option<String>,
    pub emails: Vec<ScimEmail>,
    /// Fields of [`SCIM_TEXT_FIELDS`]; those absent are cleared.
    pub attributes: Vec<(&'static str, Option<String>)>,
    pub active: bool,
}

impl ScimUserInput {
    /// The person's email: the primary one, else the work one, else the first; without
    /// any, the userName (which is then how events find them).
    pub fn main_identity(&self) -> &str {
        let email = (self.emails.iter().find(|e| e.primary))
            .or_else(|| {
                (self.emails.iter()).find(|e| {
                    e.kind
                        .as_deref()
                        .is_some_and(|k| k.eq_ignore_ascii_case("work"))
                })
            })
            .or_else(|| self.emails.first());
        email.map_or(self.user_name.as_str(), |e| e.value.as_str())
    }
}

#[derive(FromRow)]
struct Row {
    #[sqlx(flatten)]
    user: User,
    user_name: Option<String>,
    display_name: Option<String>,
    name_formatted: Option<String>,
    manager_ref: Option<String>,
    scim_deleted_at: Option<i64>,
}

const SCIM_COLUMNS: &str = "user_name, display_name, name_formatted, manager_ref, scim_deleted_at";

#[derive(FromRow)]
struct EmailRow {
    user_id: i64,
    value: String,
    kind: Option<String>,
    #[sqlx(try_from = "crate::db::Flag")]
    is_primary: bool,
    display: Option<String>,
}

impl Store {
    /// Creates a person from a provider's user, or brings back the one it deleted under
    /// the same userName (their history stays theirs). A userName taken by a current
    /// person is a conflict.
    #[instrument(skip_all)]
    pub async fn scim_create_user(
        &self,
        account: AccountId,
        input: &ScimUserInput,
    ) -> Result<ScimUser> {
        check(input)?;
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        let found: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, scim_deleted_at FROM users \
             WHERE account_id = $1 AND COALESCE(user_name_norm, email_norm) = $2",
        )
        .bind(account.0)
        .bind(normalize_identity(&input.user_name))
        .fetch_optional(&mut *change.tx)
        .await?;
        let id = match found {
            Some((_, None)) => return Err(taken(&input.user_name)),
            Some((id, Some(_))) => {
                let deleted = load(&mut change.tx, account, UserId(id), true).await?;
                write(&mut change.tx, account, Some(&deleted), input, now).await?
            }
            None => write(&mut change.tx, account, None, input, now).await?,
        };
        if input.active {
            let enrolled =
                crate::campaigns::enrol_new_people(&mut change.tx, account.0, &[id.0], now).await?;
            change.wake_enrolled(&enrolled);
        }
        self.commit_people(change, account, &[id]).await?;
        self.scim_user(account, id).await
    }

    /// A user the provider has not deleted.
    #[instrument(skip_all)]
    pub async fn scim_user(&self, account: AccountId, id: UserId) -> Result<ScimUser> {
        let mut conn = self.read.acquire().await?;
        load(&mut conn, account, id, false).await
    }

    /// Replaces a user with what `edit` makes of its current state, read and written in
    /// one transaction (a PATCH cannot lose a concurrent change).
    #[instrument(skip_all)]
    pub async fn scim_edit_user<E, F>(
        &self,
        account: AccountId,
        id: UserId,
        edit: F,
    ) -> std::result::Result<ScimUser, E>
    where
        E: From<StoreError>,
        F: FnOnce(&ScimUser) -> std::result::Result<ScimUserInput, E>,
    {
        let mut change = self.change_facts(account).await?;
        let current = load(&mut change.tx, account, id, false).await?;
        let input = edit(&current)?;
        check(&input)?;
        let now = change.now;
        let renamed =
            normalize_identity(&input.user_name) != normalize_identity(&current.user_name);
        if renamed {
            let holder: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM users WHERE account_id = $1 \
                 AND COALESCE(user_name_norm, email_norm) = $2 AND id <> $3",
            )
            .bind(account.0)
            .bind(normalize_identity(&input.user_name))
            .bind(id.0)
            .fetch_optional(&mut *change.tx)
            .await
            .map_err(StoreError::from)?;
            if holder.is_some() {
                return Err(taken(&input.user_name).into());
            }
        }
        write(&mut change.tx, account, Some(&current), &input, now).await?;
        self.commit_people(change, account, &[id]).await?;
        Ok(self.scim_user(account, id).await?)
    }

    /// Deletes a user as a provider sees it: the person is archived (out of compliance
    /// scope and enrolment, records kept) and no longer answered over SCIM.
    #[instrument(skip_all)]
    pub async fn scim_delete_user(&self, account: AccountId, id: UserId) -> Result<()> {
        let mut change = self.change_facts(account).await?;
        load(&mut change.tx, account, id, false).await?;
        sqlx::query(
            "UPDATE users SET scim_deleted_at = $1, status = 'archived', \
             archived_at = COALESCE(archived_at, $1), updated_at = $1 \
             WHERE account_id = $2 AND id = $3",
        )
        .bind(change.now)
        .bind(account.0)
        .bind(id.0)
        .execute(&mut *change.tx)
        .await?;
        self.commit_people(change, account, &[id]).await
    }

    /// The users `filter` matches (all without one), in id order, and how many match.
    /// A window of no rows counts only.
    #[instrument(skip_all)]
    pub async fn scim_users(
        &self,
        account: AccountId,
        filter: Option<&Filter>,
        window: Window,
    ) -> Result<(Vec<ScimUser>, i64)> {
        let condition = |query: &mut QueryBuilder<'_>| -> Result<()> {
            query
                .push(" WHERE u.account_id = ")
                .push_bind(account.0)
                .push(" AND u.scim_deleted_at IS NULL");
            if let Some(filter) = filter {
                query.push(" AND ");
                push_filter(query, self.backend, Scope::User, filter).map_err(bad_filter)?;
            }
            Ok(())
        };
        let mut conn = self.read.acquire().await?;
        let mut rows: Vec<Row> = Vec::new();
        if window.count > 0 {
            let mut select =
                QueryBuilder::new(format!("SELECT {COLUMNS}, {SCIM_COLUMNS} FROM users u"));
            condition(&mut select)?;
            select
                .push(" ORDER BY u.id LIMIT ")
                .push_bind(window.count)
                .push(" OFFSET ")
                .push_bind(window.offset);
            rows = select.build_query_as().fetch_all(&mut *conn).await?;
        }
        let total = match known_total(window, rows.len()) {
            Some(total) => total,
            None => {
                let mut count = QueryBuilder::new("SELECT COUNT(*) FROM users u");
                condition(&mut count)?;
                count.build_query_scalar().fetch_one(&mut *conn).await?
            }
        };
        let users = with_emails(&mut conn, account, rows).await?;
        Ok((users, total))
    }
}

fn taken(user_name: &str) -> StoreError {
    StoreError::conflict(
        "userName",
        format!(
            "`{}` is the userName of another person already",
            user_name.trim()
        ),
    )
}

fn check(input: &ScimUserInput) -> Result<()> {
    for (field, _) in &input.attributes {
        if !SCIM_TEXT_FIELDS.contains(field) {
            return Err(StoreError::invalid(field, "is not written over SCIM"));
        }
    }
    if normalize_identity(&input.user_name).is_empty() {
        return Err(StoreError::invalid("userName", "is required"));
    }
    Ok(())
}

async fn load(
    conn: &mut AnyConnection,
    account: AccountId,
    id: UserId,
    deleted_too: bool,
) -> Result<ScimUser> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, {SCIM_COLUMNS} FROM users WHERE account_id = $1 AND id = $2"
    ))
    .bind(account.0)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row
        .filter(|r| deleted_too || r.scim_deleted_at.is_none())
        .ok_or(StoreError::NotFound("user"))?;
    let mut users = with_emails(conn, account, vec![row]).await?;
    Ok(users.remove(0))
}

/// The users of `rows` with their emails (a person no provider named has their email).
async fn with_emails(
    conn: &mut AnyConnection,
    account: AccountId,
    rows: Vec<Row>,
) -> Result<Vec<ScimUser>> {
    // Emails are stored for people a provider named; a page of others needs no read.
    if rows.iter().all(|r| r.user_name.is_none()) {
        return Ok(rows.into_iter().map(|row| scim_user(row, &[])).collect());
    }
    let mut query = QueryBuilder::new(
        "SELECT user_id, value, kind, is_primary, display FROM user_emails WHERE account_id = ",
    );
    query.push_bind(account.0).push(" AND user_id IN (");
    let mut ids = query.separated(", ");
    for row in &rows {
        ids.push_bind(row.user.id.0);
    }
    query.push(") ORDER BY user_id, position");
    let emails: Vec<EmailRow> = query.build_query_as().fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .map(|row| scim_user(row, &emails))
        .collect())
}

/// A user of a row, with its emails among `emails` (a person no provider named has
/// their email, as primary).
fn scim_user(row: Row, emails: &[EmailRow]) -> ScimUser {
    let emails = match &row.user_name {
        Some(_) => (emails.iter())
            .filter(|e| e.user_id == row.user.id.0)
            .map(|e| ScimEmail {
                value: e.value.clone(),
                kind: e.kind.clone(),
                primary: e.is_primary,
                display: e.display.clone(),
            })
            .collect(),
        None => vec![ScimEmail {
            value: row.user.email.clone(),
            kind: None,
            primary: true,
            display: None,
        }],
    };
    ScimUser {
        user_name: row.user_name.unwrap_or_else(|| row.user.email.clone()),
        display_name: row.display_name,
        name_formatted: row.name_formatted,
        manager_ref: row.manager_ref,
        emails,
        user: row.user,
    }
}

/// Writes `input` over `existing` (or as a new person) and returns the person's id.
async fn write(
    conn: &mut AnyConnection,
    account: AccountId,
    existing: Option<&ScimUser>,
    input: &ScimUserInput,
    now: i64,
) -> Result<UserId> {
    let main = input.main_identity().trim().to_owned();
    let mut text: Vec<(&str, Option<String>)> = vec![
        ("email", Some(main.clone())),
        ("email_norm", Some(normalize_identity(&main))),
        ("user_name", Some(input.user_name.clone())),
        ("user_name_norm", Some(normalize_identity(&input.user_name))),
        ("display_name", input.display_name.clone()),
        ("name_formatted", input.name_formatted.clone()),
        ("provisioning_guid", input.external_id.clone()),
        ("manager_ref", input.manager_ref.clone()),
    ];
    for field in SCIM_TEXT_FIELDS {
        let value = (input.attributes.iter()).find(|(f, _)| f == field);
        text.push((field, value.and_then(|(_, v)| v.clone())));
    }
    // The manager's name and email (which criteria read) follow the reference when it
    // changes; otherwise they stay as they are, whoever set them.
    if existing.and_then(|e| e.manager_ref.as_ref()) != input.manager_ref.as_ref() {
        let (name, email) = manager(conn, account, input.manager_ref.as_deref()).await?;
        text.push(("manager_name", name));
        text.push(("manager_email", email));
    }
    let status = if input.active {
        UserStatus::Active
    } else {
        UserStatus::Archived
    };
    let id = match existing {
        None => {
            let mut insert = QueryBuilder::new(
                "INSERT INTO users (account_id, joined_on, updated_at, status, archived_at, \
                 provisioning_managed",
            );
            for (column, _) in &text {
                insert.push(", ").push(column);
            }
            insert.push(") VALUES (");
            let mut values = insert.separated(", ");
            values
                .push_bind(account.0)
                .push_bind(now)
                .push_bind(now)
                .push_bind(status.as_str())
                .push_bind((!input.active).then_some(now))
                .push_bind(true);
            for (_, value) in &text {
                values.push_bind(value.clone());
            }
            insert.push(") RETURNING id");
            let id: i64 = insert
                .build_query_scalar()
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| email_conflict(e, &main))?;
            UserId(id)
        }
        Some(existing) => {
            let id = existing.user.id;
            let mut update = QueryBuilder::new("UPDATE users SET updated_at = ");
            update
                .push_bind(now)
                .push(", provisioning_managed = ")
                .push_bind(true)
                .push(", scim_deleted_at = NULL");
            push_status(&mut update, status, now);
            for (column, value) in &text {
                update
                    .push(format!(", {column} = "))
                    .push_bind(value.clone());
            }
            update
                .push(" WHERE account_id = ")
                .push_bind(account.0)
                .push(" AND id = ")
                .push_bind(id.0);
            update
                .build()
                .execute(&mut *conn)
                .await
                .map_err(|e| email_conflict(e, &main))?;
            id
        }
    };
    // The rest goes in one round trip.
    let mut script = Script::new(conn);
    if existing.is_none_or(|e| e.user.email != main) {
        queue_main_identity(&mut script, account, id, &main, existing.is_some());
        queue_attribute_events(&mut script, account, id);
    }
    if existing.is_some() {
        (script.statement(2))
            .push("DELETE FROM user_emails WHERE account_id = ")
            .push_bind(account.0)
            .push(" AND user_id = ")
            .push_bind(id.0);
    }
    if !input.emails.is_empty() {
        let insert = script.statement(8 * input.emails.len());
        insert.push(
            "INSERT INTO user_emails (user_id, position, account_id, value, value_norm, kind, \
             is_primary, display) ",
        );
        insert.push_values(input.emails.iter().enumerate(), |mut row, (i, email)| {
            row.push_bind(id.0)
                .push_bind(i as i64)
                .push_bind(account.0)
                .push_bind(email.value.clone())
                .push_bind(normalize_identity(&email.value))
                .push_bind(email.kind.clone())
                .push_bind(email.primary)
                .push_bind(email.display.clone());
        });
    }
    script
        .run(conn)
        .await
        .map_err(|e| identity_taken(e, "emails", &main))?;
    Ok(id)
}

#[derive(FromRow)]
struct Manager {
    email: String,
    display_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

/// The name and email of the person `reference` names (a user id of this account), if
/// it names one.
async fn manager(
    conn: &mut AnyConnection,
    account: AccountId,
    reference: Option<&str>,
) -> Result<(Option<String>, Option<String>)> {
    let Some(id) = reference.and_then(|r| r.trim().parse::<i64>().ok()) else {
        return Ok((None, None));
    };
    let found: Option<Manager> = sqlx::query_as(
        "SELECT email, display_name, first_name, last_name FROM users \
         WHERE account_id = $1 AND id = $2",
    )
    .bind(account.0)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(found) = found else {
        return Ok((None, None));
    };
    let email = found.email;
    let name = found.display_name.or_else(|| {
        let joined = [found.first_name, found.last_name]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!joined.is_empty()).then_some(joined)
    });
    Ok((
        name,
        Email::parse(&email).ok().map(|e| e.as_str().to_owned()),
    ))
}
