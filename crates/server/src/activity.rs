//! A sender's activity as `/api/tokens` shows it (the integration's status): when its
//! last event was stored and its last refused request. Written off the request path, at
//! most once a second per token, so a sender at 50,000 events/s costs one small write a
//! second, and the last value of a burst always lands.

use coachloop_core::ids::TokenId;
use coachloop_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The least time between two writes of one token's activity.
const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Activity {
    slots: Mutex<HashMap<TokenId, Slot>>,
}

#[derive(Default)]
struct Slot {
    event_at: Option<i64>,
    error: Option<(i64, String)>,
    /// A write is scheduled; it takes whatever is pending when it runs.
    scheduled: bool,
    last_write: Option<Instant>,
}

impl Activity {
    /// Notes that `token` had an event stored at `event_at` and/or a request refused
    /// (`error`: when, and why).
    pub fn record(
        self: &Arc<Self>,
        store: &Store,
        token: TokenId,
        event_at: Option<i64>,
        error: Option<(i64, String)>,
    ) {
        let delay = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = slots.entry(token).or_default();
            slot.event_at = slot.event_at.max(event_at);
            if error.is_some() {
                slot.error = error;
            }
            if slot.scheduled {
                return;
            }
            slot.scheduled = true;
            slot.last_write
                .map_or(Duration::ZERO, |at| INTERVAL.saturating_sub(at.elapsed()))
        };
        let (this, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let (event_at, error) = {
                let mut slots = this.slots.lock().unwrap_or_else(|e| e.into_inner());
                let slot = slots.entry(token).or_default();
                slot.scheduled = false;
                slot.last_write = Some(Instant::now());
                (slot.event_at.take(), slot.error.take())
            };
            let error = error.as_ref().map(|(at, why)| (*at, why.as_str()));
            match store.record_token_activity(token, event_at, error).await {
                // The server is shutting down; what was pending is only a status.
                Err(e) if !e.is_closed() => {
                    tracing::warn!(error = %e, "could not record a token's activity");
                }
                _ => {}
            }
        });
    }
}
