//! Shared helpers of the smart-group store tests: a store on a database of its own with a
//! manual clock and a running event writer, and small wrappers around the calls tests
//! make over and over.

#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use coachloop_core::clock::ManualClock;
use coachloop_core::criteria::Criteria;
use coachloop_core::event::{NewEvent, RawEvent};
use coachloop_core::event_id::EventId;
use coachloop_core::ids::{AccountId, GroupId, UserId};
use coachloop_core::time::format_ms;
use coachloop_core::user::UserChanges;
use coachloop_store::groups::{GroupChanges, HistoryEntry, NewGroup};
use coachloop_store::ingest::{Ingestor, Submission};
use coachloop_store::testing::TestDatabase;
use coachloop_store::{DEFAULT_ACCOUNT, Page, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// 2026-03-02T00:00:00Z: far from month ends, so day-based durations are plain.
pub fn t0() -> i64 {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
        .unwrap()
        .timestamp_millis()
}

pub fn instant(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap()
}

/// A store on a database of its own (see `coachloop_store::testing`), a manual clock and
/// the event writer.
pub struct Harness {
    /// Shared by the nodes of one installation (see [`Harness::another_node`]).
    pub database: Arc<TestDatabase>,
    pub clock: Arc<ManualClock>,
    pub store: Store,
    ingestor: Option<Ingestor>,
    writer: Option<JoinHandle<()>>,
    pub account: AccountId,
}

impl Harness {
    pub async fn start(at_ms: i64) -> Self {
        let database = Arc::new(TestDatabase::new().await);
        let clock = Arc::new(ManualClock::new(instant(at_ms)));
        Self::open(database, clock).await
    }

    /// A second node of the same installation: its own store (engine cache, event writer)
    /// on the same database, with the same clock.
    pub async fn another_node(&self) -> Self {
        Self::open(self.database.clone(), self.clock.clone()).await
    }

    async fn open(database: Arc<TestDatabase>, clock: Arc<ManualClock>) -> Self {
        let store = Store::open(database.url(), clock.clone()).await.unwrap();
        let account = store
            .account_by_name(DEFAULT_ACCOUNT)
            .await
            .unwrap()
            .unwrap()
            .id;
        let (ingestor, writer) = Ingestor::start(&store, Arc::new(|_| {})).await.unwrap();
        Self {
            database,
            clock,
            store,
            ingestor: Some(ingestor),
            writer: Some(writer),
            account,
        }
    }

    pub fn now(&self) -> i64 {
        use coachloop_core::clock::Clock;
        self.clock.now_ms()
    }

    pub fn set_now(&self, ms: i64) {
        self.clock.set(instant(ms));
    }

    pub fn advance(&self, ms: i64) {
        self.clock.advance(chrono::Duration::milliseconds(ms));
    }

    /// Stops the event writer and closes the store, as a shutdown does.
    pub async fn stop(&mut self) {
        drop(self.ingestor.take());
        if let Some(writer) = self.writer.take() {
            writer.await.unwrap();
        }
        self.store.close().await;
    }

    /// Stops, sets the clock to `at_ms`, and opens the same file again with a new writer.
    pub async fn restart_at(&mut self, at_ms: i64) {
        self.stop().await;
        self.set_now(at_ms);
        self.store = Store::open(self.database.url(), self.clock.clone())
            .await
            .unwrap();
        let (ingestor, writer) = Ingestor::start(&self.store, Arc::new(|_| {}))
            .await
            .unwrap();
        self.ingestor = Some(ingestor);
        self.writer = Some(writer);
    }

    pub async fn user(&self, account: AccountId, email: &str, department: Option<&str>) -> UserId {
        let changes =
            UserChanges::from_json(&json!({"email": email, "department": department})).unwrap();
        self.store.create_user(account, &changes).await.unwrap().id
    }

    pub async fn set_user(&self, account: AccountId, user: UserId, changes: Value) {
        let changes = UserChanges::from_json(&changes).unwrap();
        self.store
            .update_user(account, user, &changes)
            .await
            .unwrap();
    }

    /// Submits one event for `email` that occurred at `occurred_ms`; returns its id.
    pub async fn event(
        &self,
        account: AccountId,
        email: &str,
        event_type: &str,
        occurred_ms: i64,
    ) -> EventId {
        let raw: RawEvent = serde_json::from_value(json!({
            "target_user": email,
            "event_type": event_type,
            "occurred_date": format_ms(occurred_ms),
        }))
        .unwrap();
        let event = NewEvent::parse(&raw, instant(self.now())).unwrap();
        assert_eq!(event.occurred_ms, occurred_ms);
        let receipt = self
            .ingestor
            .as_ref()
            .expect("writer running")
            .submit(Submission {
                account,
                request_id: Uuid::new_v4(),
                token_name: "test".into(),
                integration: None,
                events: vec![event],
                failures: vec![],
            })
            .await
            .unwrap();
        assert!(receipt.failures.is_empty());
        receipt.events[0]
    }

    /// Submits one event per `(occurred_ms, description)` for `email`, in one batch.
    pub async fn events(
        &self,
        account: AccountId,
        email: &str,
        event_type: &str,
        events: &[(i64, &str)],
    ) {
        let events = (events.iter()).map(|(occurred_ms, description)| {
            json!({
                "target_user": email,
                "event_type": event_type,
                "description": description,
                "occurred_date": format_ms(*occurred_ms),
            })
        });
        self.raw_events(account, events).await;
    }

    /// Stores events given in the User Event API's JSON, all of which must be valid.
    pub async fn raw_events(&self, account: AccountId, events: impl IntoIterator<Item = Value>) {
        let events: Vec<NewEvent> = (events.into_iter())
            .map(|event| {
                let raw: RawEvent = serde_json::from_value(event).unwrap();
                NewEvent::parse(&raw, instant(self.now())).unwrap()
            })
            .collect();
        let receipt = (self.ingestor.as_ref().expect("writer running"))
            .submit(Submission {
                account,
                request_id: Uuid::new_v4(),
                token_name: "test".into(),
                integration: None,
                events,
                failures: vec![],
            })
            .await
            .unwrap();
        assert!(receipt.failures.is_empty());
    }

    pub async fn smart_group(&self, account: AccountId, name: &str, criteria: Value) -> GroupId {
        let parsed = Criteria::parse(&criteria).unwrap();
        let (group, _) = self
            .store
            .create_group(
                account,
                &NewGroup {
                    name: name.into(),
                    description: None,
                    criteria: Some((criteria, parsed)),
                },
            )
            .await
            .unwrap();
        group.id
    }

    pub async fn set_criteria(&self, account: AccountId, group: GroupId, criteria: Value) {
        let parsed = Criteria::parse(&criteria).unwrap();
        self.store
            .update_group(
                account,
                group,
                &GroupChanges {
                    criteria: Some((criteria, parsed)),
                    ..GroupChanges::default()
                },
            )
            .await
            .unwrap();
    }

    /// Current member ids, ascending.
    pub async fn members(&self, account: AccountId, group: GroupId) -> Vec<i64> {
        let (members, total) = self
            .store
            .group_members(account, group, Page::new(1, 500))
            .await
            .unwrap();
        assert_eq!(
            members.len() as i64,
            total,
            "member_count agrees with the list"
        );
        members.iter().map(|m| m.user_id.0).collect()
    }

    /// The group's history, oldest first.
    pub async fn history(&self, account: AccountId, group: GroupId) -> Vec<HistoryEntry> {
        let (mut rows, _) = self
            .store
            .group_history(account, group, None, Page::new(1, 500))
            .await
            .unwrap();
        rows.reverse();
        rows
    }

    pub async fn run_due(&self) -> usize {
        self.store.run_due_groups().await.unwrap()
    }
}

/// `(change, at)` of history rows, for compact assertions.
pub fn changes(rows: &[HistoryEntry]) -> Vec<(String, i64)> {
    rows.iter().map(|r| (r.change.clone(), r.at)).collect()
}
