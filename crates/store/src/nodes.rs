//! The nodes of an installation: each server process registers itself at start, beats
//! its heart every [`HEARTBEAT_INTERVAL`] and says when it stops, so an operator can see
//! which nodes serve (see `/api/cluster`). Also what the nodes tidy together: rows of
//! nodes long dead, and, on PostgreSQL, the old end of `fact_log`.
//!
//! Each statement here stands alone (no write transaction, so no wait for the lock that
//! orders changes of facts): a heartbeat must not queue behind a smart-group change.

use crate::{Backend, Result, Store};
use std::time::Duration;
use tracing::instrument;

/// How often a node beats its heart.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A node is live while its last heartbeat is at most this old (three intervals: one
/// late heartbeat, say while the database fails over, does not make it look dead).
pub const LIVE_WITHIN: Duration = Duration::from_secs(3 * HEARTBEAT_INTERVAL.as_secs());
/// The rows of nodes whose last heartbeat is older than this are deleted.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How much of `fact_log` is kept. A node whose cache is older than the log's first row
/// drops that account's cache, so trimming never makes a cache wrong, only colder.
pub const FACT_LOG_KEEP: Duration = Duration::from_secs(10 * 60);

/// The version of coachloop this build is.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A node as its row says.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Node {
    pub id: String,
    /// The coachloop version it runs.
    pub version: String,
    pub hostname: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// When it stopped gracefully; `None` while it runs (or after it died).
    pub stopped_at: Option<i64>,
    /// Heartbeat within [`LIVE_WITHIN`] and not stopped.
    #[sqlx(skip)]
    pub live: bool,
}

/// How many notice jobs a node is sending (claimed, their lease not yet over).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobsInFlight {
    pub node: String,
    pub jobs: i64,
}

fn ms(duration: Duration) -> i64 {
    duration.as_millis() as i64
}

impl Store {
    /// Registers this node ([`Store::node`]) as started now, with this build's version and
    /// the host's name. Registering again (after its row was pruned) starts it over.
    #[instrument(skip_all)]
    pub async fn register_node(&self) -> Result<()> {
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO nodes (id, version, hostname, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO UPDATE SET \
             version = excluded.version, hostname = excluded.hostname, \
             heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
        )
        .bind(self.node())
        .bind(VERSION)
        .bind(crate::hostname())
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Records that this node is alive now. A node whose row is gone (pruned after the
    /// process was suspended for a day, say) registers again.
    #[instrument(skip_all)]
    pub async fn heartbeat(&self) -> Result<()> {
        let beat = sqlx::query("UPDATE nodes SET heartbeat_at = $2 WHERE id = $1")
            .bind(self.node())
            .bind(self.now_ms())
            .execute(&self.write)
            .await?;
        if beat.rows_affected() == 0 {
            self.register_node().await?;
        }
        Ok(())
    }

    /// Records that this node stopped gracefully, and frees the leases it holds so
    /// another node may take their work at once instead of when they run out.
    #[instrument(skip_all)]
    pub async fn node_stopped(&self) -> Result<()> {
        sqlx::query("UPDATE nodes SET stopped_at = $2 WHERE id = $1")
            .bind(self.node())
            .bind(self.now_ms())
            .execute(&self.write)
            .await?;
        sqlx::query("UPDATE leases SET holder = NULL, until = 0 WHERE holder = $1")
            .bind(self.node())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Every node with a row, oldest first, each marked live or not.
    #[instrument(skip_all)]
    pub async fn nodes(&self) -> Result<Vec<Node>> {
        let mut nodes: Vec<Node> = sqlx::query_as(
            "SELECT id, version, hostname, started_at, heartbeat_at, stopped_at FROM nodes \
             ORDER BY started_at, id",
        )
        .fetch_all(&self.read)
        .await?;
        let since = self.now_ms() - ms(LIVE_WITHIN);
        for node in &mut nodes {
            node.live = node.stopped_at.is_none() && node.heartbeat_at >= since;
        }
        Ok(nodes)
    }

    /// Deletes the rows of nodes whose last heartbeat is older than [`FORGET_AFTER`];
    /// returns how many.
    #[instrument(skip_all)]
    pub async fn prune_nodes(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1")
            .bind(self.now_ms() - ms(FORGET_AFTER))
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes the rows of `fact_log` older than [`FACT_LOG_KEEP`]; returns how many.
    /// SQLite keeps no such log (one node, nothing to check a cache against): 0.
    #[instrument(skip_all)]
    pub async fn trim_fact_log(&self) -> Result<u64> {
        if self.backend == Backend::Sqlite {
            return Ok(0);
        }
        let done = sqlx::query("DELETE FROM fact_log WHERE at < $1")
            .bind(self.now_ms() - ms(FACT_LOG_KEEP))
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// Notice jobs being sent, by node: pending, claimed, their lease (`run_at`) not over.
    #[instrument(skip_all)]
    pub async fn jobs_in_flight(&self) -> Result<Vec<JobsInFlight>> {
        Ok(sqlx::query_as(
            "SELECT claimed_by AS node, COUNT(*) AS jobs FROM jobs \
             WHERE status = 'pending' AND claimed_by IS NOT NULL AND run_at > $1 \
             GROUP BY claimed_by ORDER BY claimed_by",
        )
        .bind(self.now_ms())
        .fetch_all(&self.read)
        .await?)
    }
}
