//! The one sequence every write that changes facts follows: **order** (the engine's lock,
//! which is also the fair gate the event writer takes per batch) → **begin** (the write
//! transaction, holding the database's write lock, or on PostgreSQL the advisory locks of
//! the accounts it changes; see `locks`) → **check** (PostgreSQL: the engine's cache of
//! those accounts against their committed versions, since other nodes change facts too)
//! → **write** → **commit** (with the accounts' new versions and whom the change touched)
//! → **wake** (the executors and the notice runner, if the commit gave them work).
//!
//! The order is held until the commit is done, so the engine's cache always equals what
//! is committed: people whose cached state a change touched are forgotten by the cache if
//! it does not commit (an error part-way, or a failed commit), and engine state built for
//! after the commit is put in place only once it has.

use crate::campaigns::Enrolled;
use crate::db::Backend;
use crate::engine::{AccountRules, Engine, Outcome, VersionRow, Versions};
use crate::locks::Locks;
use crate::wakes::Wakes;
use crate::{Result, Store};
use sqlx::{AnyConnection, Executor};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// A change of facts in progress: see the module's documentation.
pub(crate) struct FactChange {
    pub engine: Order,
    pub tx: sqlx::Transaction<'static, sqlx::Any>,
    /// The instant the change is recorded at.
    pub now: i64,
    wake: Wakeup,
    /// Engine state to put in place once committed, by account.
    replaced: Vec<(i64, AccountRules)>,
    /// People (account, user) whose compliance is evaluated again before the commit
    /// (see `compliance::recheck`).
    pub(crate) recheck: Vec<(i64, i64)>,
}

/// Holding the engine's lock: the order of changes of facts. Forgets the people a change
/// touched unless the change committed.
pub(crate) struct Order {
    engine: OwnedMutexGuard<Engine>,
    touched: Vec<(i64, i64)>,
    committed: bool,
    /// PostgreSQL: the accounts locked and checked in this transaction, at the versions
    /// found; each commits the next version.
    locked: Vec<(i64, Versions)>,
    /// Accounts whose smart groups or event types this change changes.
    rules_changed: BTreeSet<i64>,
}

impl Order {
    /// Takes its place in the order of changes (a fair queue) of `engine`, the store's.
    pub async fn lock(engine: &Arc<Mutex<Engine>>) -> Self {
        Self {
            engine: engine.clone().lock_owned().await,
            touched: Vec::new(),
            committed: false,
            locked: Vec::new(),
            rules_changed: BTreeSet::new(),
        }
    }

    /// Begins a write transaction on `conn` holding `locks` and checks the engine's cache
    /// of their accounts (see [`Order::check`]); on PostgreSQL the versions are read in
    /// the round trip that takes the locks.
    pub async fn begin(&mut self, conn: &mut AnyConnection, locks: &Locks) -> Result<Checked> {
        let backend = Backend::of_connection(conn);
        if backend != Backend::Postgres {
            Backend::begin(conn, locks).await?;
            return Ok(Checked::default());
        }
        let accounts: Vec<i64> = locks.iter().map(|(account, _)| account).collect();
        if accounts.is_empty() {
            Backend::begin(conn, locks).await?;
            return Ok(Checked::default());
        }
        let sql = format!(
            "{}; {}",
            locks.begin(backend),
            self.engine.versions_sql(&accounts)
        );
        // Without bound values: sent as one simple query, both statements.
        let rows = conn.fetch_all(sql.as_str()).await?;
        self.checked(locks, &rows)
    }

    /// Checks the cache of the accounts of `locks` (taken by the transaction on `conn`)
    /// against what other nodes committed (PostgreSQL; on SQLite one process writes, and
    /// its cache is always current). Says whose rules or event types another node
    /// changed, and which accounts locked shared must be locked exclusively (see
    /// [`Order::shares`]).
    pub async fn check(&mut self, conn: &mut AnyConnection, locks: &Locks) -> Result<Checked> {
        let accounts: Vec<i64> = locks.iter().map(|(account, _)| account).collect();
        if Backend::of_connection(conn) != Backend::Postgres || accounts.is_empty() {
            return Ok(Checked::default());
        }
        let sql = self.engine.versions_sql(&accounts);
        let rows = conn.fetch_all(sql.as_str()).await?;
        self.checked(locks, &rows)
    }

    /// [`Order::check`] of the rows of `Engine::versions_sql`.
    fn checked(&mut self, locks: &Locks, rows: &[sqlx::any::AnyRow]) -> Result<Checked> {
        use sqlx::Row;
        let mut read: Vec<VersionRow> = Vec::with_capacity(rows.len());
        for row in rows {
            read.push((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            ));
        }
        let mut checked = Checked::default();
        // Begun again (an account needed its lock exclusively): only this round counts.
        self.locked.clear();
        for (account, shared) in locks.iter() {
            let mine: Vec<VersionRow> = read.iter().filter(|r| r.0 == account).cloned().collect();
            let synced = self.engine.check_versions(account, &mine);
            if synced.rules_changed {
                checked.rules_changed.push(account);
            }
            if !shared {
                self.locked.push((account, synced.versions));
            } else if synced.versions.rules != 0 {
                checked.lock_exclusively.push(account);
            }
        }
        Ok(checked)
    }

    /// Whether the events of `account` may be stored under its lock shared (PostgreSQL):
    /// when it never had a smart group (its rules version is 0), as last checked. Such
    /// writes change nothing a node caches and are not logged; creating the account's
    /// first smart group first bumps the version under the lock exclusively, after which
    /// every writer finds the account must be locked exclusively.
    pub fn shares(&self, account: i64) -> bool {
        self.engine
            .seen(account)
            .is_some_and(|seen| seen.rules == 0)
    }

    /// Marks `user`'s cached state as changed by this change.
    pub fn touch(&mut self, account: i64, user: i64) {
        self.touched.push((account, user));
    }

    /// This change changes the account's smart groups or event types: other nodes drop
    /// their state of it.
    pub fn rules_changed(&mut self, account: i64) {
        self.rules_changed.insert(account);
    }

    /// The statements that record this change in the versions of the accounts it locked
    /// (PostgreSQL; none on SQLite): each account's next versions, and in `fact_log` the
    /// people it touched, with the people of `events` (account and id of events it
    /// stored, whose people are matched by the insert). Run before the commit, in its
    /// transaction.
    pub fn versions_sql(&self, now: i64, events: &[(i64, i64)]) -> String {
        let mut sql = String::new();
        for (account, seen) in &self.locked {
            if !sql.is_empty() {
                sql.push_str("; ");
            }
            let next = self.next(*account, *seen);
            let touched: Vec<String> = (self.touched.iter())
                .filter(|(a, _)| a == account)
                .map(|(_, user)| user.to_string())
                .collect();
            let _ = write!(
                sql,
                "UPDATE accounts SET fact_version = {}, rules_version = {} WHERE id = {account}; \
                 INSERT INTO fact_log (account_id, version, users, at) VALUES ({account}, {}, \
                 ARRAY(SELECT DISTINCT u FROM unnest(ARRAY[{}]::bigint[]",
                next.facts,
                next.rules,
                next.facts,
                touched.join(",")
            );
            let ids: Vec<String> = (events.iter())
                .filter(|(a, _)| a == account)
                .map(|(_, id)| id.to_string())
                .collect();
            if !ids.is_empty() {
                let _ = write!(
                    sql,
                    " || ARRAY(SELECT user_id FROM events WHERE id = ANY('{{{}}}'::bigint[]) \
                     AND account_id = {account} AND user_id IS NOT NULL)",
                    ids.join(",")
                );
            }
            let _ = write!(sql, ") AS u ORDER BY u), {now})");
        }
        sql
    }

    /// Whether this change holds accounts' locks exclusively, and so commits their next
    /// versions (PostgreSQL).
    pub fn locks_accounts(&self) -> bool {
        !self.locked.is_empty()
    }

    fn next(&self, account: i64, seen: Versions) -> Versions {
        Versions {
            facts: seen.facts + 1,
            rules: seen.rules + i64::from(self.rules_changed.contains(&account)),
        }
    }

    /// The change committed: what it did to the cache stays, at the versions it wrote.
    pub fn committed(&mut self) {
        self.committed = true;
        for (account, seen) in std::mem::take(&mut self.locked) {
            let next = self.next(account, seen);
            self.engine.saw(account, next);
        }
    }
}

impl Deref for Order {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl DerefMut for Order {
    fn deref_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

impl Drop for Order {
    fn drop(&mut self) {
        if !self.committed {
            for (account, user) in self.touched.drain(..) {
                self.engine.forget(account, user);
            }
        }
    }
}

/// What [`Order::check`] found.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// Accounts whose smart groups or event types another node changed.
    pub rules_changed: Vec<i64>,
    /// Accounts locked shared that now need the lock exclusively: the transaction must
    /// start again.
    pub lock_exclusively: Vec<i64>,
}

/// Which background tasks a committed change gives work to.
#[derive(Debug, Default)]
struct Wakeup {
    /// The earliest group schedule entry it wrote.
    groups_due: Option<i64>,
    /// A smart group changed: the group executor looks at its schedule again.
    groups: bool,
    /// The earliest training deadline it wrote.
    training_due: Option<i64>,
    /// It may have queued notices.
    jobs: bool,
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Store {
    /// Begins a change of `account`'s facts: takes its place in the order, then the write
    /// lock and the account's lock, and checks the engine's cache of it.
    pub(crate) async fn change_facts(
        &self,
        account: coachloop_core::ids::AccountId,
    ) -> Result<FactChange> {
        self.change_facts_in(Locks::account(account.0)).await
    }

    /// [`Store::change_facts`] of the accounts of `locks` (none: a write in the order of
    /// changes that changes no facts).
    pub(crate) async fn change_facts_in(&self, locks: Locks) -> Result<FactChange> {
        let mut engine = Order::lock(&self.engine).await;
        let mut tx = self.begin_write(&locks).await?;
        if !engine
            .check(&mut tx, &locks)
            .await?
            .rules_changed
            .is_empty()
        {
            // Another node renamed or deleted event types, or changed smart groups: the
            // event writer's names of types start over.
            self.event_types_changed();
        }
        Ok(FactChange {
            engine,
            tx,
            now: self.now_ms(),
            wake: Wakeup::default(),
            replaced: Vec::new(),
            recheck: Vec::new(),
        })
    }
}

impl FactChange {
    /// Wakes whom `outcome` gives work to once committed.
    pub fn wake_for(&mut self, outcome: &Outcome) {
        self.wake.groups_due = earliest(
            self.wake.groups_due,
            outcome.dues.iter().filter_map(|d| d.3).min(),
        );
        self.wake_enrolled(&outcome.enrolled);
        // Joining or leaving a group can bring a person in or out of a requirement's scope.
        self.recheck
            .extend(outcome.changes.iter().map(|c| (c.account, c.user)));
        // Joins and leaves may have queued webhooks.
        self.wake.jobs |= !outcome.changes.is_empty();
    }

    /// Wakes whom new enrolments give work to once committed: the training executor for
    /// their deadlines, the notice runner for their emails.
    pub fn wake_enrolled(&mut self, enrolled: &Enrolled) {
        self.wake_training(enrolled.earliest_due);
        self.wake.jobs |= enrolled.made > 0;
        self.recheck.extend(enrolled.people.iter().copied());
    }

    /// Wakes the training executor once committed if `due` comes before its next task.
    pub fn wake_training(&mut self, due: Option<i64>) {
        self.wake.training_due = earliest(self.wake.training_due, due);
    }

    /// Wakes the notice runner once committed.
    pub fn wake_jobs(&mut self) {
        self.wake.jobs = true;
    }

    /// Wakes the group executor once committed (a smart group changed).
    pub fn wake_groups(&mut self) {
        self.wake.groups = true;
    }

    /// Puts `rules` in place of the account's engine state once committed.
    pub fn replace_rules(&mut self, account: i64, rules: AccountRules) {
        self.engine.rules_changed(account);
        self.replaced.push((account, rules));
    }

    /// Commits, then puts the new engine state in place, leaves the order and wakes.
    pub async fn commit(self, wakes: &Wakes) -> Result<()> {
        let FactChange {
            mut engine,
            mut tx,
            mut wake,
            replaced,
            now,
            recheck,
        } = self;
        if !recheck.is_empty() {
            let due = crate::compliance::recheck(&mut tx, &recheck, now).await?;
            wake.training_due = earliest(wake.training_due, due);
        }
        let versions = engine.versions_sql(now, &[]);
        if !versions.is_empty() {
            tx.execute(versions.as_str()).await?;
        }
        tx.commit().await?;
        engine.committed();
        for (account, rules) in replaced {
            engine.put(account, rules);
        }
        drop(engine);
        wakes.groups_due(wake.groups_due);
        if wake.groups {
            wakes.groups_changed();
        }
        wakes.training_due(wake.training_due);
        if wake.jobs {
            wakes.jobs_queued();
        }
        Ok(())
    }
}
