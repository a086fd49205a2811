//! The `coachloop` commands as a user runs them: each test over its own data (on the
//! engine `COACHLOOP_TEST_ENGINE` picks), most of them next to a running server on the
//! same data.

mod common;

use common::{Server, TestData, all_pages, arg, create_token, get, post, run};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const HEADER: &str = "email,first_name,last_name,department,employee_start_date,aliases";

fn write_csv(data: &TestData, name: &str, rows: &[&str]) -> std::path::PathBuf {
    let path = data.scratch().join(name);
    let mut text = rows.join("\n");
    text.push('\n');
    std::fs::write(&path, text).expect("write the CSV");
    path
}

async fn import(data: &TestData, csv: &Path) -> common::Output {
    data.run(&["users", "import", arg(csv)]).await
}

/// The people of the admin token's account, by lower-cased email.
async fn people(
    client: &reqwest::Client,
    admin: &str,
    server: &Server,
) -> std::collections::BTreeMap<String, Value> {
    all_pages(client, admin, server, "/api/users")
        .await
        .into_iter()
        .map(|user| {
            let email = user["email"].as_str().expect("an email").to_lowercase();
            (email, user)
        })
        .collect()
}

#[tokio::test]
async fn users_import_reports_bad_rows_by_line_and_upserts_by_email() {
    let data = TestData::new().await;
    let server = Server::start(&data).await;
    let admin = create_token(&data, "default", "admin", "admin").await;
    let client = reqwest::Client::new();

    let csv = write_csv(
        &data,
        "people.csv",
        &[
            HEADER,
            "ana@acme.example,Ana,Lima,Finance,2024-02-01,ana-laptop",
            "not-an-email,Bo,Novak,Sales,2024-01-01,",
            "cy@acme.example,Cy,Sato,Sales,2024-13-45,cy",
            "dee@acme.example,Dee,Khan,Legal,2023-05-06,dee; dee-laptop",
        ],
    );
    let first = import(&data, &csv).await;
    assert_eq!(
        first.code(),
        Some(2),
        "bad rows make exit code 2: {first:#?}"
    );
    let report = first.text();
    let line = |n: u32| {
        report
            .lines()
            .find(|l| l.contains(&format!("line {n}:")))
            .unwrap_or_else(|| panic!("no report of line {n}: {report}"))
            .to_owned()
    };
    assert!(line(3).contains("email"), "{report}");
    assert!(line(4).contains("employee_start_date"), "{report}");
    assert!(line(4).contains("YYYY-MM-DD"), "{report}");
    for good in [2, 5] {
        assert!(!report.contains(&format!("line {good}:")), "{report}");
    }
    assert!(report.contains("2 created"), "{report}");

    let imported = people(&client, &admin, &server).await;
    assert_eq!(
        imported.keys().collect::<Vec<_>>(),
        ["ana@acme.example", "dee@acme.example"]
    );
    assert_eq!(imported["ana@acme.example"]["department"], "Finance");
    assert_eq!(
        imported["ana@acme.example"]["employee_start_date"],
        "2024-02-01"
    );
    let mut aliases: Vec<&str> = imported["dee@acme.example"]["aliases"]
        .as_array()
        .expect("aliases")
        .iter()
        .map(|a| a.as_str().expect("an alias"))
        .collect();
    aliases.sort();
    assert_eq!(aliases, ["dee", "dee-laptop"]);

    // The same file again updates the same people.
    let again = import(&data, &csv).await;
    assert_eq!(again.code(), Some(2), "{again:#?}");
    assert!(again.text().contains("0 created, 2 updated"), "{again:#?}");
    assert_eq!(people(&client, &admin, &server).await.len(), 2);

    // An email in other letter case is the same person.
    let moved = write_csv(
        &data,
        "moved.csv",
        &[HEADER, " ANA@Acme.Example ,Ana,Lima,Legal,2024-02-01,"],
    );
    let output = import(&data, &moved).await;
    assert!(
        output.success().contains("0 created, 1 updated"),
        "{output:#?}"
    );
    let after = people(&client, &admin, &server).await;
    assert_eq!(after.len(), 2, "{after:#?}");
    assert_eq!(after["ana@acme.example"]["department"], "Legal");
    assert_eq!(
        after["ana@acme.example"]["id"],
        imported["ana@acme.example"]["id"]
    );
}

#[tokio::test]
async fn users_import_names_the_right_lines_of_a_spreadsheet_export() {
    let data = TestData::new().await;
    // What a spreadsheet saves as "CSV UTF-8": a byte-order mark, CRLF line ends, and a
    // quoted cell that spans two lines.
    let csv = data.scratch().join("export.csv");
    std::fs::write(
        &csv,
        "\u{feff}email,first_name\r\n\
         ana@acme.example,Ana\r\n\
         bo@acme.example,\"Bo\r\nBob\"\r\n\
         cy@acme.example,Cy,extra\r\n\
         not-an-email,Dee\r\n",
    )
    .expect("write the CSV");
    let output = import(&data, &csv).await;
    assert_eq!(output.code(), Some(2), "{output:#?}");
    let report = output.text();
    let failures: Vec<&str> = report.lines().filter(|l| l.contains("line ")).collect();
    assert_eq!(failures.len(), 2, "{report}");
    assert!(failures[0].contains("line 5:"), "{report}");
    assert!(failures[0].contains("3 fields"), "{report}");
    assert!(failures[1].contains("line 6:"), "{report}");
    assert!(failures[1].contains("email"), "{report}");
    assert!(report.contains("2 created"), "{report}");
}

#[tokio::test]
async fn users_import_without_an_email_column_names_it() {
    let data = TestData::new().await;
    let csv = write_csv(
        &data,
        "people.csv",
        &["mail,first_name", "ana@acme.example,Ana"],
    );
    let output = import(&data, &csv).await;
    let stderr = output.failure();
    assert!(stderr.contains("`email` column"), "{output:#?}");
    assert!(!output.stdout.contains("imported"), "{output:#?}");
}

#[tokio::test]
async fn tokens_are_created_listed_and_revoked_while_the_server_runs() {
    let data = TestData::new().await;
    let server = Server::start(&data).await;
    let client = reqwest::Client::new();
    let secret = create_token(&data, "default", "sender", "events:write,events:read").await;
    let (status, body) = get(&client, &secret, &server.url("/events")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let list = data.run(&["tokens", "list"]).await;
    let listed = list.success();
    let row = listed
        .lines()
        .find(|l| l.starts_with("sender\t"))
        .unwrap_or_else(|| panic!("the token is not listed: {listed}"));
    assert!(
        row.contains("events:write,events:read") || row.contains("events:read,events:write"),
        "{row}"
    );
    assert!(row.contains("live"), "{row}");
    assert!(!list.text().contains(&secret), "the list shows a secret");
    assert!(!list.text().contains("cl_"), "the list shows a secret");

    let revoke = data.run(&["tokens", "revoke", "sender"]).await;
    revoke.success();
    // The server may answer from its token cache for up to a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (status, _) = get(&client, &secret, &server.url("/events")).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            tokio::time::Instant::now() < deadline,
            "a revoked token still works after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = data.run(&["tokens", "list"]).await;
    let listed = list.success();
    let row = listed
        .lines()
        .find(|l| l.starts_with("sender\t"))
        .unwrap_or_else(|| panic!("the revoked token is not listed: {listed}"));
    assert!(row.contains("revoked"), "{row}");

    let again = data.run(&["tokens", "revoke", "sender"]).await;
    assert!(
        again.failure().contains("no live token named `sender`"),
        "{again:#?}"
    );
}

#[tokio::test]
async fn tokens_create_refuses_bad_expiry_and_unknown_scopes() {
    let data = TestData::new().await;
    let create = async |name: &str, scopes: &str, expires: &str| {
        data.run(&[
            "tokens",
            "create",
            "--name",
            name,
            "--scopes",
            scopes,
            "--expires",
            expires,
        ])
        .await
    };

    let past = create("past", "events:read", "2020-01-01").await;
    assert!(past.failure().contains("future"), "{past:#?}");
    assert!(past.stdout.trim().is_empty(), "{past:#?}");

    let badly_written = create("slashes", "events:read", "01/02/2099").await;
    let stderr = badly_written.failure();
    assert!(stderr.contains("01/02/2099"), "{badly_written:#?}");
    assert!(stderr.contains("YYYY-MM-DD"), "{badly_written:#?}");

    let unknown = create("unknown", "events:write,events:raed", "2099-01-01").await;
    assert!(unknown.failure().contains("`events:raed`"), "{unknown:#?}");

    let listed = data.run(&["tokens", "list"]).await;
    assert_eq!(
        listed.success().lines().count(),
        1,
        "only the header: no token was created: {listed:#?}"
    );

    let future = create("future", "events:read", "2099-01-01").await;
    assert!(future.success().trim().starts_with("cl_"), "{future:#?}");
    assert!(future.stderr.contains("2099-01-01"), "{future:#?}");
}

#[tokio::test]
async fn accounts_keep_their_data_apart() {
    let data = TestData::new().await;
    let server = Server::start(&data).await;
    let client = reqwest::Client::new();

    let created = data.run(&["accounts", "create", "northwind"]).await;
    assert!(created.success().contains("northwind"), "{created:#?}");
    let listed = data.run(&["accounts", "list"]).await;
    let names: Vec<&str> = listed
        .success()
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .collect();
    assert_eq!(names, ["default", "northwind"], "{listed:#?}");

    let duplicate = data.run(&["accounts", "create", "northwind"]).await;
    assert!(duplicate.failure().contains("exists"), "{duplicate:#?}");

    let unknown = data
        .run(&[
            "tokens",
            "create",
            "--account",
            "contoso",
            "--name",
            "t",
            "--scopes",
            "admin",
        ])
        .await;
    let stderr = unknown.failure();
    assert!(
        stderr.contains("no account named `contoso`"),
        "{unknown:#?}"
    );
    assert!(
        stderr.contains("coachloop accounts create contoso"),
        "{unknown:#?}"
    );
    assert!(unknown.stdout.trim().is_empty(), "{unknown:#?}");

    let a = create_token(&data, "default", "a", "events:write,events:read").await;
    let b = create_token(&data, "northwind", "b", "events:write,events:read").await;
    for (token, external_id) in [(&a, "from-a"), (&b, "from-b")] {
        let (status, body) = post(
            &client,
            token,
            &server.url("/events"),
            &json!({"target_user":"ana@acme.example","event_type":"test","external_id":external_id}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let ids = |token: &str| {
        let (client, token, server) = (&client, token.to_owned(), &server);
        async move {
            let mut ids: Vec<String> = all_pages(client, &token, server, "/events")
                .await
                .iter()
                .map(|e| e["external_id"].as_str().expect("external_id").to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(ids(&a).await, ["from-a"]);
    assert_eq!(ids(&b).await, ["from-b"]);
    let (status, body) = get(&client, &a, &server.url("/events?external_id=from-b")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!([]), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_writes_succeed_while_the_server_ingests() {
    let data = TestData::new().await;
    let server = Server::start(&data).await;
    let token = create_token(&data, "default", "sender", "events:write").await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let senders: Vec<_> = (0..4)
        .map(|n| {
            let (url, token, mut stopped) = (server.url("/events"), token.clone(), stopped.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut sent = 0;
                while !*stopped.borrow_and_update() {
                    let batch: Vec<Value> = (0..20)
                        .map(|i| {
                            json!({"target_user": format!("p{i}@acme.example"),
                            "event_type": "load", "external_id": format!("{n}-{sent}-{i}")})
                        })
                        .collect();
                    let (status, body) = post(&client, &token, &url, &Value::Array(batch)).await;
                    assert_eq!(status, StatusCode::CREATED, "{body}");
                    sent += 1;
                }
                sent
            })
        })
        .collect();

    let rows: Vec<String> = std::iter::once(HEADER.to_owned())
        .chain((0..1500).map(|i| format!("p{i}@acme.example,P,{i},Sales,2024-01-01,p{i}-laptop")))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let csv = write_csv(&data, "many.csv", &rows);
    let imported = import(&data, &csv).await;
    assert!(imported.success().contains("1500 created"), "{imported:#?}");
    data.run(&["accounts", "create", "busy"]).await.success();
    create_token(&data, "busy", "admin", "admin").await;
    data.run(&["tokens", "revoke", "admin", "--account", "busy"])
        .await
        .success();

    stop.send(true).expect("senders listen");
    for sender in senders {
        let sent = sender.await.expect("a sender never saw an error");
        assert!(sent > 0, "a sender sent nothing");
    }
}

#[tokio::test]
async fn healthcheck_tells_a_running_server_from_a_stopped_one() {
    let data = TestData::new().await;
    let server = Server::start(&data).await;
    let base = server.base.clone();
    let up = run(&["healthcheck", "--url", &base]).await;
    assert_eq!(up.code(), Some(0), "{up:#?}");
    assert!(up.stdout.contains(": healthy"), "{up:#?}");

    // Ctrl-C stops the server cleanly, and then nothing answers on its port.
    let (status, log) = server.interrupt().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", log.join("\n"));
    let down = run(&["healthcheck", "--url", &base]).await;
    assert_eq!(down.code(), Some(1), "{down:#?}");
    assert!(down.stdout.contains("unhealthy"), "{down:#?}");
}

#[tokio::test]
async fn healthcheck_gives_up_on_a_server_that_never_answers() {
    // The kernel completes connections to a listening socket nobody accepts from.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("address"));
    let output = run(&["healthcheck", "--url", &url]).await;
    assert_eq!(output.code(), Some(1), "{output:#?}");
    assert!(output.stdout.contains("unhealthy"), "{output:#?}");
}

#[tokio::test]
async fn migrate_creates_the_database() {
    // On SQLite a data directory that does not exist yet; on PostgreSQL an empty database.
    let data = TestData::empty().await;
    assert!(
        accounts_in(&data).await.is_err(),
        "the database should not exist or be empty before `migrate`"
    );
    let output = data.run(&["migrate"]).await;
    assert!(output.success().contains("up to date"), "{output:#?}");
    // Read behind the CLI's back, which would migrate on opening: on SQLite this opens the
    // file `coachloop.db` the command created in the new directory (opening never creates
    // it), on PostgreSQL the tables it created.
    let names = accounts_in(&data)
        .await
        .unwrap_or_else(|e| panic!("no schema after `migrate`: {e}"));
    assert_eq!(names, ["default"]);
    let accounts = data.run(&["accounts", "list"]).await;
    assert!(accounts.success().contains("\tdefault\t"), "{accounts:#?}");
}

/// The accounts' names, read from the database directly.
async fn accounts_in(data: &TestData) -> Result<Vec<String>, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(data.url().expose()).await?;
    let names = sqlx::query_scalar("SELECT name FROM accounts ORDER BY id")
        .fetch_all(&mut conn)
        .await;
    conn.close().await?;
    names
}

#[tokio::test]
async fn commands_find_the_database_named_in_the_environment() {
    let data = TestData::new().await;
    let url = data.url().expose();
    let created = common::command(&["accounts", "create", "from-env"])
        .env("COACHLOOP_DATABASE_URL", url)
        // Where a default data directory would appear.
        .current_dir(data.scratch())
        .output()
        .await
        .expect("run coachloop");
    assert!(created.status.success(), "{created:#?}");
    assert!(
        !data.scratch().join("coachloop-data").exists(),
        "a data directory was made although the database is elsewhere"
    );
    let listed = data.run(&["accounts", "list"]).await;
    assert!(listed.success().contains("\tfrom-env\t"), "{listed:#?}");
}

#[tokio::test]
async fn first_start_says_how_to_create_the_first_admin_token() {
    let data = TestData::new().await;
    let mut server = Server::start(&data).await;
    let line = server.log.find(|l| l.contains("no tokens yet")).await;
    let line = line.unwrap_or_else(|| panic!("no hint in the log:\n{}", server.log.joined()));
    let hint = line
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {line:?}"));
    let create = "coachloop tokens create --account default --name admin --scopes admin";
    let [flag, place] = data.flags();
    // (A database password is hidden: the log is no place for it.)
    let place = coachloop_cli::without_password(place);
    assert_eq!(hint, format!("{create} {flag} {place}"));
    assert!(
        !server.log.joined().contains('\u{1b}'),
        "terminal colour codes in a log written to a pipe:\n{}",
        server.log.joined()
    );

    // The hint works as printed (with a hidden password filled in), and then there is
    // no hint any more.
    let words: Vec<&str> = create.split_whitespace().skip(1).collect();
    let admin = data.run(&words).await.success().trim().to_owned();
    let client = reqwest::Client::new();
    let (status, body) = get(&client, &admin, &server.url("/api/users")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, log) = server.interrupt().await;
    assert!(status.success(), "{}", log.join("\n"));
    let (_, log) = Server::start(&data).await.interrupt().await;
    assert!(
        !log.iter().any(|l| l.contains("no tokens yet")),
        "{}",
        log.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_its_own_stream_of_events_until_ctrl_c() {
    let data = TestData::new().await;
    let mut child = data
        .command(&[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--people",
            "50",
            "--rate",
            "50",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start coachloop demo");
    let mut stdout = common::Lines::new(child.stdout.take().expect("piped stdout"));
    let mut stderr = common::Lines::new(child.stderr.take().expect("piped stderr"));

    let value_after = |line: &str, label: &str| {
        line.split_once(label)
            .map(|(_, rest)| rest.trim().to_owned())
            .filter(|token| token.starts_with("cl_"))
    };
    // (On a panic the child is killed when dropped.)
    let mut printed = async |label: &str| {
        let line = stdout.find(|l| l.contains(label)).await;
        line.unwrap_or_else(|| panic!("the demo printed no {label:?}:\n{}", stdout.joined()))
    };
    let admin = printed("admin token:").await;
    let admin = value_after(&admin, "admin token:").unwrap_or_else(|| panic!("{admin}"));
    let events = printed("events token:").await;
    let events = value_after(&events, "events token:").unwrap_or_else(|| panic!("{events}"));
    let curl = printed("/events?per_page").await;
    assert!(curl.contains("$EVENTS"), "{curl}");
    let base = curl
        .split_once("http://")
        .and_then(|(_, rest)| rest.split('/').next())
        .map(|addr| format!("http://{addr}"))
        .unwrap_or_else(|| panic!("no address in {curl:?}"));
    printed("coachloop forward delivers it").await;

    // The demo's sender reaches the demo's server.
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let count = loop {
        let (status, body) = get(&client, &events, &format!("{base}/events?per_page=1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let count = body["meta"]["count"].as_u64().expect("a count");
        if count > 0 || tokio::time::Instant::now() >= deadline {
            break count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        count > 0,
        "no events arrived within 10 s; stderr:\n{}",
        stderr.so_far()
    );
    // They came through the forwarder: mapped from audit-log records.
    let (_, body) = get(&client, &events, &format!("{base}/events?per_page=1")).await;
    let event = &body["data"][0];
    assert_eq!(event["source"], "Dashlane", "{event}");
    assert!(
        event["event_type"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("dashlane_"))
            && event["external_id"].is_string(),
        "{event}"
    );
    let (status, body) = get(&client, &admin, &format!("{base}/api/users?per_page=1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["count"], 50, "{body}");

    let status = common::interrupt(&mut child).await;
    assert_eq!(
        status.code(),
        Some(0),
        "stderr:\n{}",
        stderr.rest().await.join("\n")
    );
    assert!(
        stdout.find(|l| l.contains("demo stopped")).await.is_some(),
        "{}",
        stdout.joined()
    );
}

#[tokio::test]
async fn compliance_export_keeps_snapshots_and_verify_names_a_tampered_one() {
    let data = TestData::new().await;
    let csv = write_csv(
        &data,
        "people.csv",
        &[HEADER, "ana@acme.example,Ana,Lima,Finance,2024-02-01,"],
    );
    import(&data, &csv).await.success();
    let file = data.scratch().join("soc2.oscal.json");
    let export = data
        .run(&[
            "compliance",
            "export",
            "--framework",
            "soc2",
            "--control",
            "CC1.4",
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
            "--format",
            "oscal",
            "--output",
            arg(&file),
        ])
        .await;
    export.success();
    assert!(
        export.stderr.contains("kept as evidence snapshot 1"),
        "{export:#?}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let findings = &doc["assessment-results"]["results"][0]["findings"];
    assert_eq!(findings[0]["target"]["target-id"], "soc2-cc1.4");
    // To standard output, as CSV.
    let csv = data
        .run(&[
            "compliance",
            "export",
            "--framework",
            "soc2",
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
        ])
        .await;
    assert!(
        csv.success().starts_with("framework,controls,requirement,"),
        "{csv:#?}"
    );
    assert!(csv.stdout.contains("ana@acme.example"), "{csv:#?}");
    let bad = data
        .run(&[
            "compliance",
            "export",
            "--framework",
            "soc2",
            "--from",
            "2026-12-31",
            "--to",
            "2026-01-01",
        ])
        .await;
    assert!(
        bad.failure().contains("--from must not come after `to`"),
        "{bad:#?}"
    );

    let verify = data.run(&["compliance", "verify"]).await;
    assert!(
        verify.success().contains("2 snapshot(s) checked"),
        "{verify:#?}"
    );
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(data.url().expose())
        .await
        .unwrap();
    sqlx::query("UPDATE evidence_snapshots SET body = 'forged' WHERE id = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let verify = data.run(&["compliance", "verify"]).await;
    assert_eq!(verify.code(), Some(1), "{verify:#?}");
    assert!(
        verify
            .stdout
            .contains("evidence snapshot 1 is broken: its body differs"),
        "{verify:#?}"
    );
}

#[tokio::test]
async fn compliance_sync_reads_a_remote_coachloop_and_says_what_it_did() {
    let client = reqwest::Client::new();
    let remote_data = TestData::new().await;
    let key = create_token(
        &remote_data,
        "default",
        "sync",
        "account:read,user:read,campaign:read,enrollments:read",
    )
    .await;
    let remote_admin = create_token(&remote_data, "default", "admin", "admin").await;
    let remote = Server::start(&remote_data).await;
    for email in ["ana@remote.example", "bo@remote.example"] {
        let (status, body) = post(
            &client,
            &remote_admin,
            &remote.url("/api/users"),
            &json!({"email": email}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // The server and the command share the installation's secret key file.
    let data = TestData::new().await;
    let key_file = data.scratch().join("secret.key");
    let config = data.scratch().join("coachloop.toml");
    std::fs::write(
        &config,
        format!(
            "allow_private_destinations = true\nsecret_key_file = {:?}\n",
            arg(&key_file)
        ),
    )
    .unwrap();
    let admin = create_token(&data, "default", "admin", "admin").await;
    let server = Server::start_with(
        &data,
        &[
            ("COACHLOOP_ALLOW_PRIVATE_DESTINATIONS", "true"),
            ("COACHLOOP_SECRET_KEY_FILE", arg(&key_file)),
        ],
    )
    .await;
    let (status, body) = post(
        &client,
        &admin,
        &server.url("/api/compliance/connections"),
        &json!({"name": "remote", "base_url": remote.base, "key": key}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["data"]["id"].as_i64().unwrap();
    // The server syncs it at once.
    let mut synced = Value::Null;
    for _ in 0..200 {
        let (_, body) = get(
            &client,
            &admin,
            &server.url(&format!("/api/compliance/connections/{id}")),
        )
        .await;
        synced = body["data"].clone();
        if synced["status"] != "pending" || synced["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(synced["status"], "ok", "{synced}");
    assert_eq!(synced["people"], 2);
    server.interrupt().await;

    let (status, body) = post(
        &client,
        &remote_admin,
        &remote.url("/api/users"),
        &json!({"email": "cy@remote.example"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sync = data
        .run(&["compliance", "sync", "--config", arg(&config)])
        .await;
    let said = sync.success();
    assert!(said.contains("remote: synced 3 rows in"), "{sync:#?}");
    assert!(
        said.contains(": 3 people, 0 campaigns, 0 enrolments"),
        "{sync:#?}"
    );

    // Another secret key cannot open the connection's key: the sync fails and says why.
    let other = data.scratch().join("other.toml");
    std::fs::write(
        &other,
        format!(
            "allow_private_destinations = true\nsecret_key_file = {:?}\n",
            arg(&data.scratch().join("other.key"))
        ),
    )
    .unwrap();
    let failed = data
        .run(&["compliance", "sync", "--config", arg(&other)])
        .await;
    assert!(
        failed
            .failure()
            .contains("cannot be opened with this installation's secret key"),
        "{failed:#?}"
    );
    let unknown = data
        .run(&[
            "compliance",
            "sync",
            "--connection",
            "nope",
            "--config",
            arg(&config),
        ])
        .await;
    assert!(
        unknown.failure().contains("no sync connection `nope`"),
        "{unknown:#?}"
    );
    remote.interrupt().await;
}
