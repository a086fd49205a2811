//! The console's Integrations and Compliance pages over HTTP: a sender's token *Pending*
//! until its first event and its secret shown once, refused forms keeping their values,
//! webhooks, remote connections with *Test connection* and *Sync now*, frameworks,
//! exceptions, evidence exports and their verification — each change made through the
//! API and recorded in the audit log as the administrator's.

mod common;

use coachloop_core::destination::PrivateDestinations;
use coachloop_server::ServerConfig;
use common::TestApp;
use common::console::{Visitor, admin_with_password, csrf_of, location};
use serde_json::{Value, json};

const EMAIL: &str = "ada@acme.example";
const PASSWORD: &str = "a long enough password";

async fn signed_in(app: &TestApp) -> Visitor {
    admin_with_password(app, app.account, EMAIL, PASSWORD).await;
    let mut visitor = Visitor::new(app);
    let answer = visitor.sign_in("default", EMAIL, PASSWORD).await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    visitor
}

/// The value of the read-only field that shows a new secret.
fn secret_of(html: &str) -> String {
    let marker = "id=\"secret\" readonly value=\"";
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no secret: {html}"))
        + marker.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

async fn audit(app: &TestApp) -> Vec<Value> {
    app.get(&app.admin, "/api/audit?actor=ada@acme.example")
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_sender_token_is_pending_until_its_first_event_and_its_secret_is_shown_once() {
    let app = TestApp::spawn().await;
    let mut visitor = signed_in(&app).await;
    let page = visitor.get("/console/integrations").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = csrf_of(&page.text);

    let created = visitor
        .post(
            "/console/integrations/tokens",
            &[
                ("csrf", &csrf),
                ("name", "Password manager"),
                ("purpose", "sender"),
            ],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let secret = secret_of(&created.text);
    assert!(created.text.contains("/events"), "{}", created.text);

    let listed = visitor.get("/console/integrations").await;
    assert!(listed.text.contains("Password manager"));
    assert!(
        listed.text.contains("<strong>Pending</strong>"),
        "{}",
        listed.text
    );
    assert!(listed.text.contains("events:write"));
    assert!(!listed.text.contains(&secret), "the secret is shown once");

    app.post_events(
        &secret,
        &json!({"target_user": "kim@acme.example", "event_type": "login"}),
    )
    .await
    .expect(201);
    // A sender's activity is written at most once a second, off the event's path.
    let mut after = visitor.get("/console/integrations").await;
    for _ in 0..50 {
        if after.text.contains("Last event") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = visitor.get("/console/integrations").await;
    }
    assert!(after.text.contains("Last event"), "{}", after.text);
    assert!(!after.text.contains("<strong>Pending</strong>"));

    // The audit log has the administrator's change, as the API call, without the secret.
    let entries = audit(&app).await;
    let entry = entries
        .iter()
        .find(|e| e["path"] == "/api/tokens")
        .expect("the token's creation");
    assert_eq!(entry["method"], "POST");
    assert_eq!(entry["actor"]["kind"], "admin");
    assert_eq!(entry["after"]["data"]["secret"], "[secret]");
    assert!(!entry.to_string().contains(&secret));

    let revoked = visitor
        .post(
            "/console/integrations/tokens/Password%20manager/revoke",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.text);
    app.post_events(
        &secret,
        &json!({"target_user": "kim@acme.example", "event_type": "login"}),
    )
    .await
    .expect(401);
    let entries = audit(&app).await;
    assert!(
        entries
            .iter()
            .any(|e| e["method"] == "DELETE" && e["path"] == "/api/tokens/Password%20manager"),
        "{entries:#?}"
    );
}

#[tokio::test]
async fn refused_forms_say_what_to_fix_and_keep_their_values() {
    let app = TestApp::spawn().await;
    let mut visitor = signed_in(&app).await;
    let csrf = csrf_of(&visitor.get("/console/integrations").await.text);

    let no_scopes = visitor
        .post(
            "/console/integrations/tokens",
            &[
                ("csrf", &csrf),
                ("name", "<i>odd</i>"),
                ("purpose", "custom"),
            ],
        )
        .await;
    assert_eq!(no_scopes.status, 422, "{}", no_scopes.text);
    assert!(no_scopes.text.contains("scopes: name at least one scope"));
    assert!(no_scopes.text.contains("value=\"&lt;i&gt;odd&lt;/i&gt;\""));

    // Webhooks go only to public addresses unless the operator allows others.
    let private = visitor
        .post(
            "/console/integrations/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "http://127.0.0.1:9/hook"),
                ("events", "enrollment.created"),
            ],
        )
        .await;
    assert_eq!(private.status, 422, "{}", private.text);
    assert!(private.text.contains("url: "), "{}", private.text);
    assert!(private.text.contains("value=\"http://127.0.0.1:9/hook\""));

    let neither = visitor
        .post(
            "/console/integrations/connections",
            &[("csrf", &csrf), ("name", "KnowBe4"), ("key", "abc")],
        )
        .await;
    assert_eq!(neither.status, 422, "{}", neither.text);
    assert!(neither.text.contains("region: give either a region"));
    assert!(
        !neither.text.contains("value=\"abc\""),
        "a key is never shown back"
    );

    let forged = visitor
        .post(
            "/console/integrations/tokens",
            &[("name", "x"), ("purpose", "sender")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        app.get(&app.admin, "/api/tokens").await.expect(200)["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "x")
    );
}

#[tokio::test]
async fn webhooks_are_added_shown_and_stopped() {
    let app = TestApp::spawn_with(ServerConfig {
        allow_private_destinations: PrivateDestinations::Allowed,
        ..ServerConfig::default()
    })
    .await;
    let mut visitor = signed_in(&app).await;
    let csrf = csrf_of(&visitor.get("/console/integrations").await.text);
    let added = visitor
        .post(
            "/console/integrations/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "http://127.0.0.1:9/hook"),
                ("format", "json"),
                ("events", "enrollment.created"),
                ("events", "group.member_joined"),
            ],
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let secret = secret_of(&added.text);
    let hooks = app.get(&app.admin, "/api/webhooks").await.expect(200);
    let hook = &hooks["data"][0];
    assert_eq!(hook["secret"], secret.as_str());
    assert_eq!(
        hook["events"],
        json!(["enrollment.created", "group.member_joined"])
    );

    let id = hook["id"].as_i64().unwrap();
    let page = visitor
        .get(&format!("/console/integrations/webhooks/{id}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Nothing sent yet."));
    assert!(!page.text.contains(&secret));
    let stopped = visitor
        .post(
            &format!("/console/integrations/webhooks/{id}/stop"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(stopped.status, 303);
    let page = visitor.get(location(&stopped)).await;
    assert!(page.text.contains("Stopped"), "{}", page.text);
}

#[tokio::test]
async fn a_remote_connection_is_tested_and_synced_from_the_console() {
    let remote = TestApp::spawn().await;
    let key = remote
        .token(
            "sync",
            "account:read,user:read,campaign:read,enrollments:read",
        )
        .await;
    let app = TestApp::spawn_with(ServerConfig {
        allow_private_destinations: PrivateDestinations::Allowed,
        ..ServerConfig::default()
    })
    .await;
    let mut visitor = signed_in(&app).await;
    let csrf = csrf_of(&visitor.get("/console/integrations").await.text);
    for (name, key) in [("Remote", key.as_str()), ("Wrong key", "not-a-key")] {
        let connected = visitor
            .post(
                "/console/integrations/connections",
                &[
                    ("csrf", &csrf),
                    ("name", name),
                    ("base_url", &remote.base),
                    ("key", key),
                    ("interval_minutes", "30"),
                ],
            )
            .await;
        assert_eq!(connected.status, 303, "{}", connected.text);
    }
    let page = visitor.get("/console/integrations").await;
    assert!(page.text.contains("Remote"));
    assert!(
        page.text.contains("<strong>Pending</strong>"),
        "{}",
        page.text
    );
    assert!(!page.text.contains(&key), "the key is never shown");

    let connections = app
        .get(&app.admin, "/api/compliance/connections")
        .await
        .expect(200);
    let id_of = |name: &str| {
        connections["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let good = id_of("Remote");
    let tested = visitor
        .post(
            &format!("/console/integrations/connections/{good}/test"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(tested.status, 200, "{}", tested.text);
    assert!(tested.text.contains("The key works"), "{}", tested.text);
    let wrong = visitor
        .post(
            &format!(
                "/console/integrations/connections/{}/test",
                id_of("Wrong key")
            ),
            &[("csrf", &csrf)],
        )
        .await;
    assert!(wrong.text.contains("wrong_key"), "{}", wrong.text);

    let synced = visitor
        .post(
            &format!("/console/integrations/connections/{good}/sync"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(synced.status, 303, "{}", synced.text);
    let removed = visitor
        .post(
            &format!("/console/integrations/connections/{good}/remove"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(removed.status, 303);
    app.get(&app.admin, &format!("/api/compliance/connections/{good}"))
        .await
        .expect(404);
    let unknown = visitor
        .post(
            &format!("/console/integrations/connections/{good}/explode"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn compliance_from_the_console_frameworks_exceptions_and_evidence() {
    let app = TestApp::spawn().await;
    let person = app
        .create_user(&json!({"email": "kim@acme.example", "first_name": "Kim",
                             "employee_start_date": "2020-01-01"}))
        .await["id"]
        .as_i64()
        .unwrap();
    let mut visitor = signed_in(&app).await;
    let page = visitor.get("/console/compliance").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("No framework is enabled."));
    let csrf = csrf_of(&page.text);

    let enabled = visitor
        .post(
            "/console/compliance/frameworks/soc2",
            &[("csrf", &csrf), ("enable", "yes")],
        )
        .await;
    assert_eq!(enabled.status, 303, "{}", enabled.text);
    let page = visitor.get("/console/compliance").await;
    assert!(page.text.contains("CC1.4"), "{}", page.text);
    assert!(page.text.contains(&format!("/console/people/{person}")));
    assert!(page.text.contains("Kim"));
    let history = visitor.get("/console/compliance/controls/soc2/CC1.4").await;
    assert_eq!(history.status, 200, "{}", history.text);
    assert!(history.text.contains("<svg"), "{}", history.text);
    assert_eq!(
        visitor
            .get("/console/compliance/controls/soc2/XX9")
            .await
            .status,
        404
    );

    // An exception, by the person's email.
    let requirements = app
        .get(&app.admin, "/api/compliance/requirements")
        .await
        .expect(200);
    let requirement = requirements["data"][0]["id"].as_i64().unwrap().to_string();
    let granted = visitor
        .post(
            "/console/compliance/exceptions",
            &[
                ("csrf", &csrf),
                ("email", "KIM@acme.example"),
                ("requirement_id", &requirement),
                ("reason", "on parental leave"),
            ],
        )
        .await;
    assert_eq!(granted.status, 303, "{}", granted.text);
    let exceptions = app
        .get(&app.admin, "/api/compliance/exceptions")
        .await
        .expect(200);
    assert_eq!(
        exceptions["data"][0]["granted_by"],
        "admin:ada@acme.example"
    );
    let unknown = visitor
        .post(
            "/console/compliance/exceptions",
            &[
                ("csrf", &csrf),
                ("email", "nobody@acme.example"),
                ("requirement_id", &requirement),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 422);
    let id = exceptions["data"][0]["id"].as_i64().unwrap();
    let revoked = visitor
        .post(
            &format!("/console/compliance/exceptions/{id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoked.status, 303);

    // Evidence: a download named for its snapshot, listed, and verified.
    let export = visitor
        .post(
            "/console/compliance/evidence",
            &[
                ("csrf", &csrf),
                ("framework", "soc2"),
                ("control", ""),
                ("from", "2026-01-01"),
                ("to", "2026-12-31"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(export.status, 200, "{}", export.text);
    let disposition = export.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"coachloop-evidence-"),
        "{disposition}"
    );
    assert!(export.text.contains("kim@acme.example"), "{}", export.text);
    let bad = visitor
        .post(
            "/console/compliance/evidence",
            &[
                ("csrf", &csrf),
                ("framework", "soc2"),
                ("from", "2026-12-31"),
                ("to", "2026-01-01"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let page = visitor.get("/console/compliance").await;
    assert!(
        page.text
            .contains("/console/compliance/evidence/snapshots/")
    );
    let verified = visitor
        .post("/console/compliance/verify", &[("csrf", &csrf)])
        .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert!(
        verified.text.contains("Verified: all 1 snapshots"),
        "{}",
        verified.text
    );

    let disabled = visitor
        .post(
            "/console/compliance/frameworks/soc2",
            &[("csrf", &csrf), ("enable", "no")],
        )
        .await;
    assert_eq!(disabled.status, 303);
    let entries = audit(&app).await;
    for (method, path) in [
        ("PUT", "/api/compliance/frameworks/soc2"),
        ("POST", "/api/compliance/exceptions"),
        ("DELETE", &format!("/api/compliance/exceptions/{id}")),
        ("DELETE", "/api/compliance/frameworks/soc2"),
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e["method"] == method && e["path"] == path),
            "{method} {path}: {entries:#?}"
        );
    }
}
