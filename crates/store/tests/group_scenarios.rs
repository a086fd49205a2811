//! Smart groups at the store level, scenario by scenario: the exact edge of a rolling
//! window, a restart between an event and its scheduled leave, two accounts with the
//! same group names, and events that arrive out of order.

mod group_support;

use coachloop_core::ids::GroupId;
use coachloop_core::time::format_ms;
use group_support::{DAY, HOUR, Harness, MINUTE, changes, t0};
use serde_json::{Value, json};

fn within(event_type: &str, period: &str) -> Value {
    json!({"event": {"type": event_type, "count": {"at_least": 1}, "within": period}})
}

fn joined(at: i64) -> (String, i64) {
    ("joined".into(), at)
}

fn left(at: i64) -> (String, i64) {
    ("left".into(), at)
}

// ---- 2. the window edge -------------------------------------------------------------

/// An event exactly `P` old no longer counts: still a member at `t0 + P − 1 ms`, gone at
/// `t0 + P`, and the leave is recorded at exactly `t0 + P`.
#[tokio::test]
async fn an_event_exactly_p_old_no_longer_counts() {
    // (period, t0 + P)
    let cases = [
        ("PT1H", t0() + HOUR),
        ("P1D", t0() + DAY),
        ("P3D", t0() + 3 * DAY),
        // 2026-03-02 + 1 month = 2026-04-02 (31 days).
        ("P1M", t0() + 31 * DAY),
    ];
    for (period, exit) in cases {
        let h = Harness::start(t0()).await;
        let a = h.account;
        let ana = h.user(a, "ana@acme.example", None).await;
        let group = h.smart_group(a, "Recent", within("t_a", period)).await;
        assert!(h.members(a, group).await.is_empty());

        h.event(a, "ana@acme.example", "t_a", t0()).await;
        assert_eq!(
            h.members(a, group).await,
            [ana.0],
            "{period}: joins at once"
        );
        assert_eq!(
            h.store.next_due_group().await.unwrap(),
            Some(exit),
            "{period}"
        );

        h.set_now(exit - 1);
        h.run_due().await;
        assert_eq!(
            h.members(a, group).await,
            [ana.0],
            "{period}: at t0 + P - 1 ms"
        );

        h.set_now(exit);
        assert_eq!(h.run_due().await, 1, "{period}");
        assert!(h.members(a, group).await.is_empty(), "{period}: at t0 + P");

        let history = h.history(a, group).await;
        assert_eq!(changes(&history), [joined(t0()), left(exit)], "{period}");
        assert_eq!(history[1].recorded_at, exit);
        assert_eq!(h.store.next_due_group().await.unwrap(), None, "{period}");
    }
}

// ---- 3. restart between an event and its scheduled leave ----------------------------

/// The schedule survives a restart: reopened after the leave instant, the executor
/// records the leave at the scheduled instant, not at the reopen time.
#[tokio::test]
async fn a_leave_due_during_downtime_is_recorded_at_its_instant() {
    let mut h = Harness::start(t0()).await;
    let a = h.account;
    let ana = h.user(a, "ana@acme.example", None).await;
    let group = h.smart_group(a, "Last hour", within("t_a", "PT1H")).await;
    h.event(a, "ana@acme.example", "t_a", t0()).await;
    assert_eq!(h.members(a, group).await, [ana.0]);

    let reopened = t0() + HOUR + 5 * MINUTE;
    h.restart_at(reopened).await;
    assert_eq!(h.members(a, group).await, [ana.0], "nothing ran yet");
    assert_eq!(h.run_due().await, 1);
    assert!(h.members(a, group).await.is_empty());
    let history = h.history(a, group).await;
    assert_eq!(changes(&history), [joined(t0()), left(t0() + HOUR)]);
    assert_eq!(history[1].recorded_at, reopened);
    assert_eq!(h.store.next_due_group().await.unwrap(), None);
    h.stop().await;
}

/// Reopened before the leave instant: nothing happens until the clock gets there.
#[tokio::test]
async fn a_leave_due_after_a_restart_happens_at_its_instant() {
    let mut h = Harness::start(t0()).await;
    let a = h.account;
    let ana = h.user(a, "ana@acme.example", None).await;
    let group = h.smart_group(a, "Last hour", within("t_a", "PT1H")).await;
    h.event(a, "ana@acme.example", "t_a", t0()).await;

    h.restart_at(t0() + 30 * MINUTE).await;
    assert_eq!(h.run_due().await, 0);
    assert_eq!(h.members(a, group).await, [ana.0]);
    assert_eq!(h.store.next_due_group().await.unwrap(), Some(t0() + HOUR));

    h.set_now(t0() + HOUR - 1);
    assert_eq!(h.run_due().await, 0);
    assert_eq!(h.members(a, group).await, [ana.0]);

    h.set_now(t0() + HOUR);
    assert_eq!(h.run_due().await, 1);
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(t0()), left(t0() + HOUR)]
    );

    // The restarted writer still settles groups inside the event's transaction.
    h.event(a, "ana@acme.example", "t_a", t0() + HOUR).await;
    assert_eq!(h.members(a, group).await, [ana.0]);
    h.stop().await;
}

/// With `any` of two windows the schedule entry is the first instant one *leaf* may
/// change (`a` leaves its hour), not the instant the whole criteria stop holding (`b`
/// leaves its day). Down across both, the leave must still be recorded when the
/// criteria stopped holding: `t0 + 1 day`.
#[tokio::test]
async fn a_leave_after_downtime_is_recorded_when_the_criteria_stopped_holding() {
    let mut h = Harness::start(t0()).await;
    let a = h.account;
    let ana = h.user(a, "ana@acme.example", None).await;
    let criteria = json!({"any": [within("t_a", "PT1H"), within("t_b", "P1D")]});
    let group = h.smart_group(a, "Either", criteria).await;
    h.event(a, "ana@acme.example", "t_a", t0()).await;
    h.event(a, "ana@acme.example", "t_b", t0()).await;
    assert_eq!(h.members(a, group).await, [ana.0]);

    h.restart_at(t0() + 2 * DAY).await;
    h.run_due().await;
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(t0()), left(t0() + DAY)],
        "the criteria held until b left its day"
    );
    h.stop().await;
}

/// The same compound criteria with the executor running on time: correct.
#[tokio::test]
async fn a_compound_leave_on_time_is_recorded_when_the_criteria_stopped_holding() {
    let h = Harness::start(t0()).await;
    let a = h.account;
    let ana = h.user(a, "ana@acme.example", None).await;
    let criteria = json!({"any": [within("t_a", "PT1H"), within("t_b", "P1D")]});
    let group = h.smart_group(a, "Either", criteria).await;
    h.event(a, "ana@acme.example", "t_a", t0()).await;
    h.event(a, "ana@acme.example", "t_b", t0()).await;

    h.set_now(t0() + HOUR);
    h.run_due().await;
    assert_eq!(h.members(a, group).await, [ana.0]);
    assert_eq!(h.store.next_due_group().await.unwrap(), Some(t0() + DAY));
    h.set_now(t0() + DAY);
    h.run_due().await;
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(t0()), left(t0() + DAY)]
    );
}

// ---- 4. two accounts ----------------------------------------------------------------

/// Two accounts with the same group name, criteria and people: events of one account
/// never change the memberships of the other, neither at once nor by time.
#[tokio::test]
async fn accounts_with_the_same_group_names_stay_apart() {
    let h = Harness::start(t0()).await;
    let a = h.account;
    let b = h.store.create_account("other").await.unwrap().id;
    assert_ne!(a, b);
    let ana_a = h.user(a, "ana@acme.example", Some("IT")).await;
    let ana_b = h.user(b, "ana@acme.example", Some("IT")).await;
    let bob_b = h.user(b, "bob@acme.example", Some("IT")).await;
    let criteria = json!({"all": [
        {"event": {"type": "t_a", "count": {"at_least": 2}, "within": "P1D"}},
        {"user": {"attribute": "department", "equals": "IT"}}
    ]});
    let group_a = h.smart_group(a, "Risky", criteria.clone()).await;
    let group_b = h.smart_group(b, "Risky", criteria.clone()).await;
    assert_ne!(group_a, group_b);
    // A group of another account is not found through this one.
    assert!(h.store.group(a, group_b).await.is_err());

    let first_a = h.event(a, "ana@acme.example", "t_a", t0()).await;
    h.event(a, "ana@acme.example", "t_a", t0()).await;
    h.event(a, "bob@acme.example", "t_a", t0()).await; // nobody in a
    assert_eq!(h.members(a, group_a).await, [ana_a.0]);
    assert!(h.members(b, group_b).await.is_empty());

    h.advance(6 * HOUR);
    h.event(b, "ana@acme.example", "t_a", h.now()).await;
    assert!(h.members(b, group_b).await.is_empty(), "one event in b");
    h.event(b, "ana@acme.example", "t_a", h.now()).await;
    h.event(b, "bob@acme.example", "t_a", h.now()).await;
    h.event(b, "bob@acme.example", "t_a", h.now()).await;
    assert_eq!(h.members(a, group_a).await, [ana_a.0]);
    assert_eq!(h.members(b, group_b).await, [ana_b.0, bob_b.0]);

    // Deleting a's event takes ana out of a only.
    h.store.delete_event(a, first_a).await.unwrap();
    assert!(h.members(a, group_a).await.is_empty());
    assert_eq!(h.members(b, group_b).await, [ana_b.0, bob_b.0]);
    // An event of a is not found (nor deleted) through b.
    let again = h.event(a, "ana@acme.example", "t_a", h.now()).await;
    assert!(h.store.delete_event(b, again).await.is_err());
    assert_eq!(h.members(a, group_a).await, [ana_a.0]);

    // A department change in a leaves b alone.
    h.set_user(a, ana_a, json!({"department": "Sales"})).await;
    assert!(h.members(a, group_a).await.is_empty());
    assert_eq!(h.members(b, group_b).await, [ana_b.0, bob_b.0]);
    h.set_user(a, ana_a, json!({"department": "IT"})).await;
    assert_eq!(h.members(a, group_a).await, [ana_a.0]);

    // By time: a's pair (t0, t0+6h) ends at t0+1d, b's (t0+6h, t0+6h) at t0+1d+6h.
    h.set_now(t0() + DAY);
    h.run_due().await;
    assert!(h.members(a, group_a).await.is_empty());
    assert_eq!(h.members(b, group_b).await, [ana_b.0, bob_b.0]);
    h.set_now(t0() + DAY + 6 * HOUR);
    h.run_due().await;
    assert!(h.members(b, group_b).await.is_empty());

    let history_b = h.history(b, group_b).await;
    assert!(history_b.iter().all(|r| r.group_id == group_b));
    assert!(
        history_b
            .iter()
            .all(|r| [ana_b, bob_b].contains(&r.user_id))
    );
    assert_eq!(
        changes(&history_b),
        [
            joined(t0() + 6 * HOUR),
            joined(t0() + 6 * HOUR),
            left(t0() + DAY + 6 * HOUR),
            left(t0() + DAY + 6 * HOUR),
        ]
    );
    let history_a = h.history(a, group_a).await;
    assert!(history_a.iter().all(|r| r.user_id == ana_a));
    // Creating a group in b with a name used in a is fine; a second one in b is not.
    assert!(
        h.store
            .create_group(
                b,
                &coachloop_store::groups::NewGroup {
                    name: "Risky".into(),
                    description: None,
                    criteria: None,
                },
            )
            .await
            .is_err()
    );
}

/// Backfilling a group in one account reads only that account's events.
#[tokio::test]
async fn a_backfill_reads_only_its_account() {
    let h = Harness::start(t0()).await;
    let a = h.account;
    let b = h.store.create_account("other").await.unwrap().id;
    let ana_a = h.user(a, "ana@acme.example", None).await;
    let ana_b = h.user(b, "ana@acme.example", None).await;
    h.event(a, "ana@acme.example", "t_a", t0()).await;
    let group_b = h.smart_group(b, "Recent", within("t_a", "P1D")).await;
    let group_a = h.smart_group(a, "Recent", within("t_a", "P1D")).await;
    assert!(h.members(b, group_b).await.is_empty());
    assert_eq!(h.members(a, group_a).await, [ana_a.0]);
    h.event(b, "ana@acme.example", "t_a", t0()).await;
    assert_eq!(h.members(b, group_b).await, [ana_b.0]);
    assert_eq!(h.members(a, group_a).await, [ana_a.0]);
}

// ---- 5. out-of-order events ---------------------------------------------------------

/// A past-dated event inside the window joins at once, and the leave is due when *it*
/// leaves the window; one already outside the window (or exactly on its edge) does not.
#[tokio::test]
async fn past_dated_events_count_only_inside_the_window() {
    let now = t0() + 10 * DAY;
    let h = Harness::start(now).await;
    let a = h.account;
    let ana = h.user(a, "ana@acme.example", None).await;
    h.user(a, "bob@acme.example", None).await;
    let group = h.smart_group(a, "Recent", within("t_a", "P1D")).await;

    h.event(a, "ana@acme.example", "t_a", now - 2 * HOUR).await;
    assert_eq!(h.members(a, group).await, [ana.0]);
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(now)],
        "joined when the event arrived"
    );
    assert_eq!(
        h.store.next_due_group().await.unwrap(),
        Some(now - 2 * HOUR + DAY)
    );

    h.event(a, "bob@acme.example", "t_a", now - DAY).await; // exactly 1 day old
    h.event(a, "bob@acme.example", "t_a", now - 3 * DAY).await;
    assert_eq!(h.members(a, group).await, [ana.0], "bob stays out");
    assert_eq!(
        h.store.next_due_group().await.unwrap(),
        Some(now - 2 * HOUR + DAY),
        "nothing scheduled for bob"
    );

    h.set_now(now - 2 * HOUR + DAY);
    h.run_due().await;
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(now), left(now - 2 * HOUR + DAY)]
    );
}

/// A late event that extends a membership: the schedule only moves earlier on events,
/// so the entry stays at the first event's exit; when it fires the person is still a
/// member and the entry moves to the late event's exit, where they leave.
async fn late_event_setup(h: &Harness) -> (coachloop_core::ids::UserId, GroupId) {
    let a = h.account;
    let ana = h.user(a, "ana@acme.example", None).await;
    let group = h.smart_group(a, "Last hour", within("t_a", "PT1H")).await;
    h.event(a, "ana@acme.example", "t_a", t0()).await;
    assert_eq!(h.store.next_due_group().await.unwrap(), Some(t0() + HOUR));
    // At t0+40m an event that occurred at t0+20m arrives: it counts until t0+1h20m.
    h.set_now(t0() + 40 * MINUTE);
    h.event(a, "ana@acme.example", "t_a", t0() + 20 * MINUTE)
        .await;
    assert_eq!(h.members(a, group).await, [ana.0]);
    let due = h.store.next_due_group().await.unwrap().unwrap();
    assert!(
        (t0() + HOUR..=t0() + HOUR + 20 * MINUTE).contains(&due),
        "the entry is never late: {due}"
    );
    (ana, group)
}

#[tokio::test]
async fn a_late_event_moves_the_leave_later() {
    let h = Harness::start(t0()).await;
    let a = h.account;
    let (ana, group) = late_event_setup(&h).await;

    h.set_now(t0() + HOUR);
    h.run_due().await;
    assert_eq!(
        h.members(a, group).await,
        [ana.0],
        "still a member at t0+1h"
    );
    assert_eq!(
        h.store.next_due_group().await.unwrap(),
        Some(t0() + HOUR + 20 * MINUTE)
    );
    h.set_now(t0() + HOUR + 20 * MINUTE - 1);
    assert_eq!(h.run_due().await, 0);
    assert_eq!(h.members(a, group).await, [ana.0]);
    h.set_now(t0() + HOUR + 20 * MINUTE);
    assert_eq!(h.run_due().await, 1);
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(t0()), left(t0() + HOUR + 20 * MINUTE)]
    );
    assert_eq!(h.store.next_due_group().await.unwrap(), None);
}

/// The same, but the executor only gets to run after both exits (it was down, or busy):
/// the leave must still be recorded at the late event's exit, t0+1h20m.
#[tokio::test]
async fn a_late_event_moves_the_leave_later_even_when_the_executor_runs_late() {
    let h = Harness::start(t0()).await;
    let a = h.account;
    let (_, group) = late_event_setup(&h).await;

    h.set_now(t0() + 2 * HOUR);
    h.run_due().await;
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(t0()), left(t0() + HOUR + 20 * MINUTE)]
    );
}

/// "At most": a late event pushes the count over, so the person leaves at once; they
/// come back when the older event leaves the window.
#[tokio::test]
async fn a_late_event_over_at_most_leaves_at_once_and_rejoins_by_time() {
    let h = Harness::start(t0()).await;
    let a = h.account;
    let ana = h.user(a, "ana@acme.example", None).await;
    let criteria = json!({"event": {"type": "t_a", "count": {"at_most": 1}, "within": "PT1H"}});
    let group = h.smart_group(a, "Quiet", criteria).await;
    assert_eq!(
        h.members(a, group).await,
        [ana.0],
        "no events: at most 1 holds"
    );
    h.event(a, "ana@acme.example", "t_a", t0()).await;
    assert_eq!(h.members(a, group).await, [ana.0]);

    h.set_now(t0() + 30 * MINUTE);
    h.event(a, "ana@acme.example", "t_a", t0() + 10 * MINUTE)
        .await;
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(h.store.next_due_group().await.unwrap(), Some(t0() + HOUR));
    h.set_now(t0() + HOUR);
    h.run_due().await;
    assert_eq!(h.members(a, group).await, [ana.0]);
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(t0()), left(t0() + 30 * MINUTE), joined(t0() + HOUR)]
    );
}

/// An event dated in the future joins when it occurs, not when it arrives.
#[tokio::test]
async fn a_future_dated_event_joins_when_it_occurs() {
    let h = Harness::start(t0()).await;
    let a = h.account;
    let ana = h.user(a, "ana@acme.example", None).await;
    let group = h.smart_group(a, "Last hour", within("t_a", "PT1H")).await;
    h.event(a, "ana@acme.example", "t_a", t0() + 10 * MINUTE)
        .await;
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(
        h.store.next_due_group().await.unwrap(),
        Some(t0() + 10 * MINUTE)
    );
    h.set_now(t0() + 10 * MINUTE - 1);
    h.run_due().await;
    assert!(h.members(a, group).await.is_empty());
    h.set_now(t0() + 10 * MINUTE);
    h.run_due().await;
    assert_eq!(h.members(a, group).await, [ana.0]);
    h.set_now(t0() + 70 * MINUTE);
    h.run_due().await;
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(t0() + 10 * MINUTE), left(t0() + 70 * MINUTE)]
    );
}

/// The everyday form of the same bug: a member gets a second event (in order), so the
/// leave moves from t0+1h to t0+1h30m, but the schedule entry stays at t0+1h. If the
/// executor next runs after t0+1h30m (downtime, restart), the leave is recorded at t0+1h.
#[tokio::test]
async fn a_second_event_then_downtime_records_the_leave_at_the_second_exit() {
    let mut h = Harness::start(t0()).await;
    let a = h.account;
    let ana = h.user(a, "ana@acme.example", None).await;
    let group = h.smart_group(a, "Last hour", within("t_a", "PT1H")).await;
    h.event(a, "ana@acme.example", "t_a", t0()).await;
    h.set_now(t0() + 30 * MINUTE);
    h.event(a, "ana@acme.example", "t_a", t0() + 30 * MINUTE)
        .await;
    assert_eq!(h.members(a, group).await, [ana.0]);

    h.restart_at(t0() + 3 * HOUR).await;
    h.run_due().await;
    assert!(h.members(a, group).await.is_empty());
    assert_eq!(
        changes(&h.history(a, group).await),
        [joined(t0()), left(t0() + HOUR + 30 * MINUTE)]
    );
    h.stop().await;
}

// ---- bulk reads ---------------------------------------------------------------------

/// Backfill, preview and the engine's load read events in chunks of 10,000: a person
/// with more events than a chunk, several at the same instant across a chunk's edge, is
/// read whole by each, through the type index and through the table.
#[tokio::test]
async fn every_read_sees_events_beyond_one_chunk() {
    let mut h = Harness::start(t0()).await;
    let account = h.account;
    let ana = h.user(account, "ana@acme.example", None).await;
    h.user(account, "bob@acme.example", None).await;
    // 12,001 events, four at each instant but the oldest: the 10,000th is the second of
    // its instant.
    let history: Vec<(i64, &str)> = (0..12_001)
        .map(|i| (t0() - DAY - (i / 4) * MINUTE, "x"))
        .collect();
    h.events(account, "ana@acme.example", "t_a", &history).await;
    h.events(account, "bob@acme.example", "t_a", &history[..5])
        .await;
    let count = |n: u32, description: bool| {
        let mut leaf = json!({"type": "t_a", "count": {"at_least": n}, "within": "P1Y"});
        if description {
            leaf["description"] = json!({"contains": "x"});
        }
        json!({ "event": leaf })
    };

    // Backfill and preview, over the type index.
    let plain = h.smart_group(account, "12,002", count(12_002, false)).await;
    assert!(h.members(account, plain).await.is_empty());
    let criteria = coachloop_core::criteria::Criteria::parse(&count(12_001, false)).unwrap();
    let preview = h.store.preview_group(account, &criteria).await.unwrap();
    assert_eq!(preview.matching, 1);
    assert_eq!(preview.daily.last().unwrap().1, 1);

    // The engine's load over the index: the 12,002nd event makes ana a member.
    h.restart_at(t0()).await;
    h.events(account, "ana@acme.example", "t_a", &[(t0(), "x")])
        .await;
    assert_eq!(h.members(account, plain).await, vec![ana.0]);

    // With a description test the engine reads the table.
    let described = h.smart_group(account, "12,003", count(12_003, true)).await;
    assert!(h.members(account, described).await.is_empty());
    h.restart_at(t0() + MINUTE).await;
    h.events(account, "ana@acme.example", "t_a", &[(t0() + MINUTE, "x")])
        .await;
    assert_eq!(h.members(account, described).await, vec![ana.0]);
}

#[tokio::test]
async fn risk_scores_read_beyond_one_chunk() {
    let h = Harness::start(t0()).await;
    let account = h.account;
    let ana = h.user(account, "ana@acme.example", None).await;
    // 12,000 events alternating +1 and −1, then one of +10: the sum is 10 only if every
    // row of every chunk is read exactly once.
    let levels = (0..12_000)
        .map(|i| if i % 2 == 0 { 1 } else { -1 })
        .chain([10]);
    h.raw_events(
        account,
        levels.map(|level| {
            json!({"target_user": "ana@acme.example", "event_type": "t_a",
                "occurred_date": format_ms(t0() - DAY), "risk_level": level,
                "risk_decay_mode": 1, "risk_expire_date": "2099-01-01"})
        }),
    )
    .await;
    let expected = coachloop_core::risk::score_from_sum(10.0);
    let scores = h.store.risk_scores(account).await.unwrap();
    assert_eq!(scores.people[&ana], expected);
    assert_eq!(
        h.store.user_risk_score(account, ana).await.unwrap(),
        expected
    );
}

// ---- group changes under a stream of events ----------------------------------------------

/// A group created or edited while events arrive. Its backfill reads everyone outside the
/// engine and the write lock, so an event stored between that read and the write must
/// still count, and every event after the change must be evaluated with the new criteria.
#[tokio::test]
async fn events_deleted_while_a_group_is_created_stop_counting() {
    let h = Harness::start(t0()).await;
    let a = h.account;
    const PEOPLE: usize = 200;
    let mut ids = Vec::new();
    for i in 0..PEOPLE {
        let email = format!("p{i}@acme.example");
        let user = h.user(a, &email, None).await.0;
        // One event that counts, and history that the backfill reads (so that its read
        // takes a while) but that does not count.
        let events = (0..100).map(|d| {
            json!({"target_user": email, "event_type": "t_gone",
                   "description": if d == 0 { "live" } else { "stale" },
                   "external_id": format!("{i}-{d}"),
                   "occurred_date": format_ms(t0() - (d + 1) * HOUR)})
        });
        h.raw_events(a, events).await;
        let filter = coachloop_store::events::EventFilter {
            external_id: Some(format!("{i}-0")),
            ..Default::default()
        };
        let (rows, _) = (h
            .store
            .list_events(a, &filter, coachloop_store::Page::new(1, 1)))
        .await
        .unwrap();
        ids.push((user, rows[0].event_id()));
    }
    // People changed at the instant a backfill reads are read again whatever happened:
    // the clock moves on so that only the deletions mark them.
    h.advance(1000);
    // Every other person's counting event is deleted while the backfill reads beside the
    // locks: a deletion leaves no newer event, so it must be seen as a change.
    let deletions = async {
        for (_, id) in ids.iter().step_by(2) {
            h.store.delete_event(a, *id).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    let criteria = json!({"event": {"type": "t_gone", "description": {"contains": "live"},
                                    "count": {"at_least": 1}, "within": "P30D"}});
    let (group, ()) = tokio::join!(h.smart_group(a, "Gone", criteria), deletions);
    let mut kept: Vec<i64> = ids
        .iter()
        .skip(1)
        .step_by(2)
        .map(|(user, _)| *user)
        .collect();
    kept.sort_unstable();
    assert_eq!(
        h.members(a, group).await,
        kept,
        "deleted events do not count"
    );
}

#[tokio::test]
async fn events_arriving_while_a_group_changes_all_count() {
    let h = Harness::start(t0()).await;
    let a = h.account;
    const PEOPLE: usize = 300;
    let mut everyone = Vec::new();
    for i in 0..PEOPLE {
        everyone.push(h.user(a, &format!("p{i}@acme.example"), None).await.0);
    }
    // History the backfill reads (same type, inside the window) but that does not count.
    let old = (0..PEOPLE).flat_map(|i| {
        (1..=4).map(move |d| {
            json!({"target_user": format!("p{i}@acme.example"), "event_type": "t_new",
                   "description": "stale", "occurred_date": format_ms(t0() - d * HOUR)})
        })
    });
    h.raw_events(a, old).await;
    // People changed at the instant a backfill reads are read again whole: the clock
    // moves on so that the events arriving meanwhile are what the backfill catches up.
    h.advance(1000);
    let stream = |round: i64, every: usize| {
        let h = &h;
        async move {
            for i in (0..PEOPLE).step_by(every) {
                let email = format!("p{i}@acme.example");
                let occurred = t0() - (10 - round) * MINUTE;
                h.events(a, &email, "t_new", &[(occurred, "fresh")]).await;
            }
        }
    };
    let at_least = |n: i64| {
        json!({"event": {"type": "t_new", "description": {"contains": "fresh"},
                         "count": {"at_least": n}, "within": "P30D"}})
    };

    let (group, ()) = tokio::join!(h.smart_group(a, "Recent", at_least(1)), stream(0, 1));
    everyone.sort_unstable();
    assert_eq!(h.members(a, group).await, everyone, "one recent event each");

    // Raised to two while every other person sends a second one.
    let ((), ()) = tokio::join!(h.set_criteria(a, group, at_least(2)), stream(1, 2));
    let twice: Vec<i64> = everyone.iter().step_by(2).copied().collect();
    assert_eq!(h.members(a, group).await, twice, "two recent events");

    // And the engine goes on with the new criteria: a second event for the rest.
    stream(2, 1).await;
    assert_eq!(h.members(a, group).await, everyone, "everyone has two now");
}

// ---- the engine's cache after group changes -----------------------------------------

/// A group's backfill leaves in the engine's cache only the facts its criteria can still
/// count: for "at least N within P" the N most recent events in the window. (It once kept
/// every event of the type, and each later group added its own, so that the cache of a
/// 100,000-person account grew past a gigabyte and every evaluation walked it all.)
#[tokio::test]
async fn the_cache_keeps_only_what_can_count() {
    let h = Harness::start(t0() + 200 * DAY).await;
    let a = h.account;
    h.user(a, "ana@acme.example", None).await;
    h.user(a, "ben@acme.example", None).await;
    // 30 events of one type over 150 days for Ana, one for Ben; 20 of another for Ana.
    let days: Vec<(i64, &str)> = (0..30).map(|d| (t0() + 5 * d * DAY, "")).collect();
    h.events(a, "ana@acme.example", "t_a", &days).await;
    h.events(a, "ana@acme.example", "t_b", &days[..20]).await;
    h.event(a, "ben@acme.example", "t_a", t0() + 140 * DAY)
        .await;
    let at_least = |n: i64, period: &str| json!({"event": {"type": "t_a", "count": {"at_least": n}, "within": period}});
    // Nothing changes from here on: the backfills read their snapshot and keep it.
    h.advance(MINUTE);
    h.smart_group(a, "Two in a year", at_least(2, "P12M")).await;
    let size = h.store.engine_cache().await.unwrap();
    assert_eq!((size.people, size.facts), (2, 2 + 1), "{size:?}");
    // A second group on the same type keeps its own three; the first's two are among them.
    h.smart_group(a, "Three in a year", at_least(3, "P12M"))
        .await;
    assert_eq!(h.store.engine_cache().await.unwrap().facts, 3 + 1);
    // A window holding none of Ana's events adds nothing for her.
    h.smart_group(a, "Two this week", at_least(2, "P7D")).await;
    assert_eq!(h.store.engine_cache().await.unwrap().facts, 3 + 1);
}
