//! Wake-ups of the background tasks (the group and training executors, the notice
//! runner's lanes): a commit that gives one of them work sooner than it expects wakes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::Notify;

/// The wake-ups of the background tasks a commit may give work to.
#[derive(Debug, Clone, Default)]
pub struct Wakes {
    pub groups: Arc<Wake>,
    pub training: Arc<Wake>,
    /// One per lane of the notice runner, so slow email never holds up a webhook.
    pub webhooks: Arc<Wake>,
    pub emails: Arc<Wake>,
}

impl Wakes {
    /// After a commit that may have queued notices.
    pub fn jobs_queued(&self) {
        self.webhooks.kick();
        self.emails.kick();
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
