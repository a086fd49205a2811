//! Work done at its time. Two executors: the smart-group one acts on `group_schedule`
//! entries at their instant (a person leaving a group the moment an event leaves its
//! window), the training one starts and ends campaigns and marks enrolments past due at
//! their due instant. Each sleeps until its earliest entry or until a commit schedules
//! something earlier, and never polls. Also the daily risk-score record.
//!
//! A failure (the database away, say) does not end an executor: it tries again with a
//! growing wait, up to `MAX_RETRY`, logging an outage once (see `Retry`).

use coachloop_store::Store;
use coachloop_store::outage::Retry;
use coachloop_store::wakes::Wake;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// Longest single sleep; only bounds how long a clock jump (e.g. after suspend) goes
/// unnoticed, since the executor computes sleeps from the clock.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Wait after a failed run before the next try; it doubles up to [`MAX_RETRY`].
const RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two tries while failing (the database away).
const MAX_RETRY: Duration = Duration::from_secs(30);

/// What an executor acts on: each has a run (everything due now) and a next instant.
#[derive(Debug, Clone, Copy)]
pub enum Work {
    /// Smart-group schedule entries (`group_schedule`).
    Groups,
    /// Campaign starts and ends, and enrolments going past due.
    Training,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Groups => "smart-group schedule",
            Work::Training => "training schedule",
        }
    }

    fn wake(self, store: &Store) -> Arc<Wake> {
        match self {
            Work::Groups => store.group_wake().clone(),
            Work::Training => store.training_wake().clone(),
        }
    }

    async fn run(self, store: &Store) -> coachloop_store::Result<usize> {
        match self {
            Work::Groups => store.run_due_groups().await,
            Work::Training => store.run_due_training().await,
        }
    }

    async fn next(self, store: &Store) -> coachloop_store::Result<Option<i64>> {
        match self {
            Work::Groups => store.next_due_group().await,
            Work::Training => store.next_due_training().await,
        }
    }
}

/// Runs one executor until the task is aborted.
pub async fn run(store: Store, work: Work) {
    let wake = work.wake(&store);
    let name = work.name();
    let mut retry = Retry::new(name, RETRY, MAX_RETRY);
    loop {
        let notified = wake.notified();
        let next = match work.run(&store).await {
            Ok(handled) => {
                if handled > 0 {
                    info!(handled, "{name} entries run");
                }
                let next = work.next(&store).await;
                next.map_err(|e| (e, "reading when the next entry is due"))
            }
            Err(e) => Err((e, "running what is due")),
        };
        let next = match next {
            Ok(next) => next,
            Err((e, _)) if e.is_closed() => return,
            Err((e, doing)) => {
                let wait = retry.failed(doing, &e);
                // A commit's wake-up means the database is back: try again at once.
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = notified => {}
                }
                continue;
            }
        };
        retry.succeeded();
        wake.set_target(next);
        let sleep = match next {
            Some(at) => {
                let ms = (at - store.clock().now_ms()).max(0) as u64;
                Duration::from_millis(ms).min(MAX_SLEEP)
            }
            None => MAX_SLEEP,
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = notified => {}
        }
    }
}

/// Records the day's risk scores at start-up and then every hour on the hour (the last
/// record of a UTC day stands for that day), until aborted. While the database cannot be
/// reached it tries again sooner (with a growing wait), so an outage over the last hour
/// of a day does not lose that day's record.
pub async fn daily_risk(store: Store) {
    const HOUR_MS: i64 = 3_600_000;
    let mut retry = Retry::new("the daily risk record", RETRY, MAX_RETRY);
    loop {
        let again = match store.record_daily_risk().await {
            Ok(written) => {
                retry.succeeded();
                info!(written, "daily risk scores recorded");
                None
            }
            Err(e) if e.is_closed() => return,
            Err(e) => {
                let wait = retry.failed("recording daily risk scores", &e);
                e.is_unavailable().then_some(wait)
            }
        };
        let now = store.clock().now_ms();
        let next_hour = (now.div_euclid(HOUR_MS) + 1) * HOUR_MS;
        let until_next_hour = Duration::from_millis((next_hour - now) as u64);
        tokio::time::sleep(again.map_or(until_next_hour, |wait| wait.min(until_next_hour))).await;
    }
}
