//! Several nodes on one database: heartbeats and liveness, leases of timed work taken
//! over from a node that died, the trimming of `fact_log`, and a database migrated by a
//! newer coachloop refused. Two `Store`s on one database are two nodes.

use chrono::{TimeZone, Utc};
use coachloop_core::clock::{Clock, ManualClock};
use coachloop_store::leases::Claim;
use coachloop_store::nodes::VERSION;
use coachloop_store::testing::TestDatabase;
use coachloop_store::{Backend, Store, StoreError};
use sqlx::{AnyConnection, Connection};
use std::sync::Arc;
use std::time::Duration;

const SECOND: i64 = 1_000;
const HOUR: i64 = 3_600 * SECOND;
const LEASE: Duration = Duration::from_secs(60);

/// Two nodes on one database with one manual clock, starting at 2026-11-01T12:00Z.
struct TwoNodes {
    database: TestDatabase,
    clock: Arc<ManualClock>,
    a: Store,
    b: Store,
}

impl TwoNodes {
    async fn start() -> Self {
        let database = TestDatabase::new().await;
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let a = Store::open(database.url(), clock.clone()).await.unwrap();
        let b = Store::open(database.url(), clock.clone()).await.unwrap();
        assert_ne!(a.node(), b.node(), "each store is a node of its own");
        Self {
            database,
            clock,
            a,
            b,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn advance_ms(&self, ms: i64) {
        self.clock.advance(chrono::Duration::milliseconds(ms));
    }

    /// Each node's id with whether it is live, as `a` reads them.
    async fn liveness(&self) -> Vec<(String, bool)> {
        let nodes = self.a.nodes().await.unwrap();
        nodes.into_iter().map(|n| (n.id, n.live)).collect()
    }

    async fn sql(&self) -> AnyConnection {
        AnyConnection::connect(self.database.url().expose())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn nodes_are_live_while_they_beat_and_forgotten_a_day_after_they_stop() {
    let nodes = TwoNodes::start().await;
    let (a, b) = (nodes.a.node().to_owned(), nodes.b.node().to_owned());
    let started = nodes.now();
    nodes.a.register_node().await.unwrap();
    nodes.advance_ms(SECOND);
    nodes.b.register_node().await.unwrap();

    let listed = nodes.a.nodes().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].id, a, "oldest first");
    assert_eq!(listed[0].version, VERSION);
    assert!(!listed[0].hostname.is_empty());
    assert_eq!(listed[0].started_at, started);
    assert_eq!(listed[1].started_at, started + SECOND);
    assert!(listed.iter().all(|n| n.live && n.stopped_at.is_none()));

    // Three missed heartbeats (15 s) and a node is no longer live.
    nodes.advance_ms(14 * SECOND);
    nodes.a.heartbeat().await.unwrap();
    assert_eq!(
        nodes.liveness().await,
        [(a.clone(), true), (b.clone(), true)]
    );
    nodes.advance_ms(2 * SECOND);
    assert_eq!(
        nodes.liveness().await,
        [(a.clone(), true), (b.clone(), false)]
    );
    // It comes back with its next heartbeat.
    nodes.b.heartbeat().await.unwrap();
    assert_eq!(
        nodes.liveness().await,
        [(a.clone(), true), (b.clone(), true)]
    );

    // A node that stops says so and is no longer live at once.
    nodes.b.node_stopped().await.unwrap();
    let listed = nodes.a.nodes().await.unwrap();
    assert_eq!(listed[1].stopped_at, Some(nodes.now()));
    assert!(!listed[1].live);

    // A day later its row is pruned; a node that beats on is kept.
    nodes.advance_ms(24 * HOUR);
    nodes.a.heartbeat().await.unwrap();
    assert_eq!(nodes.a.prune_nodes().await.unwrap(), 0, "not a day yet");
    nodes.advance_ms(SECOND);
    nodes.a.heartbeat().await.unwrap();
    assert_eq!(nodes.a.prune_nodes().await.unwrap(), 1);
    assert_eq!(nodes.liveness().await, [(a.clone(), true)]);

    // A node whose row was pruned (suspended for a day, say) registers again when it
    // next beats.
    nodes.advance_ms(25 * HOUR);
    assert_eq!(nodes.b.prune_nodes().await.unwrap(), 1);
    assert!(nodes.a.nodes().await.unwrap().is_empty());
    nodes.a.heartbeat().await.unwrap();
    let listed = nodes.a.nodes().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id.as_str(), listed[0].live), (a.as_str(), true));
    assert_eq!(listed[0].started_at, nodes.now());
}

#[tokio::test]
async fn a_lease_is_held_by_one_node_and_taken_over_when_its_holder_dies() {
    let nodes = TwoNodes::start().await;
    let (a, b) = (nodes.a.node().to_owned(), nodes.b.node().to_owned());
    let hour_end = nodes.now() + HOUR;

    // A claims the hour's work; B finds it held.
    let claimed = nodes.a.claim_lease("work", hour_end, LEASE).await.unwrap();
    let until = nodes.now() + 60 * SECOND;
    assert_eq!(claimed, Claim::Claimed { until });
    assert_eq!(
        nodes.b.claim_lease("work", hour_end, LEASE).await.unwrap(),
        Claim::Held {
            holder: a.clone(),
            until
        }
    );
    // A holder may claim again (after a failure it did not release), and renew.
    nodes.advance_ms(30 * SECOND);
    assert!(matches!(
        nodes.a.claim_lease("work", hour_end, LEASE).await.unwrap(),
        Claim::Claimed { .. }
    ));
    assert!(nodes.a.renew_lease("work", LEASE).await.unwrap());
    assert!(!nodes.b.renew_lease("work", LEASE).await.unwrap());
    assert!(!nodes.b.lease_done("work", hour_end).await.unwrap());

    // Done: nobody claims the same hour again, and the lease is free.
    assert!(nodes.a.lease_done("work", hour_end).await.unwrap());
    for node in [&nodes.a, &nodes.b] {
        assert_eq!(
            node.claim_lease("work", hour_end, LEASE).await.unwrap(),
            Claim::Done
        );
    }
    let lease = nodes.b.lease("work").await.unwrap().unwrap();
    assert_eq!(
        (lease.holder, lease.until, lease.done_through),
        (None, 0, hour_end)
    );

    // The next hour B claims it and dies holding it: A waits for the lease to end...
    nodes.advance_ms(HOUR);
    let next_end = hour_end + HOUR;
    let Claim::Claimed { until } = nodes.b.claim_lease("work", next_end, LEASE).await.unwrap()
    else {
        panic!("B claims the next hour");
    };
    nodes.advance_ms(60 * SECOND);
    assert_eq!(
        nodes.a.claim_lease("work", next_end, LEASE).await.unwrap(),
        Claim::Held {
            holder: b.clone(),
            until
        },
        "held to the end of the lease"
    );
    // ...and then takes it over. B, should it wake, has lost it.
    nodes.advance_ms(1);
    assert!(matches!(
        nodes.a.claim_lease("work", next_end, LEASE).await.unwrap(),
        Claim::Claimed { .. }
    ));
    assert!(!nodes.b.renew_lease("work", LEASE).await.unwrap());
    assert!(!nodes.b.lease_done("work", next_end).await.unwrap());
    assert!(nodes.a.lease_done("work", next_end).await.unwrap());

    // A release frees a lease without marking its work done: B may try at once.
    let later = next_end + HOUR;
    assert!(matches!(
        nodes.a.claim_lease("work", later, LEASE).await.unwrap(),
        Claim::Claimed { .. }
    ));
    nodes.b.release_lease("work").await.unwrap(); // not B's: no effect
    assert!(matches!(
        nodes.b.claim_lease("work", later, LEASE).await.unwrap(),
        Claim::Held { .. }
    ));
    nodes.a.release_lease("work").await.unwrap();
    assert!(matches!(
        nodes.b.claim_lease("work", later, LEASE).await.unwrap(),
        Claim::Claimed { .. }
    ));

    // A node that stops frees what it holds.
    nodes.b.node_stopped().await.unwrap();
    let leases = nodes.a.leases().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(
        (&leases[0].name, &leases[0].holder, leases[0].done_through),
        (&"work".to_owned(), &None, next_end)
    );
}

/// `fact_log` keeps ten minutes (PostgreSQL; SQLite keeps no log and trims nothing).
#[tokio::test]
async fn the_fact_log_keeps_ten_minutes() {
    let nodes = TwoNodes::start().await;
    if nodes.a.backend() == Backend::Sqlite {
        assert_eq!(nodes.a.trim_fact_log().await.unwrap(), 0);
        return;
    }
    let mut sql = nodes.sql().await;
    let now = nodes.now();
    let minute = 60 * SECOND;
    for (version, at) in [
        (1, now - 11 * minute),
        (2, now - 10 * minute - 1),
        (3, now - 10 * minute),
        (4, now),
    ] {
        sqlx::query(
            "INSERT INTO fact_log (account_id, version, users, at) VALUES (1, $1, '{1}', $2)",
        )
        .bind(version as i64)
        .bind(at)
        .execute(&mut sql)
        .await
        .unwrap();
    }
    assert_eq!(nodes.b.trim_fact_log().await.unwrap(), 2);
    let left: Vec<i64> = sqlx::query_scalar("SELECT version FROM fact_log ORDER BY version")
        .fetch_all(&mut sql)
        .await
        .unwrap();
    assert_eq!(left, [3, 4]);
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_coachloop_is_refused() {
    let database = TestDatabase::new().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    Store::open(database.url(), clock.clone())
        .await
        .unwrap()
        .close()
        .await;
    let mut sql = AnyConnection::connect(database.url().expose())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from the future', $2, $3, 0)",
    )
    .bind(99_999_i64)
    .bind(true)
    .bind(vec![0_u8; 48])
    .execute(&mut sql)
    .await
    .unwrap();
    sql.close().await.unwrap();

    let refused = Store::open(database.url(), clock).await.err();
    let Some(error @ StoreError::NewerDatabase { migration, .. }) = refused else {
        panic!("opened, or failed otherwise: {refused:?}");
    };
    assert_eq!(migration, 99_999);
    assert_eq!(
        error.to_string(),
        format!(
            "the database was migrated by a newer coachloop (migration 99999 is not known to \
             version {VERSION}); run that version or newer"
        )
    );
}
