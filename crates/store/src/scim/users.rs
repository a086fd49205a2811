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
        let mut script = Script::new(&change.tx);
        let user = write(&mut change.tx, &mut script, account, &current, &input, now).await?;
        run_identities(&mut script, &mut change.tx, &[&input]).await?;
        self.commit_people(change, account, &[id]).await?;
        Ok(user)
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

pub(super) fn check(input: &ScimUserInput) -> Result<()> {
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

/// Creates people from provider users in the transaction on `conn`, in the order given,
/// or brings back those it deleted under the same userName; a userName a current person
/// holds (or another of `inputs`) is a conflict. Their identities and emails are queued
/// in `script`; enrolment and smart groups are the caller's.
pub(super) async fn create_all(
    conn: &mut AnyConnection,
    script: &mut Script<'_>,
    account: AccountId,
    inputs: &[&ScimUserInput],
    now: i64,
) -> Result<Vec<ScimUser>> {
    let names: Vec<String> = (inputs.iter())
        .map(|i| normalize_identity(&i.user_name))
        .collect();
    let mut query = QueryBuilder::new(
        "SELECT COALESCE(user_name_norm, email_norm), id, scim_deleted_at FROM users \
         WHERE account_id = ",
    );
    query
        .push_bind(account.0)
        .push(" AND COALESCE(user_name_norm, email_norm) IN (");
    let mut list = query.separated(", ");
    for name in &names {
        list.push_bind(name.clone());
    }
    query.push(")");
    // Planned for the values at hand, not kept: PostgreSQL would otherwise settle on a
    // plan made while the table was small (a scan), and keep it as the table grows.
    let found: Vec<(String, i64, Option<i64>)> = (query.build_query_as())
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    let mut fresh = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let held = found.iter().find(|f| f.0 == names[i]);
        if names[..i].contains(&names[i]) || held.is_some_and(|f| f.2.is_none()) {
            return Err(taken(&input.user_name));
        }
        if held.is_none() {
            fresh.push((*input, fields(conn, account, None, input).await?));
        }
    }
    let mut inserted = insert_people(conn, account, &fresh, now).await?;
    let mut users = Vec::with_capacity(inputs.len());
    for (input, name) in inputs.iter().zip(&names) {
        let user = match found.iter().find(|f| &f.0 == name) {
            Some((_, id, _)) => {
                let deleted = load(conn, account, UserId(*id), true).await?;
                write(conn, script, account, &deleted, input, now).await?
            }
            None => {
                let at = (inserted.iter())
                    .position(|row| {
                        (row.user_name.as_deref()).is_some_and(|n| normalize_identity(n) == *name)
                    })
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("user `{name}` was not inserted"))
                    })?;
                written(script, account, None, input, inserted.swap_remove(at))
            }
        };
        users.push(user);
    }
    Ok(users)
}

/// Runs the script of [`write`]s: a person's identity or email another person has is a
/// conflict (named, when one person was written).
pub(super) async fn run_identities(
    script: &mut Script<'_>,
    conn: &mut AnyConnection,
    written: &[&ScimUserInput],
) -> Result<()> {
    script.run(conn).await.map_err(|e| match written {
        [input] => identity_taken(e, "emails", input.main_identity().trim()),
        _ => e,
    })
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

/// A person's columns and their values.
type Fields = Vec<(&'static str, Option<String>)>;

/// The person's columns `input` gives, with their values. The manager's name and email
/// (which criteria read) follow the reference when it changes (always for a new person);
/// otherwise they stay as they are, whoever set them.
async fn fields(
    conn: &mut AnyConnection,
    account: AccountId,
    existing: Option<&ScimUser>,
    input: &ScimUserInput,
) -> Result<Fields> {
    let main = input.main_identity().trim().to_owned();
    let mut text: Vec<(&str, Option<String>)> = vec![
        ("email_norm", Some(normalize_identity(&main))),
        ("email", Some(main)),
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
    match existing {
        Some(e) if e.manager_ref == input.manager_ref => {}
        _ => {
            let (name, email) = manager(conn, account, input.manager_ref.as_deref()).await?;
            text.push(("manager_name", name));
            text.push(("manager_email", email));
        }
    }
    Ok(text)
}

fn status(input: &ScimUserInput) -> UserStatus {
    if input.active {
        UserStatus::Active
    } else {
        UserStatus::Archived
    }
}

/// Inserts new people, each with its [`fields`] (the same columns for all), in one
/// statement, and returns their rows (in no particular order).
async fn insert_people(
    conn: &mut AnyConnection,
    account: AccountId,
    people: &[(&ScimUserInput, Fields)],
    now: i64,
) -> Result<Vec<Row>> {
    let Some((first, columns)) = people.first() else {
        return Ok(Vec::new());
    };
    let mut insert = QueryBuilder::new(
        "INSERT INTO users (account_id, joined_on, updated_at, status, archived_at, \
         provisioning_managed",
    );
    for (column, _) in columns {
        insert.push(", ").push(column);
    }
    insert.push(") ");
    insert.push_values(people, |mut values, (input, text)| {
        values
            .push_bind(account.0)
            .push_bind(now)
            .push_bind(now)
            .push_bind(status(input).as_str())
            .push_bind((!input.active).then_some(now))
            .push_bind(true);
        for (_, value) in text {
            values.push_bind(value.clone());
        }
    });
    insert.push(format!(" RETURNING {COLUMNS}, {SCIM_COLUMNS}"));
    // Its text changes with the number of people: not worth a prepared statement each.
    insert
        .build_query_as::<Row>()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| match people {
            [_] => email_conflict(e, first.main_identity().trim()),
            _ => e.into(),
        })
}

/// Writes `input` over `current` and returns the person as written. The person's
/// identity and emails are queued in `script`, which the caller runs.
async fn write(
    conn: &mut AnyConnection,
    script: &mut Script<'_>,
    account: AccountId,
    current: &ScimUser,
    input: &ScimUserInput,
    now: i64,
) -> Result<ScimUser> {
    let text = fields(conn, account, Some(current), input).await?;
    let mut update = QueryBuilder::new("UPDATE users SET updated_at = ");
    update
        .push_bind(now)
        .push(", provisioning_managed = ")
        .push_bind(true)
        .push(", scim_deleted_at = NULL");
    push_status(&mut update, status(input), now);
    for (column, value) in &text {
        update
            .push(format!(", {column} = "))
            .push_bind(value.clone());
    }
    update
        .push(" WHERE account_id = ")
        .push_bind(account.0)
        .push(" AND id = ")
        .push_bind(current.user.id.0)
        .push(format!(" RETURNING {COLUMNS}, {SCIM_COLUMNS}"));
    let row = update
        .build_query_as::<Row>()
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| email_conflict(e, input.main_identity().trim()))?;
    Ok(written(script, account, Some(current), input, row))
}

/// The person `input` was written as (`row`, over `existing`): their identity and emails
/// are queued in `script`.
fn written(
    script: &mut Script<'_>,
    account: AccountId,
    existing: Option<&ScimUser>,
    input: &ScimUserInput,
    row: Row,
) -> ScimUser {
    let id = row.user.id;
    let main = input.main_identity().trim();
    if existing.is_none_or(|e| e.user.email != main) {
        queue_main_identity(script, account, id, main, existing.is_some());
        queue_attribute_events(script, account, id);
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
    // The emails are stored as given, in their order.
    ScimUser {
        emails: input.emails.clone(),
        ..scim_user(row, &[])
    }
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
