//! The one sequence every write that changes facts follows: **order** (the engine's lock,
//! which is also the fair gate the event writer takes per batch) → **begin** (the write
//! transaction, holding the database's write lock) → **write** → **commit** → **wake**
//! (the executors and the notice runner, if the commit gave them work).
//!
//! The order is held until the commit is done, so the engine's cache always equals what
//! is committed: people whose cached state a change touched are forgotten by the cache if
//! it does not commit (an error part-way, or a failed commit), and engine state built for
//! after the commit is put in place only once it has.

use crate::campaigns::Enrolled;
use crate::engine::{AccountRules, Engine, Outcome};
use crate::wakes::Wakes;
use crate::{Result, Store};
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
}

/// Holding the engine's lock: the order of changes of facts. Forgets the people a change
/// touched unless the change committed.
pub(crate) struct Order {
    engine: OwnedMutexGuard<Engine>,
    touched: Vec<(i64, i64)>,
    committed: bool,
}

impl Order {
    /// Takes its place in the order of changes (a fair queue) of `engine`, the store's.
    pub async fn lock(engine: &Arc<Mutex<Engine>>) -> Self {
        Self {
            engine: engine.clone().lock_owned().await,
            touched: Vec::new(),
            committed: false,
        }
    }

    /// Marks `user`'s cached state as changed by this change.
    pub fn touch(&mut self, account: i64, user: i64) {
        self.touched.push((account, user));
    }

    /// The change committed: what it did to the cache stays.
    pub fn committed(&mut self) {
        self.committed = true;
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
    /// Begins a change of facts: takes its place in the order, then the write lock.
    pub(crate) async fn change_facts(&self) -> Result<FactChange> {
        let engine = Order::lock(&self.engine).await;
        let tx = self.begin_write().await?;
        Ok(FactChange {
            engine,
            tx,
            now: self.now_ms(),
            wake: Wakeup::default(),
            replaced: Vec::new(),
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
        // Joins and leaves may have queued webhooks.
        self.wake.jobs |= !outcome.changes.is_empty();
    }

    /// Wakes whom new enrolments give work to once committed: the training executor for
    /// their deadlines, the notice runner for their emails.
    pub fn wake_enrolled(&mut self, enrolled: &Enrolled) {
        self.wake_training(enrolled.earliest_due);
        self.wake.jobs |= enrolled.made > 0;
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
        self.replaced.push((account, rules));
    }

    /// Commits, then puts the new engine state in place, leaves the order and wakes.
    pub async fn commit(self, wakes: &Wakes) -> Result<()> {
        let FactChange {
            mut engine,
            tx,
            wake,
            replaced,
            ..
        } = self;
        tx.commit().await?;
        engine.committed();
        for (account, rules) in replaced {
            engine.put(account, rules);
        }
        drop(engine);
        wakes.groups.due(wake.groups_due);
        if wake.groups {
            wakes.groups.kick();
        }
        wakes.training.due(wake.training_due);
        if wake.jobs {
            wakes.jobs_queued();
        }
        Ok(())
    }
}
