//! Wake-ups of the background tasks (the group and training executors, the notice
//! runner's lanes): a commit that gives one of them work sooner than it expects wakes it,
//! on this node and (PostgreSQL) on the others (see `signals`).

use crate::signals::Signal;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

/// The wake-ups of the background tasks a commit may give work to.
#[derive(Debug, Clone, Default)]
pub struct Wakes {
    pub groups: Arc<Wake>,
    pub training: Arc<Wake>,
    /// One per lane of the notice runner, so slow email never holds up a webhook.
    pub webhooks: Arc<Wake>,
    pub emails: Arc<Wake>,
    /// The remote sync runner.
    pub syncs: Arc<Wake>,
    /// Counts revocations of tokens seen, here or on other nodes (see
    /// [`Wakes::revocations`]).
    revocations: Arc<AtomicU64>,
    /// Where signals for the other nodes queue (PostgreSQL).
    others: Option<UnboundedSender<Signal>>,
}

impl Wakes {
    /// Wake-ups that also reach the other nodes through `others`.
    pub(crate) fn across(others: UnboundedSender<Signal>) -> Self {
        Self {
            others: Some(others),
            ..Self::default()
        }
    }

    fn tell_others(&self, signal: Signal) {
        if let Some(others) = &self.others {
            // Closed only when the store is: no node is left to wake.
            let _ = others.send(signal);
        }
    }

    /// After a commit that scheduled smart-group work at `earliest`.
    pub(crate) fn groups_due(&self, earliest: Option<i64>) {
        if let Some(at) = earliest {
            self.groups.due(Some(at));
            self.tell_others(Signal::GroupsDue(at));
        }
    }

    /// After a commit that changed a smart group.
    pub(crate) fn groups_changed(&self) {
        self.groups.kick();
        self.tell_others(Signal::Groups);
    }

    /// After a commit that scheduled training work at `earliest`.
    pub(crate) fn training_due(&self, earliest: Option<i64>) {
        if let Some(at) = earliest {
            self.training.due(Some(at));
            self.tell_others(Signal::TrainingDue(at));
        }
    }

    /// After a commit that changed campaigns.
    pub(crate) fn training_changed(&self) {
        self.training.kick();
        self.tell_others(Signal::Training);
    }

    /// After a commit that may have queued notices.
    pub fn jobs_queued(&self) {
        self.webhooks.kick();
        self.emails.kick();
        self.tell_others(Signal::Jobs);
    }

    /// After a commit that made a remote sync due at `at`.
    pub(crate) fn sync_due(&self, at: i64) {
        self.syncs.due(Some(at));
        self.tell_others(Signal::SyncDue(at));
    }

    /// After a token was revoked.
    pub(crate) fn token_revoked(&self) {
        self.revocations.fetch_add(1, Ordering::SeqCst);
        self.tell_others(Signal::Revoked);
    }

    /// How many revocations of tokens this node has seen: a cache of token lookups made
    /// at another count is stale.
    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }

    /// Acts on another node's signal, on this node only.
    pub(crate) fn apply(&self, signal: Signal) {
        match signal {
            Signal::GroupsDue(at) => self.groups.due(Some(at)),
            Signal::Groups => self.groups.kick(),
            Signal::TrainingDue(at) => self.training.due(Some(at)),
            Signal::Training => self.training.kick(),
            Signal::Jobs => {
                self.webhooks.kick();
                self.emails.kick();
            }
            Signal::Revoked => {
                self.revocations.fetch_add(1, Ordering::SeqCst);
            }
            Signal::SyncDue(at) => self.syncs.due(Some(at)),
        }
    }

    /// Wakes every task of this node and drops cached tokens (signals may have been
    /// missed: each task then reads what is due).
    pub(crate) fn everything_local(&self) {
        for wake in [
            &self.groups,
            &self.training,
            &self.webhooks,
            &self.emails,
            &self.syncs,
        ] {
            wake.kick();
        }
        self.revocations.fetch_add(1, Ordering::SeqCst);
    }
}

/// Wakes the executor when an entry earlier than the one it sleeps towards is written.
#[derive(Debug, Default)]
pub struct Wake {
    notify: Notify,
    /// The instant the executor sleeps towards (`i64::MAX` when none).
    target: AtomicI64,
}

impl Wake {
    pub fn new() -> Self {
        Self {
            notify: Notify::new(),
            target: AtomicI64::new(i64::MAX),
        }
    }

    /// Called after a commit that may have scheduled something at `earliest`: wakes the
    /// executor if that comes before what it sleeps towards.
    pub(crate) fn due(&self, earliest: Option<i64>) {
        if earliest.is_some_and(|t| t < self.target.load(Ordering::SeqCst)) {
            self.notify.notify_one();
        }
    }

    pub fn set_target(&self, at: Option<i64>) {
        self.target.store(at.unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Wakes the executor unconditionally (e.g. after a test moved the clock).
    pub fn kick(&self) {
        self.notify.notify_one();
    }
}
