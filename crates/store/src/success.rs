//! The reads behind the success metrics of the credential-risk integration
//! (`coachloop_core::success` computes them; the README defines them). Every read goes
//! through the account's own event types, so none leaves the account, and over
//! `events_type_time` (type, instant, person): each is a range of that index, never a pass
//! over the table. The counts are summed per day in SQL; the people's compromised, weak
//! and changed passwords since going live are read as narrow rows, chunk by chunk.

use crate::scan::{Walk, each_event};
use crate::{Result, Store};
use coachloop_core::ids::{AccountId, UserId};
use coachloop_core::success::{
    self, DAY_MS, DayCounts, Facts, PasswordEvent, People, PersonEvent, Plan, Pushed, Range,
    Report, Window,
};
use coachloop_core::time::date_of_ms;
use sqlx::AnyConnection;
use std::collections::HashMap;
use tracing::instrument;

/// The account's event types the metrics read (ids of ours: written inline in SQL).
#[derive(Debug, Default)]
struct Types {
    /// Every `dashlane_` type: the first event of any marks going live.
    all: Vec<i64>,
    compromised: Vec<i64>,
    weak: Vec<i64>,
    changed: Vec<i64>,
    dismissed: Vec<i64>,
    health: Vec<i64>,
}

impl Types {
    async fn read(conn: &mut AnyConnection, account: AccountId) -> Result<Self> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM event_types WHERE account_id = $1")
                .bind(account.0)
                .fetch_all(&mut *conn)
                .await?;
        let mut types = Self::default();
        for (id, name) in rows.iter().filter(|(_, n)| n.starts_with(success::PREFIX)) {
            types.all.push(*id);
            let list = match name.as_str() {
                success::COMPROMISED => &mut types.compromised,
                success::WEAK => &mut types.weak,
                success::CHANGED => &mut types.changed,
                success::HEALTH_SCORE => &mut types.health,
                n if success::DISMISSED.contains(&n) => &mut types.dismissed,
                _ => continue,
            };
            list.push(*id);
        }
        Ok(types)
    }
}

/// `(1, 2, 3)`: integer ids of ours, for `IN`.
pub(crate) fn inline(ids: &[i64]) -> String {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("({})", ids.join(", "))
}

/// The instant of the account's first event of its `types` (each type's first is one
/// step down the index).
async fn live_since(
    conn: &mut AnyConnection,
    account: AccountId,
    types: &[i64],
) -> Result<Option<i64>> {
    if types.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT MIN(first_at) FROM (SELECT (SELECT MIN(e.occurred_at) FROM events e \
         WHERE e.event_type_id = t.id) AS first_at FROM event_types t \
         WHERE t.account_id = $1 AND t.id IN {}) AS firsts",
        inline(types)
    );
    Ok(sqlx::query_scalar::<_, Option<i64>>(&sql)
        .bind(account.0)
        .fetch_one(conn)
        .await?)
}

/// Compromised passwords and dismissed phishing alerts per day of `window`, matched to a
/// person or not.
async fn count_days(
    conn: &mut AnyConnection,
    types: &Types,
    window: Window,
    into: &mut HashMap<chrono::NaiveDate, DayCounts>,
) -> Result<()> {
    let ids: Vec<i64> = types
        .compromised
        .iter()
        .chain(&types.dismissed)
        .copied()
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    // Offsets from the window's first instant: never negative, so integer division
    // gives the day on both engines.
    let sql = format!(
        "SELECT event_type_id, (occurred_at - $1) / {DAY_MS}, COUNT(*) FROM events \
         WHERE event_type_id IN {} AND occurred_at >= $1 AND occurred_at < $2 \
         GROUP BY 1, 2",
        inline(&ids)
    );
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(&sql)
        .bind(window.start_ms())
        .bind(window.end_ms())
        .fetch_all(&mut *conn)
        .await?;
    for (type_id, offset, count) in rows {
        let day = date_of_ms(window.start_ms() + offset * DAY_MS);
        let counts = into.entry(day).or_default();
        if types.compromised.contains(&type_id) {
            counts.compromised += count;
        } else {
            counts.dismissed += count;
        }
    }
    Ok(())
}

/// People's compromised, weak and changed passwords from `since` on.
async fn person_events(
    conn: &mut AnyConnection,
    types: &Types,
    since: i64,
) -> Result<Vec<PersonEvent>> {
    let mut events = Vec::new();
    let kinds = [
        (&types.compromised, PasswordEvent::Compromised),
        (&types.weak, PasswordEvent::Weak),
        (&types.changed, PasswordEvent::Changed),
    ];
    for (ids, kind) in kinds {
        for type_id in ids {
            // `Recent` reads what occurred after its instant.
            let walk = Walk::Recent {
                type_id: *type_id,
                since: since - 1,
            };
            each_event(conn, walk, false, |row| {
                events.push(PersonEvent {
                    user: UserId(row.user),
                    at: row.occurred_ms,
                    kind,
                });
            })
            .await?;
        }
    }
    Ok(events)
}

/// Health figures pushed from `since` on (matched to a person or not), in order; an
/// event whose description is not a figure is left out.
async fn pushed(conn: &mut AnyConnection, types: &Types, since: i64) -> Result<Vec<Pushed>> {
    if types.health.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT occurred_at, description FROM events \
         WHERE event_type_id IN {} AND occurred_at >= $1 ORDER BY occurred_at, id, id_low",
        inline(&types.health)
    );
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as(&sql).bind(since).fetch_all(conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(at, description)| {
            let value = success::pushed_value(description.as_deref()?)?;
            Some(Pushed { at, value })
        })
        .collect())
}

/// The account's people: how many are active, and when each other was archived.
async fn people(conn: &mut AnyConnection, account: AccountId) -> Result<People> {
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE account_id = $1 AND status = 'active'",
    )
    .bind(account.0)
    .fetch_one(&mut *conn)
    .await?;
    let archived: Vec<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, archived_at FROM users WHERE account_id = $1 AND status <> 'active'",
    )
    .bind(account.0)
    .fetch_all(&mut *conn)
    .await?;
    Ok(People {
        active,
        archived: archived
            .into_iter()
            .map(|(id, at)| (UserId(id), at))
            .collect(),
    })
}

impl Store {
    /// The success metrics of an account over `range` (days up to today by the store's
    /// clock), read in one snapshot.
    #[instrument(skip_all)]
    pub async fn success_metrics(&self, account: AccountId, range: Range) -> Result<Report> {
        let today = date_of_ms(self.now_ms());
        let mut tx = self.read.begin_with(self.backend.begin_snapshot()).await?;
        let types = Types::read(&mut tx, account).await?;
        let live = live_since(&mut tx, account, &types.all).await?;
        let plan = Plan::new(range, today, live);
        let mut facts = Facts::default();
        if let Some(live) = live {
            for window in plan.count_windows() {
                count_days(&mut tx, &types, window, &mut facts.counts).await?;
            }
            facts.person_events = person_events(&mut tx, &types, live).await?;
            facts.pushed = pushed(&mut tx, &types, live).await?;
            facts.people = people(&mut tx, account).await?;
        }
        tx.rollback().await?;
        Ok(success::compute(&plan, &facts))
    }
}
