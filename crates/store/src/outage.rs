//! Work that must go on while the database is away: the event writer and the background
//! executors retry with a growing wait, and say so once per outage rather than once per
//! attempt (an outage of an hour would otherwise log thousands of lines).

use crate::StoreError;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// The retry state of one long-running loop.
#[derive(Debug)]
pub struct Retry {
    /// What retries, for the log (e.g. `the event writer`).
    what: &'static str,
    first: Duration,
    max: Duration,
    /// The wait after the next failure.
    wait: Duration,
    /// When the database was first found unreachable, during an outage.
    since: Option<Instant>,
}

impl Retry {
    /// Waits start at `first` and double up to `max`.
    pub fn new(what: &'static str, first: Duration, max: Duration) -> Self {
        Self {
            what,
            first,
            max,
            wait: first,
            since: None,
        }
    }

    /// Takes note of a failure of `doing` and returns how long to wait before trying
    /// again. An unreachable database is logged when the outage begins, later failures
    /// of the same outage only at debug; any other error is logged every time.
    pub fn failed(&mut self, doing: &str, error: &StoreError) -> Duration {
        let wait = self.wait;
        self.wait = (self.wait * 2).min(self.max);
        if !error.is_unavailable() {
            warn!(%error, "{}: {doing} failed; trying again in {wait:?}", self.what);
        } else if self.since.is_none() {
            self.since = Some(Instant::now());
            warn!(
                %error,
                "{}: the database cannot be reached ({doing}); retrying until it is back",
                self.what
            );
        } else {
            debug!(%error, "{}: the database still cannot be reached", self.what);
        }
        wait
    }

    /// Takes note of a success: ends an outage (logging how long it lasted) and starts
    /// the waits over.
    pub fn succeeded(&mut self) {
        self.wait = self.first;
        if let Some(since) = self.since.take() {
            info!(
                "{}: the database answers again, after {:.1} s",
                self.what,
                since.elapsed().as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_success() {
        let mut retry = Retry::new("test", Duration::from_millis(100), Duration::from_secs(1));
        let gone = StoreError::Unavailable("connection refused".into());
        let waits: Vec<Duration> = (0..6).map(|_| retry.failed("reading", &gone)).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        assert!(retry.since.is_some(), "an outage began");
        retry.succeeded();
        assert!(retry.since.is_none(), "the outage ended");
        assert_eq!(retry.failed("reading", &gone), Duration::from_millis(100));
    }

    #[test]
    fn other_errors_wait_too_but_are_no_outage() {
        let mut retry = Retry::new("test", Duration::from_millis(100), Duration::from_secs(1));
        let corrupt = StoreError::Corrupt("row 1".into());
        assert_eq!(
            retry.failed("reading", &corrupt),
            Duration::from_millis(100)
        );
        assert_eq!(
            retry.failed("reading", &corrupt),
            Duration::from_millis(200)
        );
        assert!(retry.since.is_none());
    }
}
