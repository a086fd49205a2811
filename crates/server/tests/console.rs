//! The admin console over HTTP: signing in and out, sessions, CSRF, lock-out, one
//! account never seeing another's, escaping, and mapping an unmatched identity. (The
//! browser walks the same pages in `console_browser.rs`.)

mod common;

use common::console::{Visitor, admin_with_password, csrf_of, location};
use common::{TestApp, event};
use serde_json::json;

const EMAIL: &str = "ada@acme.example";
const PASSWORD: &str = "a long enough password";

async fn signed_in(app: &TestApp) -> Visitor {
    admin_with_password(app, app.account, EMAIL, PASSWORD).await;
    let mut visitor = Visitor::new(app);
    let answer = visitor.sign_in("default", EMAIL, PASSWORD).await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    visitor
}

#[tokio::test]
async fn signing_in_and_out() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::new(&app);
    let first = visitor.get("/console/people?q=x").await;
    assert_eq!(first.status, 303);
    assert_eq!(
        location(&first),
        "/console/sign-in?next=%2Fconsole%2Fpeople%3Fq%3Dx"
    );

    admin_with_password(&app, app.account, EMAIL, PASSWORD).await;
    let form = visitor.get(location(&first)).await;
    assert_eq!(form.status, 200);
    assert!(
        form.text.contains("value=\"/console/people?q=x\""),
        "{}",
        form.text
    );
    let token = csrf_of(&form.text);
    let answer = visitor
        .post(
            "/console/sign-in",
            &[
                ("csrf", &token),
                ("account", "default"),
                ("email", "ADA@acme.example"),
                ("password", PASSWORD),
                ("next", "/console/people?q=x"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    assert_eq!(location(&answer), "/console/people?q=x");
    let cookie = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("coachloop_console="))
        .expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/console"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    let page = visitor.get("/console/").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("<h1>Dashboard</h1>"), "{}", page.text);
    assert_eq!(page.headers["cache-control"], "no-store");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // An outside address after signing in is not followed.
    let mut other = Visitor::new(&app);
    let form = other.get("/console/sign-in").await;
    let answer = other
        .post(
            "/console/sign-in",
            &[
                ("csrf", &csrf_of(&form.text)),
                ("account", "default"),
                ("email", EMAIL),
                ("password", PASSWORD),
                ("next", "//evil.example/console/"),
            ],
        )
        .await;
    assert_eq!(location(&answer), "/console/");

    // Signing out ends the session for good: its cookie, sent again, opens nothing.
    let kept = visitor.cookies.clone();
    let token = csrf_of(&page.text);
    let out = visitor.post("/console/sign-out", &[("csrf", &token)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(location(&out), "/console/sign-in?signed_out=1");
    assert!(!visitor.cookies.contains_key("coachloop_console"));
    visitor.cookies = kept;
    let again = visitor.get("/console/").await;
    assert_eq!(again.status, 303, "a signed-out session cannot come back");
    // The other session is untouched.
    assert_eq!(other.get("/console/").await.status, 200);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let app = TestApp::spawn().await;
    let mut visitor = signed_in(&app).await;
    for form in [vec![], vec![("csrf", "0".repeat(64))]] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = visitor.post("/console/sign-out", &form).await;
        assert_eq!(refused.status, 403, "{}", refused.text);
        assert!(
            refused
                .text
                .contains("did not come from your console session")
        );
        let refused = visitor
            .post(
                "/console/unmatched",
                &[&form[..], &[("identity", "x"), ("email", EMAIL)]].concat(),
            )
            .await;
        assert_eq!(refused.status, 403);
    }
    assert_eq!(
        visitor.get("/console/").await.status,
        200,
        "still signed in"
    );

    // The sign-in form's token must match the cookie sent with the form.
    let mut stranger = Visitor::new(&app);
    let refused = stranger
        .post(
            "/console/sign-in",
            &[
                ("csrf", "forged"),
                ("account", "default"),
                ("email", EMAIL),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(!stranger.cookies.contains_key("coachloop_console"));
}

#[tokio::test]
async fn wrong_passwords_lock_an_administrator_out_for_a_while() {
    let app = TestApp::spawn().await;
    admin_with_password(&app, app.account, EMAIL, PASSWORD).await;
    let mut visitor = Visitor::new(&app);
    for attempt in 1..=4 {
        let wrong = visitor.sign_in("default", EMAIL, "not the password").await;
        assert_eq!(wrong.status, 401, "attempt {attempt}");
        assert!(wrong.text.contains("Wrong account, email or password."));
    }
    let locked = visitor.sign_in("default", EMAIL, "not the password").await;
    assert_eq!(locked.status, 429);
    assert!(locked.text.contains("locked until"), "{}", locked.text);
    // Locked: even the right password does not open a session.
    let refused = visitor.sign_in("default", EMAIL, PASSWORD).await;
    assert_eq!(refused.status, 429);
    assert!(!visitor.cookies.contains_key("coachloop_console"));
    // An unknown email is told the same as a wrong password, and never locks.
    for _ in 0..6 {
        let unknown = visitor.sign_in("default", "nobody@acme.example", "x").await;
        assert_eq!(unknown.status, 401);
    }
    app.clock.advance(chrono::Duration::seconds(15 * 60 + 1));
    let opened = visitor.sign_in("default", EMAIL, PASSWORD).await;
    assert_eq!(opened.status, 303, "{}", opened.text);
    // The run of failures ended with the sign-in: four more do not lock.
    for _ in 0..4 {
        assert_eq!(
            Visitor::new(&app)
                .sign_in("default", EMAIL, "wrong")
                .await
                .status,
            401
        );
    }
}

#[tokio::test]
async fn a_session_of_one_account_shows_nothing_of_another() {
    let app = TestApp::spawn().await;
    let (other, other_admin) = app.other_account("globex").await;
    let theirs = app
        .post_json(
            &other_admin,
            "/api/users",
            &json!({"email": "secret.person@globex.example", "first_name": "Secret"}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let ours = app
        .create_user(&json!({"email": "our.person@acme.example"}))
        .await["id"]
        .as_i64()
        .unwrap();
    let mut visitor = signed_in(&app).await;
    let people = visitor.get("/console/people").await;
    assert!(people.text.contains("our.person@acme.example"));
    assert!(!people.text.contains("globex"));
    let search = visitor.get("/console/people?q=secret").await;
    assert!(!search.text.contains("globex"), "{}", search.text);
    assert_eq!(
        visitor
            .get(&format!("/console/people/{theirs}"))
            .await
            .status,
        404
    );
    assert_eq!(
        visitor.get(&format!("/console/people/{ours}")).await.status,
        200
    );

    // The same email administers the other account with its own password; signing in
    // there shows only that account.
    admin_with_password(&app, other, EMAIL, "another long password").await;
    let mut there = Visitor::new(&app);
    assert_eq!(
        there.sign_in("globex", EMAIL, PASSWORD).await.status,
        401,
        "each account's password is its own"
    );
    assert_eq!(
        there
            .sign_in("globex", EMAIL, "another long password")
            .await
            .status,
        303
    );
    let page = there.get(&format!("/console/people/{theirs}")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        there.get(&format!("/console/people/{ours}")).await.status,
        404
    );
}

#[tokio::test]
async fn names_and_descriptions_are_escaped() {
    let app = TestApp::spawn().await;
    let id = app
        .create_user(&json!({
            "email": "mallory@acme.example",
            "first_name": "<script>alert(1)</script>",
            "department": "R&D \"<b>\"",
        }))
        .await["id"]
        .as_i64()
        .unwrap();
    app.submit(&json!({
        "target_user": "mallory@acme.example",
        "event_type": "odd_event",
        "description": "<img src=x onerror=alert(2)>",
    }))
    .await;
    let mut visitor = signed_in(&app).await;
    for path in [
        format!("/console/people/{id}"),
        "/console/people?q=mallory".to_owned(),
    ] {
        let page = visitor.get(&path).await;
        assert_eq!(page.status, 200);
        assert!(
            !page.text.contains("<script>alert"),
            "{path}: {}",
            page.text
        );
        assert!(!page.text.contains("<img src=x"), "{path}");
        assert!(
            page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}"
        );
    }
    let person = visitor.get(&format!("/console/people/{id}")).await.text;
    assert!(person.contains("R&amp;D &quot;&lt;b&gt;&quot;"), "{person}");
    assert!(
        person.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{person}"
    );
}

#[tokio::test]
async fn an_unmatched_identity_is_mapped_to_a_person() {
    let app = TestApp::spawn().await;
    let person = app
        .create_user(&json!({"email": "kim@acme.example", "first_name": "Kim"}))
        .await["id"]
        .as_i64()
        .unwrap();
    app.submit(&event(
        "KIOSK-7",
        "dashlane_user_typed_compromised_password",
    ))
    .await;
    let mut visitor = signed_in(&app).await;
    let inbox = visitor.get("/console/unmatched").await;
    assert!(inbox.text.contains("KIOSK-7"), "{}", inbox.text);
    let token = csrf_of(&inbox.text);

    let nobody = visitor
        .post(
            "/console/unmatched",
            &[
                ("csrf", &token),
                ("identity", "KIOSK-7"),
                ("email", "nobody@acme.example"),
            ],
        )
        .await;
    assert_eq!(nobody.status, 422);
    assert!(nobody.text.contains("Nobody in this account has the email"));

    let mapped = visitor
        .post(
            "/console/unmatched",
            &[
                ("csrf", &token),
                ("identity", "KIOSK-7"),
                ("email", "kim@acme.example"),
            ],
        )
        .await;
    assert_eq!(mapped.status, 303, "{}", mapped.text);
    assert_eq!(location(&mapped), format!("/console/people/{person}"));
    let page = visitor.get(location(&mapped)).await.text;
    assert!(
        page.contains("dashlane_user_typed_compromised_password"),
        "{page}"
    );
    assert!(page.contains("KIOSK-7"), "the alias shows: {page}");
    assert!(
        !visitor
            .get("/console/unmatched")
            .await
            .text
            .contains("KIOSK-7")
    );
}

#[tokio::test]
async fn forms_say_what_to_fix() {
    let app = TestApp::spawn().await;
    let mut visitor = signed_in(&app).await;
    let form = visitor.get("/console/campaigns/new").await;
    assert_eq!(form.status, 200);
    let token = csrf_of(&form.text);
    let refused = visitor
        .post(
            "/console/campaigns/new",
            &[("csrf", &token), ("name", "No content"), ("groups", "0")],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .text
            .contains("content: name at least one content id"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("value=\"No content\""),
        "the values stay"
    );

    let builder = visitor.get("/console/groups/new").await;
    let token = csrf_of(&builder.text);
    let refused = visitor
        .post(
            "/console/groups/new",
            &[
                ("csrf", &token),
                ("name", "x"),
                ("r0_kind", "event"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.text.contains("r0_type"), "{}", refused.text);
    let bad_frame = visitor
        .post(
            "/console/groups/new",
            &[
                ("csrf", &token),
                ("r0_kind", "event"),
                ("r0_type", "x"),
                ("r0_within", "3 weeks"),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(bad_frame.status, 422);
    assert!(
        bad_frame.text.contains("criteria.event.within"),
        "{}",
        bad_frame.text
    );
}

#[tokio::test]
async fn a_module_is_previewed_then_added() {
    let app = TestApp::spawn().await;
    let mut visitor = signed_in(&app).await;
    let library = visitor.get("/console/content").await;
    assert_eq!(library.status, 200);
    assert!(
        library.text.contains("the built-in library"),
        "{}",
        library.text
    );

    let form = visitor.get("/console/content/new").await;
    let token = csrf_of(&form.text);
    let fields = |action: &'static str, slug: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("kind", "module".to_owned()),
            ("title", "Passkeys <3".to_owned()),
            ("slug", slug.to_owned()),
            ("minutes", "4".to_owned()),
            (
                "body",
                "# Why\n\nUse a **passkey**. <script>alert(1)</script>".to_owned(),
            ),
            ("action", action.to_owned()),
        ]
    };
    let preview_fields = fields("preview", "passkeys");
    let preview: Vec<(&str, &str)> = preview_fields
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let shown = visitor.post("/console/content/new", &preview).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert!(
        shown.text.contains("<strong>passkey</strong>"),
        "rendered: {}",
        shown.text
    );
    assert!(
        shown.text.contains("&lt;script&gt;"),
        "raw HTML shown as text"
    );
    assert!(!shown.text.contains("<script>alert"));

    let bad_fields = fields("save", "Not A Slug");
    let bad: Vec<(&str, &str)> = bad_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = visitor.post("/console/content/new", &bad).await;
    assert_eq!(refused.status, 422);
    assert!(refused.text.contains("slug"), "{}", refused.text);

    let save_fields = fields("save", "passkeys");
    let save: Vec<(&str, &str)> = save_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = visitor.post("/console/content/new", &save).await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    let page = visitor.get(location(&saved)).await;
    assert!(
        page.text.contains("<h1>Passkeys &lt;3</h1>"),
        "{}",
        page.text
    );
    assert!(
        visitor
            .get("/console/content")
            .await
            .text
            .contains("this account")
    );
}

#[tokio::test]
async fn the_dashboard_charts_events_by_type_and_training_per_day() {
    let app = TestApp::spawn().await;
    app.create_user(&json!({"email": "kim@acme.example"})).await;
    for kind in ["login_failed", "login_failed", "<b>odd</b>"] {
        app.submit(&json!({"target_user": "kim@acme.example", "event_type": kind}))
            .await;
    }
    let mut visitor = signed_in(&app).await;
    let page = visitor.get("/console/").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("Events per day by type"),
        "{}",
        page.text
    );
    assert!(page.text.contains("Joins, enrolments and completions"));
    // Each series is named in the chart's legend and in its table of numbers.
    let table = &page.text[page
        .text
        .find("<th class=\"num\">login_failed</th>")
        .expect("a column per type")..];
    assert!(
        table.contains("<td class=\"num\">2</td><td class=\"num\">1</td>"),
        "{table}"
    );
    assert!(page.text.contains("&lt;b&gt;odd&lt;/b&gt;"));
    assert!(!page.text.contains("<b>odd</b>"));
    assert!(page.text.matches("<svg").count() >= 3, "{}", page.text);
}

#[tokio::test]
async fn a_group_shows_its_criteria_versions_and_its_history_with_why() {
    let app = TestApp::spawn().await;
    app.create_user(&json!({"email": "kim@acme.example", "first_name": "Kim"}))
        .await;
    let group = app
        .post_json(
            &app.admin,
            "/api/groups",
            &json!({"name": "Phished", "criteria": {"event": {"type": "phished"}}}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    app.patch(
        &app.admin,
        &format!("/api/groups/{group}"),
        &json!({"criteria": {"event": {"type": "phished", "count": {"at_least": 2}}}}),
    )
    .await
    .expect(200);
    app.submit(&json!({"target_user": "kim@acme.example", "event_type": "phished"}))
        .await;
    app.submit(&json!({"target_user": "kim@acme.example", "event_type": "phished"}))
        .await;

    let mut visitor = signed_in(&app).await;
    let page = visitor.get(&format!("/console/groups/{group}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Criteria versions"), "{}", page.text);
    assert!(
        page.text.contains("&quot;at_least&quot;: 2"),
        "{}",
        page.text
    );
    let history = visitor
        .get(&format!("/console/groups/{group}/history"))
        .await;
    assert_eq!(history.status, 200, "{}", history.text);
    assert!(history.text.contains("Kim"), "{}", history.text);
    assert!(history.text.contains("joined"));
    assert!(
        history.text.contains("2 events of type phished"),
        "{}",
        history.text
    );
    assert_eq!(
        visitor.get("/console/groups/999999/history").await.status,
        404
    );
}

#[tokio::test]
async fn a_module_of_the_account_is_edited_with_its_quiz_kept() {
    let app = TestApp::spawn().await;
    let own = json!({"kind": "module", "slug": "vpn-basics", "title": "VPN basics",
        "minutes": 3, "pass_mark": 50, "body": "## Use it\n\nAlways.",
        "quiz": [{"question": "When?", "choices": ["Always", "Never"], "answer": 0,
                  "explanation": "Always."}]});
    let id = app
        .post_json(&app.admin, "/api/content", &own)
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let mut visitor = signed_in(&app).await;
    let form = visitor.get(&format!("/console/content/{id}/edit")).await;
    assert_eq!(form.status, 200, "{}", form.text);
    assert!(form.text.contains("value=\"VPN basics\""));
    assert!(
        form.text
            .contains("&quot;question&quot;: &quot;When?&quot;"),
        "{}",
        form.text
    );
    let token = csrf_of(&form.text);
    let quiz = serde_json::to_string(&own["quiz"]).unwrap();
    let fields = |title: &'static str, quiz: String, action: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("kind", "module".to_owned()),
            ("title", title.to_owned()),
            ("slug", "vpn-basics".to_owned()),
            ("minutes", "3".to_owned()),
            ("pass_mark", "50".to_owned()),
            ("body", "## Use it\n\nAlways, on any network.".to_owned()),
            ("quiz", quiz),
            ("action", action.to_owned()),
        ]
    };
    let path = format!("/console/content/{id}/edit");
    let bad = fields("VPN", "[{\"question\": 1}]".to_owned(), "save");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = visitor.post(&path, &bad).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.text.contains("quiz: a JSON list"),
        "{}",
        refused.text
    );

    let save = fields("VPN, always", quiz, "save");
    let save: Vec<(&str, &str)> = save.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = visitor.post(&path, &save).await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    let content = app
        .get(&app.admin, &format!("/api/content/{id}"))
        .await
        .expect(200);
    assert_eq!(content["data"]["title"], "VPN, always");
    assert_eq!(content["data"]["quiz"], own["quiz"]);
    assert_eq!(content["data"]["pass_mark"], 50);

    // Built-in content is read-only.
    let library = app.get(&app.admin, "/api/content").await.expect(200);
    let builtin = library["data"][0]["id"].as_i64().unwrap();
    let refused = visitor
        .get(&format!("/console/content/{builtin}/edit"))
        .await;
    assert_eq!(refused.status, 409);
}

#[tokio::test]
async fn a_campaigns_notifications_are_chosen_written_and_previewed() {
    let app = TestApp::spawn().await;
    app.create_user(&json!({"email": "kim@acme.example", "first_name": "Kim"}))
        .await;
    let content = app.get(&app.admin, "/api/content").await.expect(200);
    let module = content["data"][0]["id"].as_i64().unwrap();
    let campaign = app
        .post_json(
            &app.admin,
            "/api/campaigns",
            &json!({"name": "Annual", "content": [module], "groups": [0],
                    "relative_duration": "P30D"}),
        )
        .await
        .expect(201)["data"]["id"]
        .as_i64()
        .unwrap();
    let mut visitor = signed_in(&app).await;
    let path = format!("/console/campaigns/{campaign}/notices");
    let page = visitor.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("value=\"P1D\""),
        "the defaults: {}",
        page.text
    );
    let token = csrf_of(&page.text);

    let form = |subject: &'static str, language: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("language", language.to_owned()),
            ("enrolled", "on".to_owned()),
            ("completed", "on".to_owned()),
            ("reminders", "P3D, PT0S".to_owned()),
            ("enrolled.subject", subject.to_owned()),
            (
                "enrolled.body",
                "Please start {{ content_title }}.".to_owned(),
            ),
        ]
    };
    let bad = form("Hello {{ nope }}", "");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = visitor.post(&path, &bad).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("nope"), "{}", refused.text);
    assert!(refused.text.contains("value=\"Hello {{ nope }}\""));

    for (subject, language) in [
        ("Hi {{ first_name }}", ""),
        ("Bonjour {{ first_name }}", "fr"),
    ] {
        let good = form(subject, language);
        let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let saved = visitor.post(&path, &good).await;
        assert_eq!(saved.status, 303, "{}", saved.text);
    }
    let notices = app
        .get(&app.admin, &format!("/api/campaigns/{campaign}/notices"))
        .await
        .expect(200);
    let settings = &notices["data"]["settings"];
    assert_eq!(settings["completed"], true);
    assert_eq!(settings["past_due_manager"], false);
    assert_eq!(settings["reminders"].as_array().unwrap().len(), 2);
    let templates = notices["data"]["templates"].as_array().unwrap();
    assert_eq!(templates.len(), 2, "both languages kept: {templates:?}");

    let preview = visitor
        .post(
            &format!("{path}/preview"),
            &[("csrf", &token), ("email", "kim@acme.example")],
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert!(preview.text.contains("Hi Kim"), "{}", preview.text);
    let nobody = visitor
        .post(
            &format!("{path}/preview"),
            &[("csrf", &token), ("email", "nobody@acme.example")],
        )
        .await;
    assert_eq!(nobody.status, 422);
}
