//! Per-token request quotas (off unless a token has them): a rate a second, as a token
//! bucket that allows a burst of one second's worth, and a count per UTC day of the
//! server's clock. Kept in memory: a restart forgives the day's count.

use crate::error::ApiError;
use coachloop_core::ids::TokenId;
use coachloop_store::tokens::RateLimits;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

const DAY_MS: i64 = 86_400_000;

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<TokenId, Bucket>>,
}

struct Bucket {
    /// Requests the second-rate allows right now (up to one second's worth).
    allowance: f64,
    refilled: Instant,
    /// The UTC day (days since the epoch) `today` counts.
    day: i64,
    today: u32,
}

impl RateLimiter {
    /// Counts a request of `token` at `now_ms` (the server's clock), or refuses it with
    /// 429 and how long to wait.
    pub fn admit(&self, token: TokenId, limits: RateLimits, now_ms: i64) -> Result<(), ApiError> {
        if limits.is_none() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let day = now_ms.div_euclid(DAY_MS);
        let bucket = buckets.entry(token).or_insert_with(|| Bucket {
            allowance: f64::from(limits.per_second.unwrap_or(0)),
            refilled: Instant::now(),
            day,
            today: 0,
        });
        if bucket.day != day {
            bucket.day = day;
            bucket.today = 0;
        }
        if let Some(per_day) = limits.per_day
            && bucket.today >= per_day
        {
            let wait_ms = (day + 1) * DAY_MS - now_ms;
            return Err(ApiError::rate_limited(
                (wait_ms as u64).div_ceil(1000),
                format!(
                    "this token may make {per_day} requests a day and has made them; \
                     the count starts again at midnight UTC"
                ),
            ));
        }
        if let Some(per_second) = limits.per_second {
            let rate = f64::from(per_second);
            let now = Instant::now();
            let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
            bucket.allowance = (bucket.allowance + elapsed * rate).min(rate);
            bucket.refilled = now;
            if bucket.allowance < 1.0 {
                let wait = (1.0 - bucket.allowance) / rate;
                return Err(ApiError::rate_limited(
                    wait.ceil() as u64,
                    format!("this token may make {per_second} requests a second; slow down"),
                ));
            }
            bucket.allowance -= 1.0;
        }
        bucket.today += 1;
        Ok(())
    }
}
