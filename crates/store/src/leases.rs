//! Timed work that one node of the installation does at a time (the hourly risk record):
//! a named row of `leases` says who holds the work (`holder`, a node id, see
//! [`Store::node`]), until when (`until`), and through when it is done (`done_through`,
//! the end of the last period done). A node claims the work while it is due and the lease
//! is free or its own, holds it while it works (renewing), and on success records the
//! period done and frees the lease. A node that dies holding it loses it when `until`
//! passes; another then takes the work over.
//!
//! Each step is one statement that only succeeds if its condition holds when it runs,
//! so two nodes never both hold a lease. `until` is read against each node's clock:
//! the nodes' clocks must agree to well within a lease (NTP does).
//!
//! On SQLite (one node) the same holds, trivially.

use crate::{Result, Store};
use std::time::Duration;
use tracing::instrument;

/// A lease's row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Lease {
    pub name: String,
    /// The node holding it; `None` when free.
    pub holder: Option<String>,
    /// When the holder's hold ends (epoch ms; 0 when free).
    pub until: i64,
    /// The end of the last period done (epoch ms; 0 before the first).
    pub done_through: i64,
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node holds the lease until then.
    Claimed { until: i64 },
    /// The work is done through what was asked already.
    Done,
    /// Another node holds the lease until then (an instant already past means the lease
    /// changed hands while the claim was made: claim again).
    Held { holder: String, until: i64 },
}

fn ms(duration: Duration) -> i64 {
    duration.as_millis() as i64
}

impl Store {
    /// Claims the lease `name` for `hold` if its work is due (`done_through` before
    /// `due_through`) and the lease is free, ran out, or is this node's already.
    #[instrument(skip_all, fields(lease = name))]
    pub async fn claim_lease(&self, name: &str, due_through: i64, hold: Duration) -> Result<Claim> {
        sqlx::query("INSERT INTO leases (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&self.write)
            .await?;
        let now = self.now_ms();
        let until = now + ms(hold);
        let claimed: Option<i64> = sqlx::query_scalar(
            "UPDATE leases SET holder = $2, until = $3 \
             WHERE name = $1 AND done_through < $4 AND (until < $5 OR holder = $2) \
             RETURNING until",
        )
        .bind(name)
        .bind(self.node())
        .bind(until)
        .bind(due_through)
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        if let Some(until) = claimed {
            return Ok(Claim::Claimed { until });
        }
        let lease = self.lease(name).await?;
        Ok(match lease {
            Some(lease) if lease.done_through >= due_through => Claim::Done,
            Some(Lease {
                holder: Some(holder),
                until,
                ..
            }) => Claim::Held { holder, until },
            // Freed between the two statements.
            _ => Claim::Held {
                holder: String::new(),
                until: now,
            },
        })
    }

    /// Holds the lease `name` for another `hold` from now; false if this node no longer
    /// holds it (it ran out and another node took it).
    #[instrument(skip_all, fields(lease = name))]
    pub async fn renew_lease(&self, name: &str, hold: Duration) -> Result<bool> {
        let done = sqlx::query("UPDATE leases SET until = $3 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(self.node())
            .bind(self.now_ms() + ms(hold))
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Frees the lease `name` without marking anything done (after the work failed), so
    /// any node may try it again at once. Nothing happens unless this node holds it.
    #[instrument(skip_all, fields(lease = name))]
    pub async fn release_lease(&self, name: &str) -> Result<()> {
        sqlx::query("UPDATE leases SET holder = NULL, until = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(self.node())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Records the work of lease `name` done through `through` and frees the lease;
    /// false if this node no longer held it (another node took it over and does the
    /// work again, so the work must bear being done twice).
    #[instrument(skip_all, fields(lease = name))]
    pub async fn lease_done(&self, name: &str, through: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE leases SET holder = NULL, until = 0, \
             done_through = CASE WHEN done_through > $3 THEN done_through ELSE $3 END \
             WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(self.node())
        .bind(through)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The lease `name`, if it was ever claimed.
    #[instrument(skip_all, fields(lease = name))]
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        Ok(
            sqlx::query_as("SELECT name, holder, until, done_through FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.read)
                .await?,
        )
    }

    /// Every lease, by name.
    #[instrument(skip_all)]
    pub async fn leases(&self) -> Result<Vec<Lease>> {
        Ok(
            sqlx::query_as("SELECT name, holder, until, done_through FROM leases ORDER BY name")
                .fetch_all(&self.read)
                .await?,
        )
    }
}
