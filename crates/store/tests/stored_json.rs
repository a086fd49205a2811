//! Stored values that cannot be read are errors naming their row, never empty values: a
//! quiz that does not parse is not "no quiz", a campaign's cooldown or duration that does
//! not parse is not "none", a webhook's events that do not parse are not "no events".

mod group_support;

use coachloop_core::clock::Clock;
use coachloop_core::duration::IsoDuration;
use coachloop_core::ids::ContentId;
use coachloop_store::campaigns::{Due, NewCampaign};
use coachloop_store::content::ContentFilter;
use coachloop_store::{Page, StoreError};
use group_support::{Harness, t0};
use sqlx::{AnyConnection, Connection};

/// The shared store harness (a database of its own, a manual clock), and a second
/// connection to the same database for writing what the store never would.
struct Corruptible {
    harness: Harness,
    sql: AnyConnection,
}

impl std::ops::Deref for Corruptible {
    type Target = Harness;

    fn deref(&self) -> &Harness {
        &self.harness
    }
}

impl Corruptible {
    async fn open() -> Self {
        let harness = Harness::start(t0()).await;
        let sql = AnyConnection::connect(harness.database.url().expose())
            .await
            .unwrap();
        Self { harness, sql }
    }

    async fn execute(&mut self, statement: &str, id: i64) {
        let done = sqlx::query(statement)
            .bind(id)
            .execute(&mut self.sql)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1, "{statement}");
    }

    /// The library module with a quiz.
    async fn password_module(&mut self) -> ContentId {
        ContentId(
            sqlx::query_scalar("SELECT id FROM content WHERE slug = 'password-management'")
                .fetch_one(&mut self.sql)
                .await
                .unwrap(),
        )
    }
}

#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, naming: &str) {
    match result {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains(naming), "{message:?} names {naming}")
        }
        other => panic!("expected an error naming {naming}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_quiz_that_cannot_be_read_is_an_error_not_an_empty_quiz() {
    let mut db = Corruptible::open().await;
    let id = db.password_module().await;
    let account = db.account;
    let quiz = db.store.content(account, id).await.unwrap().quiz;
    assert!(!quiz.is_empty(), "the module has a quiz to lose");

    db.execute(
        "UPDATE content SET quiz = '[{\"question\": ' WHERE id = $1",
        id.0,
    )
    .await;
    assert_corrupt(
        db.store.content(account, id).await,
        &format!("content {id}"),
    );
    let listed = db
        .store
        .list_content(account, &ContentFilter::default(), Page::new(1, 500))
        .await;
    assert_corrupt(listed, &format!("content {id}"));
}

#[tokio::test]
async fn a_campaign_setting_that_cannot_be_read_stops_its_start_instead_of_dropping_it() {
    for column in ["cooldown", "relative_duration"] {
        let mut db = Corruptible::open().await;
        let module = db.password_module().await;
        let new = NewCampaign {
            name: "Coaching".into(),
            content: vec![module],
            groups: Vec::new(),
            all_users: true,
            start_at: Some(db.clock.now_ms() + 3_600_000),
            due: Due::After(IsoDuration::parse("P7D").unwrap()),
            auto_enroll: true,
            allow_multiple: true,
            cooldown: Some(IsoDuration::parse("P30D").unwrap()),
        };
        let (campaign, _) = db.store.create_campaign(db.account, &new).await.unwrap();
        db.execute(
            &format!("UPDATE campaigns SET {column} = 'soon' WHERE id = $1"),
            campaign.id.0,
        )
        .await;

        db.clock.advance(chrono::Duration::hours(2));
        assert_corrupt(
            db.store.run_due_training().await,
            &format!("campaign {}", campaign.id),
        );
        let campaign = db.store.campaign(db.account, campaign.id).await.unwrap();
        assert_eq!(campaign.status, "Created", "{column}: not started");
    }
}

#[tokio::test]
async fn webhook_events_that_cannot_be_read_are_an_error_not_no_events() {
    let mut db = Corruptible::open().await;
    let hook = db
        .store
        .create_webhook(
            db.account,
            "https://hooks.example.com/x",
            &["enrollment.created".to_owned()],
            coachloop_store::notices::FORMAT_JSON,
            None,
        )
        .await
        .unwrap();
    assert_eq!(hook.event_names().unwrap(), ["enrollment.created"]);

    db.execute(
        "UPDATE webhooks SET events = 'enrollment.created' WHERE id = $1",
        hook.id.0,
    )
    .await;
    let hook = db.store.webhook(db.account, hook.id).await.unwrap();
    assert_corrupt(hook.event_names(), &format!("webhook {}", hook.id));
}
