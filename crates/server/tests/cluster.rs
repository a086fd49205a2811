//! Several nodes on one database: `/api/cluster`, the nodes' gauges on `/metrics`, the
//! hourly risk record done by one node, and a node that stops saying so. A second node
//! is a second `Store` opened on the test's database.

mod common;

use coachloop_core::clock::Clock;
use coachloop_server::schedule::{DAILY_RISK, LEASE, Turn, daily_risk_turn};
use coachloop_store::Store;
use coachloop_store::testing::TestDatabase;
use common::{TestApp, start_time};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection};
use std::sync::Arc;
use std::time::{Duration, Instant};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const SECOND: i64 = 1_000;

/// Another node of the app's installation, registered.
async fn second_node(app: &TestApp) -> Store {
    let node = Store::open(&app.database_url(), app.clock.clone())
        .await
        .unwrap();
    node.register_node().await.unwrap();
    node
}

/// The entry of `nodes` with this id.
fn node<'a>(cluster: &'a Value, id: &str) -> &'a Value {
    cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {cluster}"))
}

/// Asks until `check` holds (up to 10 s): for what the background tasks do.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_cluster_shows_its_nodes_the_hourly_records_lease_and_jobs_in_flight() {
    let app = TestApp::spawn().await;
    let other = second_node(&app).await;
    let now = app.clock.now_ms();

    // Jobs being sent by two nodes (as their claims leave them: `run_at` moved to the
    // end of the lease), and jobs that are not in flight.
    let mut sql = AnyConnection::connect(app.database_url().expose())
        .await
        .unwrap();
    let jobs = [
        ("node-x", now + 60 * SECOND, "pending"),
        ("node-x", now + 30 * SECOND, "pending"),
        ("node-y", now + 60 * SECOND, "pending"),
        // Its lease is over: the node died, another will send it.
        ("node-y", now - SECOND, "pending"),
        ("node-x", now + 60 * SECOND, "done"),
        ("", now + 60 * SECOND, "pending"),
    ];
    for (n, (claimed_by, run_at, status)) in jobs.into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO jobs (account_id, kind, dedupe, payload, run_at, status, created_at, \
             claimed_by) VALUES ($1, 'test', $2, '{}', $3, $4, $5, NULLIF($6, ''))",
        )
        .bind(app.account.0)
        .bind(format!("cluster-test-{n}"))
        .bind(run_at)
        .bind(status)
        .bind(now)
        .bind(claimed_by)
        .execute(&mut sql)
        .await
        .unwrap();
    }

    // The hourly risk record was claimed, done and freed by the app's node at start-up.
    let cluster = eventually("the first risk record", async || {
        let cluster = app.cluster().await;
        (cluster["leases"][0]["done_through"].is_string()).then_some(cluster)
    })
    .await;
    assert_eq!(
        cluster["leases"],
        json!([{"name": "daily_risk", "holder": null, "until": null,
            "done_through": "2026-11-01T13:00:00.000Z"}])
    );
    assert_eq!(cluster["nodes"].as_array().unwrap().len(), 2, "{cluster}");
    assert_eq!(
        node(&cluster, app.store.node()),
        &json!({"id": app.store.node(), "version": VERSION,
            "hostname": node(&cluster, app.store.node())["hostname"],
            "started_at": "2026-11-01T12:00:00.000Z",
            "heartbeat_at": "2026-11-01T12:00:00.000Z",
            "live": true, "this_node": true})
    );
    let hostname = node(&cluster, app.store.node())["hostname"]
        .as_str()
        .unwrap();
    assert!(!hostname.is_empty() && app.store.node().starts_with(hostname));
    let second = node(&cluster, other.node());
    assert_eq!(
        (&second["live"], &second["this_node"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(
        cluster["jobs_in_flight"],
        json!([{"node": "node-x", "jobs": 2}, {"node": "node-y", "jobs": 1}])
    );

    // Twenty seconds without a heartbeat: no longer live (the app's node beats every 5 s
    // of real time, so it may or may not have beaten by the moved clock).
    app.clock.advance(chrono::Duration::seconds(20));
    other.heartbeat().await.unwrap();
    let cluster = app.cluster().await;
    assert_eq!(node(&cluster, other.node())["live"], true);
    assert_eq!(
        node(&cluster, other.node())["heartbeat_at"],
        "2026-11-01T12:00:20.000Z"
    );
    other.node_stopped().await.unwrap();
    assert_eq!(node(&app.cluster().await, other.node())["live"], false);
}

#[tokio::test]
async fn the_cluster_is_for_admins() {
    let app = TestApp::spawn().await;
    let anonymous = app
        .send(app.request(Method::GET, "/api/cluster", None))
        .await;
    anonymous.expect_error(401, "unauthorized");
    let sender = app.token("sender", "events:write").await;
    app.get(&sender, "/api/cluster")
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn metrics_count_the_live_nodes_and_name_this_one() {
    let app = TestApp::spawn().await;
    let scrape = async || {
        let metrics = app.send(app.request(Method::GET, "/metrics", None)).await;
        assert_eq!(metrics.status, 200);
        metrics.text
    };
    let gauge = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .to_owned()
    };
    let text = scrape().await;
    assert_eq!(
        gauge(&text, "coachloop_cluster_nodes_live"),
        "coachloop_cluster_nodes_live 1"
    );
    assert_eq!(
        gauge(&text, "coachloop_node_info"),
        format!(
            "coachloop_node_info{{node=\"{}\",version=\"{VERSION}\"}} 1",
            app.store.node()
        )
    );

    let other = second_node(&app).await;
    let text = scrape().await;
    assert_eq!(
        gauge(&text, "coachloop_cluster_nodes_live"),
        "coachloop_cluster_nodes_live 2"
    );
    other.node_stopped().await.unwrap();
    let text = scrape().await;
    assert_eq!(
        gauge(&text, "coachloop_cluster_nodes_live"),
        "coachloop_cluster_nodes_live 1"
    );
}

/// Each hour's risk record is made by one node; a node that dies holding the work loses
/// it when its lease runs out, and another node makes the record.
#[tokio::test]
async fn one_node_makes_each_hours_risk_record_and_another_takes_over_from_a_dead_one() {
    let database = TestDatabase::new().await;
    let clock = Arc::new(coachloop_core::clock::ManualClock::new(start_time()));
    let a = Store::open(database.url(), clock.clone()).await.unwrap();
    let b = Store::open(database.url(), clock.clone()).await.unwrap();
    let advance = |seconds: i64| clock.advance(chrono::Duration::seconds(seconds));
    let recorded = |turn: Turn| matches!(turn, Turn::Recorded(written) if written > 0);

    // 12:00: A records; B, starting later in the hour, does not.
    assert!(recorded(daily_risk_turn(&a).await.unwrap()));
    advance(30 * 60);
    assert_eq!(daily_risk_turn(&b).await.unwrap(), Turn::Done);
    // 13:00: whichever comes first records.
    advance(30 * 60);
    assert!(recorded(daily_risk_turn(&b).await.unwrap()));
    assert_eq!(daily_risk_turn(&a).await.unwrap(), Turn::Done);

    // 14:00: A claims the work and dies. B waits for A's lease to end, then records.
    advance(3600);
    let hour_end = clock.now_ms() + 3_600 * SECOND;
    a.claim_lease(DAILY_RISK, hour_end, LEASE).await.unwrap();
    let until = clock.now_ms() + LEASE.as_millis() as i64;
    assert_eq!(
        daily_risk_turn(&b).await.unwrap(),
        Turn::Held {
            holder: a.node().to_owned(),
            until
        }
    );
    advance(LEASE.as_secs() as i64 + 1);
    assert!(recorded(daily_risk_turn(&b).await.unwrap()));
    assert_eq!(daily_risk_turn(&a).await.unwrap(), Turn::Done);
    let lease = a.lease(DAILY_RISK).await.unwrap().unwrap();
    assert_eq!((lease.holder, lease.done_through), (None, hour_end));
}

#[tokio::test]
async fn a_node_that_shuts_down_says_so() {
    let mut app = TestApp::spawn().await;
    let other = second_node(&app).await;
    let id = app.store.node().to_owned();
    app.shut_down();
    let stopped = eventually("the node's stop recorded", async || {
        let nodes = other.nodes().await.unwrap();
        let node = nodes.into_iter().find(|n| n.id == id)?;
        node.stopped_at
    })
    .await;
    assert_eq!(stopped, app.clock.now_ms());
    let nodes = other.nodes().await.unwrap();
    assert!(nodes.iter().all(|n| n.live == (n.id == other.node())));
}
