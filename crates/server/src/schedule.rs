//! Work done at its time. Two executors: the smart-group one acts on `group_schedule`
//! entries at their instant (a person leaving a group the moment an event leaves its
//! window), the training one starts and ends campaigns and marks enrolments past due at
//! their due instant. Each sleeps until its earliest entry or until a commit schedules
//! something earlier, and never polls. Also the daily risk-score record, done by one node
//! of the installation each hour under a lease, and this node's heartbeat.
//!
//! A failure (the database away, say) does not end an executor: it tries again with a
//! growing wait, up to `MAX_RETRY`, logging an outage once (see `Retry`).

use coachloop_store::Store;
use coachloop_store::leases::Claim;
use coachloop_store::nodes::HEARTBEAT_INTERVAL;
use coachloop_store::outage::Retry;
use coachloop_store::wakes::Wake;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

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

/// The lease (see `coachloop_store::leases`) of the daily risk record: one node of the
/// installation records each hour's scores.
pub const DAILY_RISK: &str = "daily_risk";
/// How long a node holds a lease of timed work before another may take the work over;
/// the holder renews it every [`RENEW_EVERY`] while it works.
pub const LEASE: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(20);
const HOUR_MS: i64 = 3_600_000;

/// The end of the hour `now` is in.
fn hour_end(now: i64) -> i64 {
    (now.div_euclid(HOUR_MS) + 1) * HOUR_MS
}

/// What one try at the hour's daily risk record came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// This node recorded the scores (this many).
    Recorded(usize),
    /// A node recorded them this hour already.
    Done,
    /// Another node holds the work until then.
    Held { holder: String, until: i64 },
    /// This node's lease ran out while it worked and another node took the work over.
    Lost,
}

/// Records the scores of the current hour if no node did yet and none holds the work
/// (the lease [`DAILY_RISK`]); the record replaces the day's earlier one, so a record
/// made twice (by a node whose lease ran out, and the node that took over) is harmless.
pub async fn daily_risk_turn(store: &Store) -> coachloop_store::Result<Turn> {
    let through = hour_end(store.clock().now_ms());
    match store.claim_lease(DAILY_RISK, through, LEASE).await? {
        Claim::Done => return Ok(Turn::Done),
        Claim::Held { holder, until } => return Ok(Turn::Held { holder, until }),
        Claim::Claimed { .. } => {}
    }
    let written = match leased(store, DAILY_RISK, store.record_daily_risk()).await {
        Ok(Some(written)) => written,
        Ok(None) => return Ok(Turn::Lost),
        Err(e) => {
            // Let any node try again at once (this one too); if the database is away,
            // the lease runs out by itself.
            let _ = store.release_lease(DAILY_RISK).await;
            return Err(e);
        }
    };
    if store.lease_done(DAILY_RISK, through).await? {
        Ok(Turn::Recorded(written))
    } else {
        Ok(Turn::Lost)
    }
}

/// Runs `work` while holding the lease `name`, renewing it every [`RENEW_EVERY`]; `None`
/// (and `work` dropped) if another node took the lease over meanwhile.
async fn leased<T>(
    store: &Store,
    name: &str,
    work: impl Future<Output = coachloop_store::Result<T>>,
) -> coachloop_store::Result<Option<T>> {
    let mut work = std::pin::pin!(work);
    let mut renew =
        tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
    loop {
        tokio::select! {
            done = &mut work => return done.map(Some),
            _ = renew.tick() => match store.renew_lease(name, LEASE).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!(lease = name, "the lease ran out and another node took the work over");
                    return Ok(None);
                }
                // The work will likely fail too; if it does not, the lease is checked at
                // the end.
                Err(e) => warn!(lease = name, error = %e, "could not renew the lease"),
            },
        }
    }
}

/// Records the day's risk scores at start-up and then every hour on the hour (the last
/// record of a UTC day stands for that day), until aborted: one node of the installation
/// each hour (see [`daily_risk_turn`]); the others check again when the hour is over or
/// when the holder's lease runs out, should the holder die. While the database cannot be
/// reached it tries again sooner (with a growing wait), so an outage over the last hour
/// of a day does not lose that day's record.
pub async fn daily_risk(store: Store) {
    let mut retry = Retry::new("the daily risk record", RETRY, MAX_RETRY);
    loop {
        let turn = daily_risk_turn(&store).await;
        let now = store.clock().now_ms();
        let next_hour = hour_end(now);
        let until_next_hour = Duration::from_millis((next_hour - now) as u64);
        let again = match turn {
            Ok(turn) => {
                retry.succeeded();
                match turn {
                    Turn::Recorded(written) => {
                        info!(written, "daily risk scores recorded");
                        None
                    }
                    Turn::Done => None,
                    // Until the holder is done or its lease ends (a little after, so the
                    // lease has surely run out by this node's clock).
                    Turn::Held { until, .. } => {
                        Some(Duration::from_millis((until - now).max(0) as u64) + RETRY)
                    }
                    Turn::Lost => Some(LEASE),
                }
            }
            Err(e) if e.is_closed() => return,
            Err(e) => {
                let wait = retry.failed("recording daily risk scores", &e);
                e.is_unavailable().then_some(wait)
            }
        };
        tokio::time::sleep(again.map_or(until_next_hour, |wait| wait.min(until_next_hour))).await;
    }
}

/// Keeps this node's row in `nodes` (registered by the caller) current: a heartbeat every
/// [`HEARTBEAT_INTERVAL`], until aborted. Once a minute it also tidies what the nodes
/// share: rows of nodes dead for more than a day and, on PostgreSQL, `fact_log` rows
/// older than its ten minutes. While the database cannot be reached it keeps trying,
/// every interval at most.
pub async fn heartbeats(store: Store) {
    const TIDY_EVERY_MS: i64 = 60_000;
    let mut retry = Retry::new("the node heartbeat", RETRY, MAX_RETRY);
    let mut tidied_at = None;
    loop {
        let now = store.clock().now_ms();
        let tidy = tidied_at.is_none_or(|at| now - at >= TIDY_EVERY_MS);
        let beat = async {
            store.heartbeat().await?;
            if tidy {
                store.prune_nodes().await?;
                store.trim_fact_log().await?;
            }
            Ok::<_, coachloop_store::StoreError>(())
        };
        let wait = match beat.await {
            Ok(()) => {
                retry.succeeded();
                if tidy {
                    tidied_at = Some(now);
                }
                HEARTBEAT_INTERVAL
            }
            Err(e) if e.is_closed() => return,
            Err(e) => retry.failed("beating", &e).min(HEARTBEAT_INTERVAL),
        };
        tokio::time::sleep(wait).await;
    }
}
