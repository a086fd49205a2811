//! Wake-ups across nodes (PostgreSQL): what a commit on one node gives the others' group
//! and training executors and notice runners to do, and revocations of tokens, go out
//! by `NOTIFY` on one channel and come in by `LISTEN`. A node's own wake-ups stay in
//! the process (see `wakes`); these carry them to the others.
//!
//! Sending never holds up a commit: signals queue for a task that sends what has
//! accumulated as one notification. Receiving, a node that lost its listening connection
//! wakes everything once it listens again, since it may have missed signals meanwhile.

use crate::DatabaseUrl;
use crate::outage::Retry;
use crate::wakes::Wakes;
use sqlx::AnyPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// The notification channel of an installation's nodes.
const CHANNEL: &str = "coachloop";

/// Something another node should know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// A smart-group schedule entry is due at this instant.
    GroupsDue(i64),
    /// A smart group changed: the group executor looks at its schedule again.
    Groups,
    /// A training deadline is due at this instant.
    TrainingDue(i64),
    /// Campaigns changed: the training executor looks again.
    Training,
    /// Notice jobs were queued.
    Jobs,
    /// A token was revoked: cached lookups of tokens are stale.
    Revoked,
    /// A remote sync is due at this instant.
    SyncDue(i64),
}

impl Signal {
    fn encode(self) -> String {
        match self {
            Self::GroupsDue(at) => format!("g{at}"),
            Self::Groups => "G".into(),
            Self::TrainingDue(at) => format!("t{at}"),
            Self::Training => "T".into(),
            Self::Jobs => "j".into(),
            Self::Revoked => "r".into(),
            Self::SyncDue(at) => format!("s{at}"),
        }
    }

    fn decode(word: &str) -> Option<Self> {
        let at = || word.get(1..)?.parse().ok();
        match word.chars().next()? {
            'g' => at().map(Self::GroupsDue),
            'G' => Some(Self::Groups),
            't' => at().map(Self::TrainingDue),
            'T' => Some(Self::Training),
            'j' => Some(Self::Jobs),
            'r' => Some(Self::Revoked),
            's' => at().map(Self::SyncDue),
            _ => None,
        }
    }
}

/// Starts sending this node's signals (`queued`, from `wakes`) and acting on the others'
/// with `wakes`; returns the two tasks (aborted when the store closes).
pub(crate) fn start(
    url: &DatabaseUrl,
    pool: AnyPool,
    node: Arc<str>,
    wakes: &Wakes,
    queued: mpsc::UnboundedReceiver<Signal>,
) -> [AbortHandle; 2] {
    let send = tokio::spawn(send(pool, node.clone(), queued));
    let listen = tokio::spawn(listen(url.clone(), node, wakes.clone()));
    [send.abort_handle(), listen.abort_handle()]
}

/// Sends what has queued, as one notification each time: the earliest of each instant,
/// each other signal once.
async fn send(pool: AnyPool, node: Arc<str>, mut queued: mpsc::UnboundedReceiver<Signal>) {
    let mut retry = Retry::new(
        "cross-node wake-ups",
        Duration::from_millis(100),
        Duration::from_secs(5),
    );
    while let Some(first) = queued.recv().await {
        let mut signals = vec![first];
        while let Ok(more) = queued.try_recv() {
            signals.push(more);
        }
        let payload = payload(&node, &signals);
        loop {
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(&pool)
                .await;
            match sent {
                Ok(_) => {
                    retry.succeeded();
                    break;
                }
                Err(sqlx::Error::PoolClosed) => return,
                // Other nodes wake on their own timers meanwhile, and when they listen
                // again after an outage they look at everything.
                Err(e) => {
                    tokio::time::sleep(retry.failed("sending a wake-up", &e.into())).await;
                }
            }
        }
    }
}

/// `node` and the signals, the earliest instant of each kind only.
fn payload(node: &str, signals: &[Signal]) -> String {
    let mut kept: Vec<Signal> = Vec::new();
    for signal in signals {
        let merged = kept.iter_mut().any(|k| match (k, signal) {
            (Signal::GroupsDue(a), Signal::GroupsDue(b))
            | (Signal::TrainingDue(a), Signal::TrainingDue(b)) => {
                *a = (*a).min(*b);
                true
            }
            (k, signal) => k == signal,
        });
        if !merged {
            kept.push(*signal);
        }
    }
    let mut payload = node.to_owned();
    for signal in kept {
        payload.push(' ');
        payload.push_str(&signal.encode());
    }
    payload
}

/// Receives the other nodes' signals until aborted, listening again after a lost
/// connection.
async fn listen(url: DatabaseUrl, node: Arc<str>, wakes: Wakes) {
    let mut retry = Retry::new(
        "listening for other nodes' wake-ups",
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    loop {
        let listening = async {
            let mut listener = PgListener::connect(url.expose()).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listening.await {
            Ok(listener) => listener,
            Err(e) => {
                tokio::time::sleep(retry.failed("connecting", &e.into())).await;
                continue;
            }
        };
        retry.succeeded();
        wakes.everything_local();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let mut words = notification.payload().split(' ');
                    if words.next() == Some(&*node) {
                        continue;
                    }
                    for signal in words.filter_map(Signal::decode) {
                        wakes.apply(signal);
                    }
                }
                // The connection was lost and made again: signals may have been missed.
                Ok(None) => wakes.everything_local(),
                Err(e) => {
                    tokio::time::sleep(retry.failed("listening", &e.into())).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_go_as_one_payload_with_the_earliest_instants() {
        let signals = [
            Signal::GroupsDue(20),
            Signal::Jobs,
            Signal::GroupsDue(10),
            Signal::Jobs,
            Signal::TrainingDue(5),
            Signal::Revoked,
        ];
        let payload = payload("n1", &signals);
        assert_eq!(payload, "n1 g10 j t5 r");
        let decoded: Vec<Signal> = payload.split(' ').filter_map(Signal::decode).collect();
        assert_eq!(
            decoded,
            [
                Signal::GroupsDue(10),
                Signal::Jobs,
                Signal::TrainingDue(5),
                Signal::Revoked
            ]
        );
    }
}
