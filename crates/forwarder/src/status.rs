//! What the forwarder has done, as `coachloop forward status` prints it and the local
//! `GET /status` answers it: *Pending* until the first delivery, then the last one.

use crate::outbox::{Dead, Outbox};
use serde::Serialize;
use std::fmt;

/// The status of one state directory.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `Pending` until an event is delivered, then `Active`.
    pub status: &'static str,
    pub activated_at: String,
    /// Records dated before this are not sent (the activation, or `--backfill-since`).
    pub sending_since: String,
    pub last_delivery_at: Option<String>,
    pub delivered: i64,
    /// Of those delivered, events naming a device's user instead of an email address.
    pub device_users: i64,
    pub queued: i64,
    pub dead: i64,
    /// Records of log types the mapping does not send.
    pub ignored: i64,
    pub before_activation: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

impl Status {
    pub async fn of(outbox: &Outbox) -> anyhow::Result<Self> {
        let p = outbox.progress().await?;
        let (queued, dead) = outbox.counts().await?;
        Ok(Self {
            status: if p.last_delivery_at.is_some() {
                "Active"
            } else {
                "Pending"
            },
            activated_at: time(p.activated_at),
            sending_since: time(p.send_since),
            last_delivery_at: p.last_delivery_at.map(time),
            delivered: p.delivered,
            device_users: p.device_users,
            queued,
            dead,
            ignored: p.ignored,
            before_activation: p.before_activation,
            last_error: p.last_error,
            last_error_at: p.last_error_at.map(time),
        })
    }
}

/// RFC 3339, UTC, to the millisecond.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.last_delivery_at {
            None => writeln!(f, "Status: Pending (no event delivered yet)")?,
            Some(at) => writeln!(f, "Status: Active, last delivery {at}")?,
        }
        writeln!(
            f,
            "Activated {}; sending records dated from {}",
            self.activated_at, self.sending_since
        )?;
        writeln!(
            f,
            "Delivered {} ({} naming a device user, not an email) · queued {} · dead {}",
            self.delivered, self.device_users, self.queued, self.dead
        )?;
        writeln!(
            f,
            "Not sent: {} of log types the mapping does not send, {} dated before activation",
            self.ignored, self.before_activation
        )?;
        if let (Some(error), Some(at)) = (&self.last_error, &self.last_error_at) {
            let since = match &self.last_delivery_at {
                Some(delivery) if delivery > at => " (deliveries succeeded since)",
                _ => "",
            };
            writeln!(f, "Last error {at}{since}: {error}")?;
        }
        Ok(())
    }
}

/// The latest dead letters, for the text status.
pub fn dead_letters(dead: &[Dead]) -> String {
    let mut text = String::new();
    if !dead.is_empty() {
        text.push_str("Latest dead letters (not retried; fix and resend them yourself):\n");
    }
    for d in dead {
        let record: String = d.record.chars().take(120).collect();
        text.push_str(&format!("  {}  {}\n    {record}\n", time(d.at), d.reason));
    }
    text
}
