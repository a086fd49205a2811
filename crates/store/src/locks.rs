//! What a write transaction locks, beyond the database's own row locks.
//!
//! SQLite has one writer at a time: `BEGIN IMMEDIATE` takes the database's write lock, which
//! orders every write. PostgreSQL has no single writer, and several nodes may write at once,
//! so a transaction that changes an account's facts (its events, people, memberships,
//! enrolments, rules or event types) takes that account's transaction-scoped advisory lock:
//! changes of one account are ordered in the database, whichever node makes them, and a
//! node's smart-group cache is checked against the account's versions under it (see
//! `fact_change`). The events of an account that never had a smart group go under the
//! lock shared (writers of several nodes side by side, nothing for a cache to know); a
//! smart group's creation takes it exclusively first, after which that account's writers
//! take it exclusively too. Locks are taken in account order in one statement, so two
//! transactions never wait for each other in a circle. Writes that change no facts
//! (recording a notice attempt, a token's last use) lock nothing.

use crate::{Backend, Result, StoreError};
use coachloop_core::event_id::SLOT_BITS;
use sqlx::AnyConnection;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The first key of coachloop's advisory locks ("cloo" in ASCII): the second is the
/// account, so another application's advisory locks on the same database never collide.
const LOCK_CLASS: i32 = 0x636c_6f6f;

/// The first key of the event writers' slots ("slot"; see [`claim_writer_slot`]).
const SLOT_CLASS: i32 = 0x736c_6f74;

/// Claims a slot of the event ids' counter for the event writer on `conn` (PostgreSQL,
/// where several nodes store events at once; `None` on SQLite, whose one writer has the
/// whole counter). The claim is a session advisory lock on the writer's own connection:
/// held while the connection lives, released by the server however the node ends.
pub(crate) async fn claim_writer_slot(conn: &mut AnyConnection) -> Result<Option<u64>> {
    if Backend::of_connection(conn) != Backend::Postgres {
        return Ok(None);
    }
    let slots = 1 << SLOT_BITS;
    // Tried in order until one is free: only that one is taken.
    let slot: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT s FROM generate_series(0, {}) AS s \
         WHERE pg_try_advisory_lock({SLOT_CLASS}, s) LIMIT 1",
        slots - 1
    ))
    .fetch_optional(&mut *conn)
    .await?;
    match slot {
        Some(slot) => Ok(Some(slot as u64)),
        None => Err(StoreError::Unavailable(format!(
            "all {slots} event writer slots are taken: at most {slots} nodes can store events \
             into one database"
        ))),
    }
}

/// The accounts a write transaction locks (on PostgreSQL): exclusively, or shared.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Locks {
    accounts: BTreeSet<i64>,
    shared: BTreeSet<i64>,
}

impl Locks {
    /// No account's facts change.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn account(account: i64) -> Self {
        Self::accounts([account])
    }

    pub fn accounts(accounts: impl IntoIterator<Item = i64>) -> Self {
        Self {
            accounts: accounts.into_iter().collect(),
            shared: BTreeSet::new(),
        }
    }

    /// Takes `account`'s lock exclusively too.
    pub fn lock(&mut self, account: i64) {
        self.accounts.insert(account);
    }

    /// Takes `account`'s lock shared instead (unless it is taken exclusively).
    pub fn share(&mut self, account: i64) {
        self.shared.insert(account);
    }

    /// The accounts with whether each is shared, in the order they are locked.
    pub fn iter(&self) -> impl Iterator<Item = (i64, bool)> + '_ {
        let shared = self.shared.difference(&self.accounts).map(|a| (*a, true));
        let exclusive = self.accounts.iter().map(|a| (*a, false));
        let mut all: Vec<(i64, bool)> = shared.chain(exclusive).collect();
        all.sort_unstable();
        all.into_iter()
    }

    /// What opens a write transaction holding these locks, as one simple query (no bound
    /// values, one round trip) that returns no rows, so a read can follow it in the same
    /// round trip.
    pub fn begin(&self, backend: Backend) -> String {
        match backend {
            Backend::Sqlite => "BEGIN IMMEDIATE".to_owned(),
            Backend::Postgres if self.accounts.is_empty() && self.shared.is_empty() => {
                "BEGIN".to_owned()
            }
            Backend::Postgres => {
                // One statement: the locks are taken left to right, in account order.
                let mut sql = "BEGIN; SELECT 1 WHERE (".to_owned();
                for (i, (account, shared)) in self.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(" || ");
                    }
                    // Keys are 32-bit; two accounts sharing one would only wait for each
                    // other.
                    let key = account.rem_euclid(1 << 31);
                    let mode = if shared { "_shared" } else { "" };
                    let _ = write!(
                        sql,
                        "pg_advisory_xact_lock{mode}({LOCK_CLASS}, {key})::text"
                    );
                }
                sql.push_str(") IS NULL");
                sql
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_locked_in_order_in_one_statement() {
        let mut locks = Locks::accounts([7, 3, 7]);
        locks.share(5);
        locks.share(7);
        assert_eq!(
            locks.begin(Backend::Postgres),
            "BEGIN; SELECT 1 WHERE (pg_advisory_xact_lock(1668050799, 3)::text || \
             pg_advisory_xact_lock_shared(1668050799, 5)::text || \
             pg_advisory_xact_lock(1668050799, 7)::text) IS NULL"
        );
        assert_eq!(Locks::none().begin(Backend::Postgres), "BEGIN");
        assert_eq!(locks.begin(Backend::Sqlite), "BEGIN IMMEDIATE");
    }
}
