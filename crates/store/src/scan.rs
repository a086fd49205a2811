//! Bulk reads of events (and of enrolments and compliance standings), chunk by chunk. sqlx hands each row from its SQLite worker
//! thread to the reader through a channel, a thread wake-up per row: at millions of rows
//! that cost several times the scan itself. Here the database folds each chunk of rows
//! into one JSON array, so the hand-over (and the `Any` driver's per-row conversion) is
//! paid once per chunk, and the reader parses the array without copying descriptions.

use crate::Result;
use crate::db::Backend;
use futures_util::future::join;
use serde::Deserialize;
use sqlx::AnyConnection;
use std::borrow::Cow;

/// Rows per chunk: large enough that the hand-over vanishes, small enough that a chunk
/// (about 60 bytes a row) is no memory spike.
const CHUNK: usize = 10_000;

/// Which events a scan reads. Every walk reads only events matched to a person.
pub(crate) enum Walk<'a> {
    /// Events of these types, in one pass over the table in id order: the way to read
    /// descriptions of most events (a pass beats a lookup per row through an index).
    /// The ids are integers of ours, listed inline; being one account's types, they
    /// scope the read to that account.
    Table(&'a [i64]),
    /// Events of one type that occurred after `since`, over `events_type_time` (which
    /// holds everything but the description).
    Recent { type_id: i64, since: i64 },
}

/// One event as a scan reads it; the description borrows from the chunk's text.
#[derive(Deserialize)]
pub(crate) struct EventRow<'a> {
    pub user: i64,
    pub id: i64,
    pub id_low: i64,
    pub type_id: i64,
    #[serde(borrow)]
    pub description: Option<Cow<'a, str>>,
    pub occurred_ms: i64,
}

/// Calls `each` for every event of `walk`, with its description if `description`.
pub(crate) async fn each_event(
    conn: &mut AnyConnection,
    walk: Walk<'_>,
    description: bool,
    each: impl FnMut(EventRow<'_>),
) -> Result<()> {
    let description = if description { "description" } else { "NULL" };
    let columns = format!("user_id, id, id_low, event_type_id, {description}, occurred_at");
    match walk {
        Walk::Table(types) => {
            let ids: Vec<String> = types.iter().map(i64::to_string).collect();
            let from = format!(
                "{} WHERE event_type_id IN ({}) AND id > $1",
                Backend::of_connection(conn).table_using("events", None),
                ids.join(", ")
            );
            let key = Key::new(&[i64::MIN]);
            let key_of = |row: &EventRow<'_>| [row.id, 0, 0, 0];
            each_row::<Events>(conn, &columns, &from, "id", key, key_of, each).await
        }
        Walk::Recent { type_id, since } => {
            let from = format!(
                "events WHERE event_type_id = {type_id} \
                 AND (occurred_at, user_id, id_low, id) > ($1, $2, $3, $4)"
            );
            // Everything after `since`: no row has ids beyond the largest integer.
            let key = Key::new(&[since, i64::MAX, i64::MAX, i64::MAX]);
            let key_of = |row: &EventRow<'_>| [row.occurred_ms, row.user, row.id_low, row.id];
            let order = "occurred_at, user_id, id_low, id";
            each_row::<Events>(conn, &columns, &from, order, key, key_of, each).await
        }
    }
}

/// One event that still weighs on its person's risk score.
#[derive(Deserialize)]
pub(crate) struct RiskRow {
    pub user: i64,
    pub id: i64,
    pub occurred_ms: i64,
    pub level: i64,
    pub decay_mode: Option<i64>,
    pub expire_ms: i64,
}

/// Calls `each` for every event of an account whose risk has not expired at `now`, over
/// `events_risk` (it holds only events with a risk level), so the read is the size of
/// the account's weighing events, not of the table.
pub(crate) async fn each_risk(
    conn: &mut AnyConnection,
    account: i64,
    now: i64,
    each: impl FnMut(RiskRow),
) -> Result<()> {
    let columns = "user_id, id, occurred_at, risk_level, risk_decay_mode, risk_expire_date";
    let from = format!(
        "{} WHERE account_id = {account} \
         AND risk_level IS NOT NULL AND (risk_expire_date, id) > ($1, $2)",
        Backend::of_connection(conn).table_using("events", Some("events_risk"))
    );
    // Everything that expires after `now`: no row has an id beyond the largest integer.
    let key = Key::new(&[now, i64::MAX]);
    let key_of = |row: &RiskRow| [row.expire_ms, row.id, 0, 0];
    let order = "risk_expire_date, id";
    each_row::<Risks>(conn, columns, &from, order, key, key_of, each).await
}

/// One enrolment as compliance reads it (see `compliance::Inputs`).
#[derive(Deserialize, sqlx::FromRow)]
pub(crate) struct EnrolmentRow {
    pub user_id: i64,
    /// Read for evidence (and by chunked reads) only.
    #[sqlx(default)]
    pub id: i64,
    pub content_id: i64,
    pub campaign_id: i64,
    pub enrolled_at: i64,
    pub due_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// The cause, read only for enrolments a smart-group join made.
    #[sqlx(default)]
    #[serde(default)]
    pub joined: Option<String>,
    #[sqlx(default)]
    #[serde(default)]
    pub score: Option<i64>,
    /// The sync connection it came from (`None`: this installation's own).
    #[sqlx(default)]
    #[serde(default)]
    pub connection: Option<i64>,
}

/// A range of row ids: after `after`, up to `last`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ids {
    pub after: i64,
    pub last: i64,
}

impl Ids {
    pub(crate) const ALL: Self = Self {
        after: i64::MIN,
        last: i64::MAX,
    };
}

/// Calls `each` for every enrolment of an account in `ids` that `only` keeps (a
/// condition of ours starting with `AND`, or nothing). `tail` names the columns read
/// after `completed_at`, in order: nothing, `… AS joined`, or that and `score` (what a
/// full pass does not need is not read). On SQLite in chunks folded into JSON, in id
/// order over `enrollments_account`; PostgreSQL streams the rows as they are (folding
/// costs it more than the rows' hand-over).
pub(crate) async fn each_enrolment(
    conn: &mut AnyConnection,
    account: i64,
    tail: &str,
    only: &str,
    ids: Ids,
    mut each: impl FnMut(EnrolmentRow),
) -> Result<()> {
    let columns =
        format!("user_id, id, content_id, campaign_id, enrolled_at, due_at, completed_at{tail}");
    match Backend::of_connection(conn) {
        Backend::Sqlite => {
            let from = format!(
                "enrollments WHERE account_id = {account}{only} AND id <= {} AND id > $1",
                ids.last
            );
            let key_of = |row: &EnrolmentRow| [row.id, 0, 0, 0];
            let start = Key::new(&[ids.after]);
            each_row::<Enrolments>(conn, &columns, &from, "id", start, key_of, each).await
        }
        Backend::Postgres => {
            use futures_util::TryStreamExt;
            let sql = format!(
                "SELECT {columns} FROM enrollments WHERE account_id = $1{only} \
                 AND id > $2 AND id <= $3"
            );
            let mut rows = sqlx::query_as::<_, EnrolmentRow>(&sql)
                .bind(account)
                .bind(ids.after)
                .bind(ids.last)
                .fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                each(row);
            }
            Ok(())
        }
    }
}

/// A stored compliance standing as a full pass compares it (see `compliance::refresh`).
#[derive(Deserialize)]
pub(crate) struct StandingRow<'a> {
    pub requirement_id: i64,
    pub user_id: i64,
    #[serde(borrow)]
    pub status: Cow<'a, str>,
    pub digest: Option<i64>,
    pub since: i64,
}

/// Calls `each` for every stored standing of the requirements `requirements` (one
/// account's): on SQLite in chunks folded into JSON, in key order; PostgreSQL streams the
/// rows in one pass (a chunk's keyset read, planned on the statistics of a table just
/// filled, can scan it whole each time).
pub(crate) async fn each_standing(
    conn: &mut AnyConnection,
    account: i64,
    requirements: &[i64],
    mut each: impl FnMut(StandingRow<'_>),
) -> Result<()> {
    let ids: Vec<String> = requirements.iter().map(i64::to_string).collect();
    let columns = "requirement_id, user_id, status, digest, since";
    let scope = format!(
        "compliance_people WHERE account_id = {account} AND requirement_id IN ({})",
        ids.join(", ")
    );
    match Backend::of_connection(conn) {
        Backend::Sqlite => {
            let from = format!("{scope} AND (requirement_id, user_id) > ($1, $2)");
            let key_of = |row: &StandingRow<'_>| [row.requirement_id, row.user_id, 0, 0];
            let order = "requirement_id, user_id";
            let start = Key::new(&[i64::MIN, i64::MIN]);
            each_row::<Standings>(conn, columns, &from, order, start, key_of, each).await
        }
        Backend::Postgres => {
            use futures_util::TryStreamExt;
            type Owned = (i64, i64, String, Option<i64>, i64);
            let sql = format!("SELECT {columns} FROM {scope}");
            let mut rows = sqlx::query_as::<_, Owned>(&sql).fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                each(StandingRow {
                    requirement_id: row.0,
                    user_id: row.1,
                    status: Cow::Owned(row.2),
                    digest: row.3,
                    since: row.4,
                });
            }
            Ok(())
        }
    }
}

/// The rows a walk reads (a type whose rows may borrow from the chunk's text).
trait Rows {
    type Row<'a>: Deserialize<'a>;
}

struct Events;

impl Rows for Events {
    type Row<'a> = EventRow<'a>;
}

struct Risks;

impl Rows for Risks {
    type Row<'a> = RiskRow;
}

struct Enrolments;

impl Rows for Enrolments {
    type Row<'a> = EnrolmentRow;
}

struct Standings;

impl Rows for Standings {
    type Row<'a> = StandingRow<'a>;
}

/// Calls `each` for every row of `columns` (each an expression, which may end in
/// `AS name`) from `from` (whose WHERE clause ends with a
/// condition that the row's key in `order` is beyond `$1`…) in `order`, chunk by chunk
/// from `key`; `key_of` gives a row's key, padded with zeros.
async fn each_row<R: Rows>(
    conn: &mut AnyConnection,
    columns: &str,
    from: &str,
    order: &str,
    mut key: Key,
    key_of: impl Fn(&R::Row<'_>) -> [i64; 4],
    mut each: impl FnMut(R::Row<'_>),
) -> Result<()> {
    // The subquery picks the next chunk after the last row seen; the outer query folds
    // it into one value, naming each column by its alias (`… AS name`) if it has one.
    let names: Vec<&str> = columns
        .split(", ")
        .map(|c| c.rsplit_once(" AS ").map_or(c, |(_, alias)| alias))
        .collect();
    let sql = format!(
        "SELECT {} FROM (SELECT {columns} FROM {from} AND user_id IS NOT NULL \
         ORDER BY {order} LIMIT {CHUNK}) AS chunk",
        Backend::of_connection(conn).json_rows(&names.join(", "), order)
    );
    let mut text = chunk(conn, &sql, key).await?;
    loop {
        let rows: Vec<R::Row<'_>> =
            serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        if rows.len() < CHUNK {
            rows.into_iter().for_each(&mut each);
            return Ok(());
        }
        for row in &rows {
            key.at = key.at.max(key_of(row));
        }
        // SQLite folds the next chunk while this one is handed out.
        let (next, ()) = join(chunk(conn, &sql, key), async {
            rows.into_iter().for_each(&mut each);
        })
        .await;
        text = next?;
    }
}

/// The chunk after `key`, as one JSON array.
async fn chunk(conn: &mut AnyConnection, sql: &str, key: Key) -> Result<String> {
    let mut query = sqlx::query_scalar::<_, String>(sql);
    for value in &key.at[..key.len] {
        query = query.bind(*value);
    }
    Ok(query.fetch_one(conn).await?)
}

/// Where a walk has got to: the largest key read so far, in the walk's order (`len`
/// values, then zeros).
#[derive(Clone, Copy)]
struct Key {
    at: [i64; 4],
    len: usize,
}

impl Key {
    fn new(start: &[i64]) -> Self {
        let mut at = [0; 4];
        at[..start.len()].copy_from_slice(start);
        Key {
            at,
            len: start.len(),
        }
    }
}
