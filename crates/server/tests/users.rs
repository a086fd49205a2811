//! `/api/users`: people, their aliases, and how events find them.

mod common;

use common::{TestApp, event};
use serde_json::{Value, json};

#[tokio::test]
async fn a_person_is_created_and_read_back() {
    let app = TestApp::spawn().await;
    let created = app
        .create_user(&json!({
            "email": " Ana.Lima@Acme.Example ",
            "first_name": "Ana",
            "last_name": "Lima",
            "department": "Finance",
            "employee_start_date": "2024-02-01",
            "aliases": ["ana-laptop\\ana", "ANA"]
        }))
        .await;
    assert!(created["id"].is_i64());
    assert_eq!(created["email"], "Ana.Lima@Acme.Example");
    assert_eq!(created["first_name"], "Ana");
    assert_eq!(created["department"], "Finance");
    assert_eq!(created["employee_start_date"], "2024-02-01");
    assert_eq!(created["status"], "active");
    assert!(created["archived_at"].is_null());
    assert_eq!(created["joined_on"], "2026-11-01T12:00:00.000Z");
    let mut aliases: Vec<_> = created["aliases"].as_array().unwrap().clone();
    aliases.sort_by_key(|a| a.as_str().unwrap().to_owned());
    assert_eq!(aliases, [json!("ANA"), json!("ana-laptop\\ana")]);

    let id = created["id"].as_i64().unwrap();
    let read = app
        .get(&app.admin, &format!("/api/users/{id}"))
        .await
        .expect(200);
    assert_eq!(read["data"], created);
    app.get(&app.admin, "/api/users/999999")
        .await
        .expect_error(404, "not_found");
    app.get(&app.admin, "/api/users/ana")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn an_email_or_alias_belongs_to_one_person() {
    let app = TestApp::spawn().await;
    app.create_user(&json!({"email":"ana@acme.example","aliases":["ana-laptop"]}))
        .await;

    let same_email = app
        .post_json(
            &app.admin,
            "/api/users",
            &json!({"email":"  ANA@Acme.EXAMPLE"}),
        )
        .await;
    same_email.expect_error(409, "conflict");
    assert_eq!(same_email.detail_fields(), ["email"]);

    let taken_alias = app
        .post_json(
            &app.admin,
            "/api/users",
            &json!({"email":"bo@acme.example","aliases":["Ana-Laptop"]}),
        )
        .await;
    taken_alias.expect_error(409, "conflict");
    assert_eq!(taken_alias.detail_fields(), ["aliases"]);

    // Another person's email is not an alias to take either.
    let email_as_alias = app
        .post_json(
            &app.admin,
            "/api/users",
            &json!({"email":"cy@acme.example","aliases":["ana@acme.example"]}),
        )
        .await;
    email_as_alias.expect_error(409, "conflict");

    // Nothing of the refused requests was kept.
    let list = app.get(&app.admin, "/api/users").await.expect(200);
    assert_eq!(list["meta"]["count"], 1, "{list}");

    let bo = app.create_user(&json!({"email":"bo@acme.example"})).await;
    let patched = app
        .patch(
            &app.admin,
            &format!("/api/users/{}", bo["id"]),
            &json!({"aliases":["ana-laptop"]}),
        )
        .await;
    patched.expect_error(409, "conflict");
    let moved = app
        .patch(
            &app.admin,
            &format!("/api/users/{}", bo["id"]),
            &json!({"email":"ana@acme.example"}),
        )
        .await;
    moved.expect_error(409, "conflict");
    let bo_now = app
        .get(&app.admin, &format!("/api/users/{}", bo["id"]))
        .await
        .expect(200);
    assert_eq!(bo_now["data"]["email"], "bo@acme.example");
    assert_eq!(bo_now["data"]["aliases"], json!([]));
}

#[tokio::test]
async fn bad_fields_are_named() {
    let app = TestApp::spawn().await;
    let answer = app
        .post_json(
            &app.admin,
            "/api/users",
            &json!({"email":"nope","employee_start_date":"01/02/2024","title":"CEO",
                "first_name":7,"aliases":["ok",3]}),
        )
        .await;
    let body = answer.expect_error(422, "invalid");
    assert_eq!(
        answer.detail_fields(),
        [
            "aliases[1]",
            "email",
            "employee_start_date",
            "first_name",
            "title"
        ]
    );
    assert!(body["message"].as_str().unwrap().contains("email"));

    let missing = app
        .post_json(&app.admin, "/api/users", &json!({"first_name":"Ana"}))
        .await;
    missing.expect_error(422, "invalid");
    assert_eq!(missing.detail_fields(), ["email"]);

    let not_object = app.post_json(&app.admin, "/api/users", &json!([1])).await;
    not_object.expect_error(422, "invalid");

    let list = app.get(&app.admin, "/api/users").await.expect(200);
    assert_eq!(list["meta"]["count"], 0);
}

#[tokio::test]
async fn patch_sets_present_fields_and_null_clears() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user(&json!({"email":"ana@acme.example","first_name":"Ana",
            "department":"Finance","job_title":"Analyst"}))
        .await;
    let path = format!("/api/users/{}", user["id"]);

    let patched = app
        .patch(
            &app.admin,
            &path,
            &json!({"department":null,"job_title":"Lead"}),
        )
        .await
        .expect(200)["data"]
        .clone();
    assert!(patched["department"].is_null());
    assert_eq!(patched["job_title"], "Lead");
    assert_eq!(patched["first_name"], "Ana", "absent fields are kept");
    assert_eq!(
        app.get(&app.admin, &path).await.expect(200)["data"],
        patched
    );

    let bad = app
        .patch(&app.admin, &path, &json!({"custom_date_1":"tomorrow"}))
        .await;
    bad.expect_error(422, "invalid");
    assert_eq!(bad.detail_fields(), ["custom_date_1"]);
    app.patch(&app.admin, "/api/users/424242", &json!({"first_name":"x"}))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn delete_archives_and_patch_restores() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&json!({"email":"ana@acme.example"})).await;
    let path = format!("/api/users/{}", user["id"]);
    let event_id = app.submit_one(&event("ana@acme.example", "t")).await;

    app.clock.advance(chrono::Duration::hours(1));
    let archived = app.delete(&app.admin, &path).await.expect(200)["data"].clone();
    assert_eq!(archived["status"], "archived");
    assert_eq!(archived["archived_at"], "2026-11-01T13:00:00.000Z");
    // The history stays, and says the person is archived.
    let read = app.get(&app.admin, &path).await.expect(200);
    assert_eq!(read["data"]["status"], "archived");
    assert_eq!(app.event(&event_id).await["user"]["archived"], true);

    let restored = app
        .patch(&app.admin, &path, &json!({"status":"active"}))
        .await
        .expect(200)["data"]
        .clone();
    assert_eq!(restored["status"], "active");
    assert!(restored["archived_at"].is_null());
    assert_eq!(app.event(&event_id).await["user"]["archived"], false);
    app.delete(&app.admin, "/api/users/424242")
        .await
        .expect_error(404, "not_found");
}

async fn listed_emails(app: &TestApp, query: &str) -> (Vec<String>, Value) {
    let body = app
        .get(&app.admin, &format!("/api/users?{query}"))
        .await
        .expect(200);
    let emails = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    (emails, body["meta"].clone())
}

#[tokio::test]
async fn people_are_listed_with_filters_and_pages() {
    let app = TestApp::spawn().await;
    app.create_user(&json!({"email":"ana@acme.example","first_name":"Ana","department":"Finance"}))
        .await;
    app.create_user(
        &json!({"email":"bo@acme.example","last_name":"Anderson","department":"Sales"}),
    )
    .await;
    let cy = app
        .create_user(&json!({"email":"cy@acme.example","department":"Finance"}))
        .await;
    app.delete(&app.admin, &format!("/api/users/{}", cy["id"]))
        .await
        .expect(200);

    let (all, meta) = listed_emails(&app, "").await;
    assert_eq!(
        all,
        ["ana@acme.example", "bo@acme.example", "cy@acme.example"]
    );
    assert_eq!(meta["count"], 3);
    assert_eq!(
        listed_emails(&app, "status=active").await.0,
        ["ana@acme.example", "bo@acme.example"]
    );
    assert_eq!(
        listed_emails(&app, "status=archived").await.0,
        ["cy@acme.example"]
    );
    assert_eq!(
        listed_emails(&app, "department=Finance").await.0,
        ["ana@acme.example", "cy@acme.example"]
    );
    // q matches part of the email, first or last name, in any case.
    assert_eq!(
        listed_emails(&app, "q=AN").await.0,
        ["ana@acme.example", "bo@acme.example"]
    );
    assert_eq!(listed_emails(&app, "q=cy@").await.0, ["cy@acme.example"]);
    // … and across them, in the order email, first name, last name ("kim lee").
    assert_eq!(
        listed_emails(&app, "q=example%20ana").await.0,
        ["ana@acme.example"]
    );
    assert_eq!(
        listed_emails(&app, "q=an&department=Finance&status=active")
            .await
            .0,
        ["ana@acme.example"]
    );

    let (page, meta) = listed_emails(&app, "per_page=2&page=2").await;
    assert_eq!(page, ["cy@acme.example"]);
    assert_eq!(meta["count"], 3);
    assert_eq!(meta["total_pages"], 2);
    assert_eq!(meta["prev_page"], 1);
    assert_eq!(meta["is_last_page"], true);

    app.get(&app.admin, "/api/users?status=gone")
        .await
        .expect_error(400, "bad_request");
    app.get(&app.admin, "/api/users?per_page=0")
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn user_read_may_read_but_not_write() {
    let app = TestApp::spawn().await;
    let reader = app.token("reader", "user:read").await;
    let user = app.create_user(&json!({"email":"ana@acme.example"})).await;
    let path = format!("/api/users/{}", user["id"]);

    assert_eq!(
        app.get(&reader, "/api/users").await.expect(200)["meta"]["count"],
        1
    );
    app.get(&reader, &path).await.expect(200);
    app.post_json(&reader, "/api/users", &json!({"email":"bo@acme.example"}))
        .await
        .expect_error(403, "forbidden");
    app.patch(&reader, &path, &json!({"first_name":"x"}))
        .await
        .expect_error(403, "forbidden");
    app.delete(&reader, &path)
        .await
        .expect_error(403, "forbidden");
    // The timeline needs events:read as well.
    app.get(&reader, &format!("{path}/timeline"))
        .await
        .expect_error(403, "forbidden");

    let events_only = app.token("events", "events:read,events:write").await;
    app.get(&events_only, "/api/users")
        .await
        .expect_error(403, "forbidden");

    let read = app.get(&app.admin, &path).await.expect(200);
    assert!(read["data"]["first_name"].is_null());
    assert_eq!(read["data"]["status"], "active");
}

#[tokio::test]
async fn an_unmatched_event_finds_its_person_when_they_are_added() {
    let app = TestApp::spawn().await;
    let early = app
        .submit_one(
            &json!({"target_user":"Ana@Acme.Example","event_type":"phish",
            "occurred_date":"2026-10-30"}),
        )
        .await;
    let unmatched = app.event(&early).await;
    assert_eq!(
        unmatched["user"],
        json!({"email":"Ana@Acme.Example","id":null,"archived":false})
    );

    let ana = app
        .create_user(&json!({"email":"ana@acme.example","first_name":"Ana"}))
        .await;
    let matched = app.event(&early).await;
    assert_eq!(
        matched["user"],
        json!({"email":"ana@acme.example","id":ana["id"],"archived":false})
    );

    // Later events are matched as they arrive.
    let later = app.submit_one(&event(" ANA@acme.example ", "weak")).await;
    assert_eq!(app.event(&later).await["user"]["id"], ana["id"]);

    let timeline = app
        .get(&app.admin, &format!("/api/users/{}/timeline", ana["id"]))
        .await
        .expect(200);
    let ids: Vec<_> = timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [later, early], "newest first");
    assert_eq!(timeline["meta"]["count"], 2);
}

#[tokio::test]
async fn an_alias_claims_events_sent_to_a_device_name() {
    let app = TestApp::spawn().await;
    let bo = app.create_user(&json!({"email":"bo@acme.example"})).await;
    let device = app
        .submit_one(&event("BO-LAPTOP\\bo", "usb_drive_plugged"))
        .await;
    let other = app
        .submit_one(&event("someone-else", "usb_drive_plugged"))
        .await;
    assert!(app.event(&device).await["user"]["id"].is_null());

    let patched = app
        .patch(
            &app.admin,
            &format!("/api/users/{}", bo["id"]),
            &json!({"aliases":["bo-laptop\\BO"]}),
        )
        .await
        .expect(200)["data"]
        .clone();
    assert_eq!(patched["aliases"], json!(["bo-laptop\\BO"]));
    let event = app.event(&device).await;
    assert_eq!(event["user"]["id"], bo["id"]);
    assert_eq!(event["user"]["email"], "bo@acme.example");
    assert!(app.event(&other).await["user"]["id"].is_null());

    // Filtering events by any name of the person finds them.
    let by_email = app
        .get(&app.admin, "/events?target_user=bo@acme.example")
        .await
        .expect(200);
    assert_eq!(by_email["meta"]["count"], 1);
    assert_eq!(by_email["data"][0]["id"], device.as_str());
}

#[tokio::test]
async fn the_timeline_is_paged() {
    let app = TestApp::spawn().await;
    let ana = app.create_user(&json!({"email":"ana@acme.example"})).await;
    let days: Vec<Value> = (1..=5)
        .map(|d| {
            json!({"target_user":"ana@acme.example","event_type":"t",
                "occurred_date":format!("2026-10-0{d}"),"external_id":format!("d{d}")})
        })
        .collect();
    app.submit(&Value::Array(days)).await;
    app.submit_one(&event("bo@acme.example", "t")).await;

    let path = format!("/api/users/{}/timeline", ana["id"]);
    let page = app
        .get(&app.admin, &format!("{path}?per_page=2&page=2"))
        .await
        .expect(200);
    let ids: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["external_id"].clone())
        .collect();
    assert_eq!(ids, [json!("d3"), json!("d2")]);
    assert_eq!(
        page["meta"],
        json!({"count":5,"limit_value":2,"total_pages":3,"current_page":2,"next_page":3,
            "prev_page":1,"is_first_page":false,"is_last_page":false,"is_out_of_range":false})
    );
    app.get(&app.admin, &format!("{path}?per_page=-1"))
        .await
        .expect_error(400, "bad_request");
    app.get(&app.admin, "/api/users/424242/timeline")
        .await
        .expect_error(404, "not_found");
}

/// A list's total: the page's own rows when it is short, counted otherwise, and counted
/// only up to a cap when the page has one (the console's "more than").
#[tokio::test]
async fn a_list_total_is_exact_or_says_more_than_its_cap() {
    use coachloop_store::Page;
    use coachloop_store::users::UserFilter;
    let app = TestApp::spawn().await;
    for i in 0..12 {
        app.create_user(&json!({"email": format!("p{i}@acme.example")}))
            .await;
    }
    let account = app.account;
    let total = |page: Page| {
        let store = app.store.clone();
        async move {
            let (rows, total) = store
                .list_users(account, &UserFilter::default(), page)
                .await
                .unwrap();
            (rows.len(), total)
        }
    };
    // Counted (a full page), the short last page, a page past the end.
    assert_eq!(total(Page::new(1, 5)).await, (5, 12));
    assert_eq!(total(Page::new(3, 5)).await, (2, 12));
    assert_eq!(total(Page::new(4, 5)).await, (0, 12));
    // A cap below the total: the count stops one past it, and says so.
    let capped = Page::new(1, 5).counting_up_to(7);
    assert_eq!(total(capped).await, (5, 8));
    assert!(capped.is_more_than(8));
    // A page beyond the cap is counted to its end and one more.
    let deeper = Page::new(2, 5).counting_up_to(7);
    assert_eq!(total(deeper).await, (5, 11));
    assert!(deeper.is_more_than(11));
    // A cap above the total: exact.
    let roomy = Page::new(2, 5).counting_up_to(20);
    assert_eq!(total(roomy).await, (5, 12));
    assert!(!roomy.is_more_than(12));
    // The API's meta counts them all.
    let admin = app.token("lister", "admin").await;
    let listed = app.get(&admin, "/api/users?page=3&per_page=5").await.json();
    assert_eq!(listed["meta"]["count"], 12, "{listed}");
}
