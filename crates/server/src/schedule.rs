//! Work done at its time: the smart-group executor acts on `group_schedule` entries at
//! their instant (a person leaving a group the moment an event leaves its window) — it
//! sleeps until the earliest entry or until a commit schedules something earlier, and
//! never polls; and the daily risk-score record.

use coachloop_store::Store;
use std::time::Duration;
use tracing::{info, warn};

/// Longest single sleep; only bounds how long a clock jump (e.g. after suspend) goes
/// unnoticed, since the executor computes sleeps from the clock.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Wait after a failed run before the next try.
const RETRY: Duration = Duration::from_secs(1);

/// Runs until the task is aborted.
pub async fn run(store: Store) {
    let wake = store.group_wake().clone();
    loop {
        let notified = wake.notified();
        match store.run_due_groups().await {
            Ok(0) => {}
            Ok(handled) => info!(handled, "smart-group schedule entries run"),
            Err(e) if e.is_closed() => return,
            Err(e) => {
                warn!(error = %e, "smart-group schedule run failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        }
        let next = match store.next_due_group().await {
            Ok(next) => next,
            Err(e) if e.is_closed() => return,
            Err(e) => {
                warn!(error = %e, "could not read the smart-group schedule");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
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
/// record of a UTC day stands for that day), until aborted.
pub async fn daily_risk(store: Store) {
    const HOUR_MS: i64 = 3_600_000;
    loop {
        match store.record_daily_risk().await {
            Ok(written) => info!(written, "daily risk scores recorded"),
            Err(e) if e.is_closed() => return,
            Err(e) => warn!(error = %e, "could not record daily risk scores"),
        }
        let now = store.clock().now_ms();
        let next_hour = (now.div_euclid(HOUR_MS) + 1) * HOUR_MS;
        tokio::time::sleep(Duration::from_millis((next_hour - now) as u64)).await;
    }
}
