//! `coachloop db copy` at the store: a copy holds every row (counts and checksums read
//! back independently), goes both ways between the engines, leaves PostgreSQL's
//! sequences past the copied ids, refuses a target with rows or a source of another
//! schema, and leaves the target empty when it fails part-way.
//!
//! The engine under test (`COACHLOOP_TEST_ENGINE`) is one side; a SQLite file the other.

use coachloop_core::clock::{Clock, ManualClock};
use coachloop_core::identity::Email;
use coachloop_core::ids::AccountId;
use coachloop_core::scope::Scopes;
use coachloop_core::user::UserChanges;
use coachloop_store::copy::{self, Progress, Tally};
use coachloop_store::testing::TestDatabase;
use coachloop_store::tokens::NewToken;
use coachloop_store::{DatabaseUrl, Store, StoreError};
use sqlx::{AnyConnection, Connection, Executor};
use std::sync::{Arc, Mutex};
use tempfile::TempDir;

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-01T12:00:00Z")
            .unwrap()
            .to_utc(),
    ))
}

/// A SQLite file that does not exist yet.
fn sqlite_file(dir: &TempDir, name: &str) -> DatabaseUrl {
    DatabaseUrl::new(format!(
        "sqlite://{}",
        dir.path().join(name).to_str().expect("a UTF-8 path")
    ))
}

/// An installation with a second account, people with aliases, tokens (one revoked) and
/// a signing key, on top of what every store starts with (the default account, its
/// event types and the content library).
async fn fill(url: &DatabaseUrl) {
    let store = Store::open(url, clock()).await.expect("open the source");
    let acme = store.create_account("acme").await.expect("an account").id;
    let default = store
        .account_by_name(coachloop_store::DEFAULT_ACCOUNT)
        .await
        .unwrap()
        .unwrap()
        .id;
    for account in [default, acme] {
        for (n, email) in ["ana@acme.example", "bob@acme.example"].iter().enumerate() {
            let changes = UserChanges {
                email: Some(Email::parse(email).unwrap()),
                attributes: vec![
                    // What COPY's text format must escape: tab, newline, CR, backslash.
                    ("first_name", Some(format!("Person {n} é ✓\t\\N \\x00\r\n"))),
                    ("department", Some("Finance".to_owned())),
                    ("employee_start_date", Some("2024-02-01".to_owned())),
                ],
                aliases: Some(vec![format!("laptop-{n}")]),
                status: None,
            };
            store
                .create_user(account, &changes)
                .await
                .expect("a person");
        }
        token(&store, account, "admin").await;
    }
    token(&store, acme, "old").await;
    store.revoke_token(acme, "old").await.expect("revoke");
    store.secret("learner-links").await.expect("a key");
    store.close().await;
}

async fn token(store: &Store, account: AccountId, name: &str) {
    let new = NewToken {
        name: name.to_owned(),
        scopes: Scopes::parse_list("admin").unwrap(),
        expires_at: Some(1_900_000_000_000),
        limits: Default::default(),
        lrs: false,
    };
    store.create_token(account, &new).await.expect("a token");
}

/// Copies, asserting it committed; returns the progress reported.
async fn copy_ok(from: &DatabaseUrl, to: &DatabaseUrl) -> (copy::Report, Vec<Progress>) {
    let seen = Mutex::new(Vec::new());
    let report = copy::copy(from, to, &|p| seen.lock().unwrap().push(p))
        .await
        .unwrap_or_else(|e| panic!("copy {from:?} to {to:?}: {e}"));
    assert!(report.committed && report.matches(), "{report:#?}");
    (report, seen.into_inner().unwrap())
}

fn rows_of(tallies: &[(&str, Tally)], table: &str) -> u64 {
    tallies.iter().find(|(t, _)| *t == table).unwrap().1.rows
}

#[tokio::test]
async fn a_copy_holds_every_row_both_ways_and_new_ids_follow_the_copied_ones() {
    let dir = tempfile::tempdir().unwrap();
    let source = TestDatabase::new().await;
    fill(source.url()).await;
    let before = copy::tally(source.url()).await.unwrap();
    for (table, rows) in [
        ("accounts", 2),
        ("users", 4),
        ("user_identities", 8),
        ("tokens", 3),
        ("secrets", 1),
    ] {
        assert_eq!(rows_of(&before, table), rows, "{table}: {before:?}");
    }
    assert!(rows_of(&before, "content") > 0 && rows_of(&before, "event_types") > 0);

    // The engine under test → SQLite → a fresh database of the engine under test.
    let middle = sqlite_file(&dir, "middle.db");
    let (report, progress) = copy_ok(source.url(), &middle).await;
    let total: u64 = before.iter().map(|(_, t)| t.rows).sum();
    assert_eq!(report.rows(), total);
    assert_eq!(
        progress.first(),
        Some(&Progress::Pass(copy::Pass::Copy, total))
    );
    let copied: u64 = progress
        .iter()
        .map(|p| match p {
            Progress::Rows(n) => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(copied, 2 * total, "every row copied, then checked");
    let target = TestDatabase::new().await;
    copy_ok(&middle, target.url()).await;

    // Read back on their own, all three hold the same rows.
    assert_eq!(copy::tally(&middle).await.unwrap(), before);
    assert_eq!(copy::tally(target.url()).await.unwrap(), before);

    // The store reads the same; new rows take ids after the copied ones.
    let store = Store::open(target.url(), clock()).await.unwrap();
    let accounts = store.list_accounts().await.unwrap();
    let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["default", "acme"]);
    let acme = accounts[1].id;
    let tokens = store.list_tokens(acme).await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens
            .iter()
            .any(|t| t.name == "old" && t.revoked_at.is_some())
    );
    let created = store.create_account("later").await.expect("a new account");
    assert!(created.id.0 > acme.0, "{created:?} after {acme:?}");
    let changes = UserChanges {
        email: Some(Email::parse("cy@acme.example").unwrap()),
        attributes: vec![],
        aliases: None,
        status: None,
    };
    store
        .create_user(acme, &changes)
        .await
        .expect("a new person");
    store.close().await;
}

#[tokio::test]
async fn a_target_with_rows_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(&dir, "source.db");
    fill(&source).await;
    let target = TestDatabase::new().await;
    // What `serve` or `migrate` leave: the default account and the library.
    Store::open(target.url(), clock())
        .await
        .unwrap()
        .close()
        .await;
    let before = copy::tally(target.url()).await.unwrap();

    let refused = copy::copy(&source, target.url(), &|_| {}).await;
    match refused {
        Err(StoreError::Conflict(e)) => {
            assert_eq!(e.field, "to");
            assert!(e.message.contains("accounts"), "{e:?}");
            assert!(e.message.contains("empty database"), "{e:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(copy::tally(target.url()).await.unwrap(), before);
}

#[tokio::test]
async fn a_failure_part_way_leaves_the_target_empty_and_a_second_copy_works() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(&dir, "source.db");
    fill(&source).await;
    // A membership of a group that does not exist: SQLite kept it (foreign keys off), the
    // target refuses it after the tables before it were written.
    let mut conn = AnyConnection::connect(source.expose()).await.unwrap();
    conn.execute("PRAGMA foreign_keys = OFF").await.unwrap();
    conn.execute(
        "INSERT INTO group_members (group_id, user_id, account_id, joined_at, version) \
         VALUES (999, 1, 1, 0, 0)",
    )
    .await
    .unwrap();
    let target = TestDatabase::new().await;

    let failed = copy::copy(&source, target.url(), &|_| {}).await;
    let error = failed.expect_err("the orphan membership cannot be written");
    assert!(
        matches!(&error, StoreError::Database(e) if e.to_string().to_lowercase().contains("foreign key")),
        "{error:?}"
    );
    let after = copy::tally(target.url()).await.unwrap();
    assert!(after.iter().all(|(_, t)| t.rows == 0), "{after:?}");

    conn.execute("DELETE FROM group_members WHERE group_id = 999")
        .await
        .unwrap();
    conn.close().await.unwrap();
    copy_ok(&source, target.url()).await;
    assert_eq!(
        copy::tally(target.url()).await.unwrap(),
        copy::tally(&source).await.unwrap()
    );
}

#[tokio::test]
async fn a_source_with_a_column_the_copy_does_not_know_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(&dir, "source.db");
    fill(&source).await;
    let mut conn = AnyConnection::connect(source.expose()).await.unwrap();
    conn.execute("ALTER TABLE users ADD COLUMN nickname TEXT")
        .await
        .unwrap();
    conn.close().await.unwrap();
    let target = TestDatabase::new().await;

    let refused = copy::copy(&source, target.url(), &|_| {}).await;
    match refused {
        Err(StoreError::Invalid(errors)) => {
            assert_eq!(errors[0].field, "from");
            assert!(
                errors[0]
                    .message
                    .contains("column users.nickname is not copied"),
                "{errors:?}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Refused before the target was touched: on SQLite not even its file was made.
    match copy::tally(target.url()).await {
        Ok(after) => assert!(after.iter().all(|(_, t)| t.rows == 0), "{after:?}"),
        Err(_) => assert!(!target.dir().join("coachloop.db").exists()),
    }
}

#[tokio::test]
async fn a_source_that_is_not_a_coachloop_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_file(&dir, "target.db");
    let missing = sqlite_file(&dir, "missing.db");
    assert!(copy::copy(&missing, &target, &|_| {}).await.is_err());
    assert!(
        !dir.path().join("missing.db").exists(),
        "the source is only read, never created"
    );
    let plain = sqlite_file(&dir, "plain.db");
    let mut conn = AnyConnection::connect(&format!("{}?mode=rwc", plain.expose()))
        .await
        .unwrap();
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    conn.close().await.unwrap();
    match copy::copy(&plain, &target, &|_| {}).await {
        Err(StoreError::Invalid(errors)) => {
            assert!(
                errors[0].message.contains("not a coachloop database"),
                "{errors:?}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        copy::copy(&target, &target, &|_| {}).await,
        Err(StoreError::Invalid(_))
    ));
}
