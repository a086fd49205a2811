//! Two nodes of one installation (two stores, each with its own engine cache and event
//! writer, on one PostgreSQL database): what one changes, the other's smart groups take
//! into account at once, and timed work run by both is done once. SQLite serves one
//! node, so these run on PostgreSQL only.

mod group_support;

use coachloop_store::Backend;
use coachloop_store::testing::backend;
use group_support::{DAY, HOUR, Harness, changes, t0};
use serde_json::json;

/// `None` (and a note) when the run is on SQLite.
async fn installation() -> Option<(Harness, Harness)> {
    if backend() != Backend::Postgres {
        eprintln!("skipped: several nodes need PostgreSQL (COACHLOOP_TEST_ENGINE=postgres)");
        return None;
    }
    let first = Harness::start(t0()).await;
    let second = first.another_node().await;
    Some((first, second))
}

fn at_least_within(count: u32, event_type: &str, period: &str) -> serde_json::Value {
    json!({"event": {"type": event_type, "count": {"at_least": count}, "within": period}})
}

/// Each node counts the events the other stored: a node's cached facts of a person are
/// checked against what the other committed before they are trusted.
#[tokio::test]
async fn each_node_counts_the_events_the_other_stored() {
    let Some((a, b)) = installation().await else {
        return;
    };
    let account = a.account;
    let ana = a.user(account, "ana@acme.example", None).await;
    let group = a
        .smart_group(account, "Three", at_least_within(3, "t_a", "P1D"))
        .await;
    // Both nodes cache Ana with what they stored.
    a.event(account, "ana@acme.example", "t_a", t0() - 3 * HOUR)
        .await;
    b.event(account, "ana@acme.example", "t_a", t0() - 2 * HOUR)
        .await;
    assert!(a.members(account, group).await.is_empty());
    // The first node's cache holds one event of hers; the database, two.
    a.event(account, "ana@acme.example", "t_a", t0() - HOUR)
        .await;
    assert_eq!(
        a.members(account, group).await,
        [ana.0],
        "three events count"
    );
    // And the second node, whose cache knew two of them, leaves her at the right time.
    assert_eq!(
        b.store.next_due_group().await.unwrap(),
        Some(t0() - 3 * HOUR + DAY)
    );
}

/// A smart group created on one node is evaluated by the other for its next event, and
/// a change of a person's attributes on one node moves them on the other.
#[tokio::test]
async fn a_change_on_one_node_applies_to_the_next_event_on_the_other() {
    let Some((a, b)) = installation().await else {
        return;
    };
    let account = a.account;
    let ana = a.user(account, "ana@acme.example", Some("Sales")).await;
    let old = a
        .smart_group(account, "Old", at_least_within(1, "t_old", "P1D"))
        .await;
    // The second node loads the account's rules (one group) and caches Ana.
    b.event(account, "ana@acme.example", "t_old", t0() - HOUR)
        .await;
    assert_eq!(b.members(account, old).await, [ana.0]);
    let new = a
        .smart_group(
            account,
            "Sales and t_b",
            json!({"all": [
                {"event": {"type": "t_b", "count": {"at_least": 1}, "within": "P1D"}},
                {"user": {"attribute": "department", "in": ["Sales"]}}
            ]}),
        )
        .await;
    b.event(account, "ana@acme.example", "t_b", t0() - HOUR)
        .await;
    assert_eq!(
        b.members(account, new).await,
        [ana.0],
        "the new group counts"
    );
    a.set_user(account, ana, json!({"department": "Finance"}))
        .await;
    assert!(b.members(account, new).await.is_empty());
    // The second node's next event for her sees her new department.
    b.event(account, "ana@acme.example", "t_b", t0() - HOUR / 2)
        .await;
    assert!(
        b.members(account, new).await.is_empty(),
        "{:?}",
        b.history(account, new).await
    );
}

/// Both nodes run the schedule at the same instant: the leave is recorded once, at the
/// instant it was due.
#[tokio::test]
async fn a_timed_leave_run_by_both_nodes_is_recorded_once() {
    let Some((a, b)) = installation().await else {
        return;
    };
    let account = a.account;
    a.user(account, "ana@acme.example", None).await;
    let mut people = Vec::new();
    for i in 0..40 {
        let email = format!("p{i}@acme.example");
        a.user(account, &email, None).await;
        people.push(email);
    }
    let group = a
        .smart_group(account, "Recent", at_least_within(1, "t_a", "PT1H"))
        .await;
    for (i, email) in people.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        node.event(account, email, "t_a", t0() - 30 * 60_000).await;
    }
    assert_eq!(a.members(account, group).await.len(), 40);
    a.set_now(t0() + HOUR);
    let (one, two) = tokio::join!(a.run_due(), b.run_due());
    assert_eq!(one + two, 40, "each entry handled by one node");
    assert!(a.members(account, group).await.is_empty());
    let history = a.history(account, group).await;
    let left: Vec<_> = changes(&history)
        .into_iter()
        .filter(|(change, _)| change == "left")
        .collect();
    assert_eq!(left.len(), 40, "one leave each");
    assert!(left.iter().all(|(_, at)| *at == t0() + 30 * 60_000));
}

/// An event type renamed on one node: the other no longer files events of the old name
/// under it.
#[tokio::test]
async fn a_type_renamed_on_one_node_is_not_used_by_the_other_for_the_old_name() {
    let Some((a, b)) = installation().await else {
        return;
    };
    let account = a.account;
    a.user(account, "ana@acme.example", None).await;
    b.event(account, "ana@acme.example", "t_old", t0() - HOUR)
        .await;
    let types = a.store.list_event_types(account, None).await.unwrap();
    let old = types.iter().find(|t| t.name == "t_old").unwrap();
    a.store
        .update_event_type(account, old.id, Some("t_renamed"), None)
        .await
        .unwrap();
    b.event(account, "ana@acme.example", "t_old", t0() - HOUR / 2)
        .await;
    let types = a.store.list_event_types(account, None).await.unwrap();
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"t_old") && names.contains(&"t_renamed"),
        "{names:?}"
    );
}

/// A commit on one node that schedules a leave wakes the other node's group executor
/// (LISTEN/NOTIFY), which may be the one to run it.
#[tokio::test]
async fn a_commit_on_one_node_wakes_the_other_nodes_executor() {
    let Some((a, b)) = installation().await else {
        return;
    };
    let account = a.account;
    a.user(account, "ana@acme.example", None).await;
    a.smart_group(account, "Recent", at_least_within(1, "t_a", "PT1H"))
        .await;
    let wake = b.store.group_wake().clone();
    let patience = std::time::Duration::from_secs(5);
    // Once listening, a node wakes everything (it may have missed signals before).
    tokio::time::timeout(patience, wake.notified())
        .await
        .expect("the second node listens");
    // Asleep with nothing due, as after a run that found nothing.
    wake.set_target(None);
    let woken = wake.notified();
    a.event(account, "ana@acme.example", "t_a", t0() - 30 * 60_000)
        .await;
    tokio::time::timeout(patience, woken)
        .await
        .expect("the first node's commit wakes the second's executor");
}

/// Notice jobs are claimed by one node each; a job claimed by a node that never records
/// an attempt (it died mid-send) is claimed again once its lease ends, as it was.
#[tokio::test]
async fn each_notice_job_is_claimed_by_one_node_until_its_lease_ends() {
    let Some((a, b)) = installation().await else {
        return;
    };
    let account = a.account;
    a.store
        .create_webhook(
            account,
            "https://hooks.example/in",
            &["group.member_joined".to_owned()],
            coachloop_store::notices::FORMAT_JSON,
            None,
        )
        .await
        .unwrap();
    let group = a
        .smart_group(account, "Any", at_least_within(1, "t_a", "P1D"))
        .await;
    for i in 0..30 {
        let email = format!("p{i}@acme.example");
        a.user(account, &email, None).await;
        let node = if i % 2 == 0 { &a } else { &b };
        node.event(account, &email, "t_a", t0() - HOUR).await;
    }
    assert_eq!(a.members(account, group).await.len(), 30);
    let lease = std::time::Duration::from_secs(60);
    let (one, two) = tokio::join!(
        a.store.claim_jobs("webhook", 20, lease),
        b.store.claim_jobs("webhook", 20, lease)
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    let mut ids: Vec<i64> = one.iter().chain(&two).map(|job| job.id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 30, "every job claimed, none twice");
    assert!(one.iter().chain(&two).all(|job| job.run_at <= t0()));
    assert!(
        a.store
            .claim_jobs("webhook", 50, lease)
            .await
            .unwrap()
            .is_empty()
    );
    // The first node dies with its jobs in hand: the second takes them when the lease ends.
    a.advance(lease.as_millis() as i64 - 1);
    assert!(
        b.store
            .claim_jobs("webhook", 50, lease)
            .await
            .unwrap()
            .is_empty()
    );
    a.advance(1);
    let again = b.store.claim_jobs("webhook", 50, lease).await.unwrap();
    assert_eq!(again.len(), 30);
    let dedupes: Vec<&str> = one
        .iter()
        .chain(&two)
        .map(|job| job.dedupe.as_str())
        .collect();
    assert!(
        again
            .iter()
            .all(|job| dedupes.contains(&job.dedupe.as_str()))
    );
}

/// Events stored by both nodes while the account's first smart group is being created
/// (before it, under the account's lock shared, unlogged): every one counts.
#[tokio::test]
async fn events_stored_while_the_first_smart_group_is_created_all_count() {
    let Some((a, b)) = installation().await else {
        return;
    };
    let account = a.account;
    let people: Vec<String> = (0..60).map(|i| format!("p{i}@acme.example")).collect();
    for email in &people {
        a.user(account, email, None).await;
    }
    // Both nodes know the account has no smart group (their writers share its lock).
    a.event(account, &people[0], "t_a", t0() - HOUR).await;
    b.event(account, &people[1], "t_a", t0() - HOUR).await;
    let (_, group) = tokio::join!(
        async {
            for (i, email) in people.iter().enumerate().skip(2) {
                let node = if i % 2 == 0 { &a } else { &b };
                node.event(account, email, "t_a", t0() - HOUR).await;
            }
        },
        a.smart_group(account, "Any", at_least_within(1, "t_a", "P1D"))
    );
    assert_eq!(a.members(account, group).await.len(), people.len());
}
