//! `GET /api/metrics/success` from real events: daily counts, the go-live instant, the
//! baseline, target and change, time to remediate, the password-health proxy and a
//! pushed figure over it, validation, scopes and account isolation. The clock stands at
//! 2026-11-01T12:00Z unless a test moves it.

mod common;

use chrono::{DateTime, Utc};
use common::TestApp;
use serde_json::{Value, json};

const COMPROMISED: &str = "dashlane_user_typed_compromised_password";
const WEAK: &str = "dashlane_user_typed_weak_password";
const CHANGED: &str = "dashlane_user_changed_at_risk_password";
const DISMISSED_AI: &str = "dashlane_user_dismissed_ai_phishing_alert";
const DISMISSED_VAULT: &str = "dashlane_user_dismissed_vault_phishing_alert";
const HEALTH: &str = "dashlane_password_health_score";

fn ev(target: &str, event_type: &str, at: &str) -> Value {
    json!({"target_user": target, "event_type": event_type, "occurred_date": at})
}

/// `n` copies of an event, told apart by the minute.
fn many(n: usize, target: &str, event_type: &str, day: &str) -> Vec<Value> {
    (0..n)
        .map(|i| ev(target, event_type, &format!("{day}T10:{i:02}:00Z")))
        .collect()
}

/// Stores every event with `token`, checking none failed.
async fn post(app: &TestApp, token: &str, events: Vec<Value>) {
    let n = events.len();
    let answer = app.post_events(token, &json!(events)).await.expect(201);
    let id = answer["data"]["id"].as_str().expect("a request id");
    let status = app.get(token, &format!("/statuses/{id}")).await.expect(200)["data"].clone();
    assert_eq!(status["details"]["failures"], json!([]), "{status}");
    assert_eq!(status["details"]["events"].as_array().unwrap().len(), n);
}

async fn person(app: &TestApp, email: &str) -> i64 {
    app.create_user(&json!({"email": email})).await["id"]
        .as_i64()
        .unwrap()
}

/// The metrics with the admin token, unwrapped.
async fn metrics(app: &TestApp, token: &str, query: &str) -> Value {
    app.get(token, &format!("/api/metrics/success{query}"))
        .await
        .expect(200)["data"]
        .clone()
}

/// `(date, value)` of every day of a metric's series.
fn days(metric: &Value) -> Vec<(String, Value)> {
    metric["series"]
        .as_array()
        .expect("a series")
        .iter()
        .map(|d| (d["date"].as_str().unwrap().to_owned(), d["value"].clone()))
        .collect()
}

/// The day of a metric's series dated `date`.
fn day<'a>(metric: &'a Value, date: &str) -> &'a Value {
    metric["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == date)
        .unwrap_or_else(|| panic!("no {date} in {metric}"))
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

const METRICS: [&str; 4] = [
    "compromised_passwords",
    "time_to_remediate",
    "dismissed_phishing_alerts",
    "password_health",
];

#[tokio::test]
async fn an_account_without_integration_events_has_empty_series() {
    let app = TestApp::spawn().await;
    person(&app, "ana@acme.example").await;
    // Events of other senders do not make the integration live.
    post(
        &app,
        &app.admin,
        vec![ev("ana@acme.example", "usb_drive_plugged", "2026-10-20")],
    )
    .await;
    let data = metrics(&app, &app.admin, "").await;
    assert_eq!(data["from"], "2026-08-04");
    assert_eq!(data["to"], "2026-11-01");
    for key in [
        "live_since",
        "baseline_period",
        "current_period",
        "target_date",
    ] {
        assert_eq!(data[key], Value::Null, "{key}");
    }
    for name in METRICS {
        let metric = &data[name];
        assert_eq!(metric["series"], json!([]), "{name}");
        for key in [
            "baseline",
            "target",
            "current",
            "change_percent",
            "target_met",
        ] {
            assert_eq!(metric[key], Value::Null, "{name}.{key}");
        }
    }
    assert_eq!(data["password_health"]["target_change_percent"], 20.0);
    assert_eq!(
        data["compromised_passwords"]["target_change_percent"],
        -20.0
    );
}

#[tokio::test]
async fn daily_counts_with_baseline_target_and_change() {
    let app = TestApp::spawn().await;
    for email in ["ana@acme.example", "bo@acme.example", "cy@acme.example"] {
        person(&app, email).await;
    }
    let mut events = vec![
        // Earlier, but not an integration event.
        ev(
            "ana@acme.example",
            "usb_drive_plugged",
            "2026-09-15T00:00:00Z",
        ),
        // The first `dashlane_` event: live from here.
        ev(
            "ana@acme.example",
            "dashlane_user_received_vault_phishing_alert",
            "2026-10-01T08:00:00Z",
        ),
        // Unmatched (a device name), and counted.
        ev("ana-laptop", COMPROMISED, "2026-10-01T11:00:00Z"),
    ];
    // Baseline, 2026-10-01..07: 14 compromised passwords (2 a day), 7 dismissed alerts.
    events.extend(many(2, "ana@acme.example", COMPROMISED, "2026-10-01"));
    events.extend(many(5, "bo@acme.example", COMPROMISED, "2026-10-03"));
    events.extend(many(6, "cy@acme.example", COMPROMISED, "2026-10-07"));
    events.extend(many(4, "bo@acme.example", DISMISSED_AI, "2026-10-02"));
    events.extend(many(3, "cy@acme.example", DISMISSED_VAULT, "2026-10-06"));
    events.extend(many(9, "cy@acme.example", COMPROMISED, "2026-10-08"));
    // Current, 2026-10-26..11-01: 7 compromised (1 a day), 14 dismissed (2 a day).
    events.extend(many(3, "ana@acme.example", COMPROMISED, "2026-10-26"));
    events.extend(many(4, "bo@acme.example", COMPROMISED, "2026-11-01"));
    events.extend(many(8, "ana@acme.example", DISMISSED_AI, "2026-10-30"));
    events.extend(many(6, "ana-laptop", DISMISSED_VAULT, "2026-10-30"));
    post(&app, &app.admin, events).await;

    let data = metrics(&app, &app.admin, "").await;
    assert_eq!(data["live_since"], "2026-10-01T08:00:00.000Z");
    assert_eq!(
        data["baseline_period"],
        json!({"from": "2026-10-01", "to": "2026-10-07", "complete": true})
    );
    // Today is not over.
    assert_eq!(
        data["current_period"],
        json!({"from": "2026-10-26", "to": "2026-11-01", "complete": false})
    );
    assert_eq!(data["target_date"], "2027-01-01");

    let compromised = &data["compromised_passwords"];
    let series = days(compromised);
    // From the go-live day (after `from`, 2026-08-04) to today.
    assert_eq!(series.len(), 32);
    assert_eq!(series[0], ("2026-10-01".into(), json!(3.0)));
    assert_eq!(series[1], ("2026-10-02".into(), json!(0.0)));
    assert_eq!(series[2], ("2026-10-03".into(), json!(5.0)));
    assert_eq!(series[7], ("2026-10-08".into(), json!(9.0)));
    assert_eq!(series[31], ("2026-11-01".into(), json!(4.0)));
    assert_eq!(
        day(compromised, "2026-10-01"),
        &json!({"date": "2026-10-01", "value": 3.0, "samples": 3, "source": "events"})
    );
    assert_eq!(compromised["baseline"], 2.0);
    assert_eq!(compromised["target"], 1.6);
    assert_eq!(compromised["target_change_percent"], -20.0);
    assert_eq!(compromised["current"], 1.0);
    assert_eq!(compromised["change_percent"], -50.0);
    assert_eq!(compromised["target_met"], true);

    let dismissed = &data["dismissed_phishing_alerts"];
    assert_eq!(day(dismissed, "2026-10-02")["value"], 4.0);
    assert_eq!(day(dismissed, "2026-10-30")["value"], 14.0);
    assert_eq!(dismissed["baseline"], 1.0);
    assert_eq!(dismissed["target"], 0.8);
    assert_eq!(dismissed["current"], 2.0);
    assert_eq!(dismissed["change_percent"], 100.0);
    assert_eq!(dismissed["target_met"], false);

    // A shorter range: the baseline stays; current is the whole (4-day) series.
    let data = metrics(&app, &app.admin, "?from=2026-10-05&to=2026-10-08").await;
    let compromised = &data["compromised_passwords"];
    assert_eq!(
        days(compromised),
        [
            ("2026-10-05".into(), json!(0.0)),
            ("2026-10-06".into(), json!(0.0)),
            ("2026-10-07".into(), json!(6.0)),
            ("2026-10-08".into(), json!(9.0)),
        ]
    );
    assert_eq!(
        data["current_period"],
        json!({"from": "2026-10-05", "to": "2026-10-08", "complete": true})
    );
    assert_eq!(compromised["baseline"], 2.0);
    assert_eq!(compromised["current"], 3.75);
    assert_eq!(compromised["change_percent"], 87.5);
    assert_eq!(compromised["target_met"], false);

    // A range that ends before going live holds no day.
    let data = metrics(&app, &app.admin, "?from=2026-09-01&to=2026-09-30").await;
    assert_eq!(data["compromised_passwords"]["series"], json!([]));
    assert_eq!(data["current_period"], Value::Null);
    assert_eq!(data["compromised_passwords"]["baseline"], 2.0);
}

#[tokio::test]
async fn time_to_remediate_runs_from_a_compromised_password_to_its_change() {
    let app = TestApp::spawn().await;
    for email in ["ana@acme.example", "bo@acme.example", "cy@acme.example"] {
        person(&app, email).await;
    }
    post(
        &app,
        &app.admin,
        vec![
            // Ana: exposed from her first compromised password (in the baseline) until
            // her change 3.5 days later; the second sighting is the same exposure.
            ev("ana@acme.example", COMPROMISED, "2026-10-02T00:00:00Z"),
            ev("ana@acme.example", COMPROMISED, "2026-10-03T08:00:00Z"),
            // Someone else's change closes nothing of hers; nor does an unmatched one.
            ev("cy@acme.example", CHANGED, "2026-10-04T00:00:00Z"),
            ev("ana-laptop", CHANGED, "2026-10-04T01:00:00Z"),
            ev("ana@acme.example", CHANGED, "2026-10-05T12:00:00Z"),
            // Bo: 1.5 days, closed in the current period (2026-10-26..11-01).
            ev("bo@acme.example", COMPROMISED, "2026-10-27T06:00:00Z"),
            ev("bo@acme.example", CHANGED, "2026-10-28T18:00:00Z"),
            // Cy: still open, so not in any average.
            ev("cy@acme.example", COMPROMISED, "2026-10-29T00:00:00Z"),
        ],
    )
    .await;
    let data = metrics(&app, &app.admin, "").await;
    assert_eq!(data["live_since"], "2026-10-02T00:00:00.000Z");
    let ttr = &data["time_to_remediate"];
    assert_eq!(
        day(ttr, "2026-10-05"),
        &json!({"date": "2026-10-05", "value": 3.5, "samples": 1, "source": "events"})
    );
    assert_eq!(day(ttr, "2026-10-28")["value"], 1.5);
    let closed: Vec<String> = days(ttr)
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(date, _)| date)
        .collect();
    assert_eq!(closed, ["2026-10-05", "2026-10-28"]);
    assert_eq!(day(ttr, "2026-10-04")["samples"], 0);
    assert_eq!(ttr["baseline"], 3.5);
    assert_eq!(ttr["target"], 2.8);
    assert_eq!(ttr["current"], 1.5);
    // 100 × (1.5 − 3.5) / 3.5
    assert_eq!(ttr["change_percent"], -57.143);
    assert_eq!(ttr["target_met"], true);

    // Two exposures closed on one day are averaged; the baseline follows the exposures
    // that began in its days, whenever they closed (Cy's began on 10-29: not in it).
    post(
        &app,
        &app.admin,
        vec![
            ev("cy@acme.example", CHANGED, "2026-10-31T00:00:00Z"),
            ev("bo@acme.example", COMPROMISED, "2026-10-30T00:00:00Z"),
            ev("bo@acme.example", CHANGED, "2026-10-31T12:00:00Z"),
        ],
    )
    .await;
    let data = metrics(&app, &app.admin, "").await;
    let ttr = &data["time_to_remediate"];
    // Cy: 2 days; Bo: 1.5 days.
    assert_eq!(day(ttr, "2026-10-31")["value"], 1.75);
    assert_eq!(day(ttr, "2026-10-31")["samples"], 2);
    assert_eq!(ttr["baseline"], 3.5);
    // (1.5 + 2 + 1.5) / 3
    assert_eq!(ttr["current"], 1.667);
}

#[tokio::test]
async fn password_health_proxy_counts_people_at_risk_at_the_end_of_each_day() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for email in [
        "ana@acme.example",
        "bo@acme.example",
        "cy@acme.example",
        "di@acme.example",
    ] {
        ids.push(person(&app, email).await);
    }
    post(
        &app,
        &app.admin,
        vec![
            ev("ana@acme.example", WEAK, "2026-10-28T10:00:00Z"),
            ev("bo@acme.example", COMPROMISED, "2026-10-29T10:00:00Z"),
            ev("bo@acme.example", CHANGED, "2026-10-30T10:00:00Z"),
            ev("di@acme.example", WEAK, "2026-10-31T10:00:00Z"),
            // Unmatched: no person to count at risk.
            ev("someone-else", WEAK, "2026-10-29T10:00:00Z"),
        ],
    )
    .await;
    // Di leaves now (2026-11-01T12:00): she counts until then.
    app.delete(&app.admin, &format!("/api/users/{}", ids[3]))
        .await
        .expect(200);

    let data = metrics(&app, &app.admin, "").await;
    let health = &data["password_health"];
    let proxy = |value: f64, people: i64| json!({"value": value, "people": people});
    let seen: Vec<Value> = health["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["source"], "proxy", "{d}");
            json!({"value": d["value"], "people": d["samples"]})
        })
        .collect();
    assert_eq!(
        seen,
        [
            proxy(75.0, 4),   // 10-28: Ana at risk
            proxy(50.0, 4),   // 10-29: Ana and Bo
            proxy(75.0, 4),   // 10-30: Bo changed his
            proxy(50.0, 4),   // 10-31: Ana and Di
            proxy(66.667, 3), // 11-01: Di archived during the day
        ]
    );
    assert_eq!(data["live_since"], "2026-10-28T10:00:00.000Z");
    // The baseline's days so far: the same five.
    assert_eq!(
        data["baseline_period"],
        json!({"from": "2026-10-28", "to": "2026-11-01", "complete": false})
    );
    assert_eq!(health["baseline"], 63.333);
    assert_eq!(health["target"], 76.0);
    assert_eq!(health["target_change_percent"], 20.0);
    assert_eq!(health["current"], 63.333);
    assert_eq!(health["change_percent"], 0.0);
    assert_eq!(health["target_met"], false);

    // Ninety days on, Ana's unchanged weak password stops counting against her.
    app.clock.set(at("2027-02-01T00:00:00Z"));
    let data = metrics(&app, &app.admin, "?from=2027-01-25&to=2027-01-27").await;
    assert_eq!(
        days(&data["password_health"]),
        [
            ("2027-01-25".into(), json!(66.667)),
            ("2027-01-26".into(), json!(100.0)),
            ("2027-01-27".into(), json!(100.0)),
        ]
    );
    assert_eq!(
        data["baseline_period"],
        json!({"from": "2026-10-28", "to": "2026-11-03", "complete": true})
    );
}

#[tokio::test]
async fn a_pushed_health_figure_takes_the_place_of_the_proxy_for_a_week() {
    let app = TestApp::spawn().await;
    for email in ["ana@acme.example", "bo@acme.example", "cy@acme.example"] {
        person(&app, email).await;
    }
    let mut figures = vec![
        ev("ana@acme.example", WEAK, "2026-10-20T10:00:00Z"),
        // Pushed figures, under whatever name the sender uses.
        ev("dashlane-console", HEALTH, "2026-10-22T09:00:00Z"),
        ev("dashlane-console", HEALTH, "2026-10-23T09:00:00Z"),
        // On 10-24 the later of two stands, whichever was sent last.
        ev("dashlane-console", HEALTH, "2026-10-24T08:00:00Z"),
        ev("dashlane-console", HEALTH, "2026-10-24T07:00:00Z"),
    ];
    let descriptions = ["81.5", "not a figure", "90", "91"];
    for (event, description) in figures[1..].iter_mut().zip(descriptions) {
        event["description"] = json!(description);
    }
    post(&app, &app.admin, figures).await;

    let data = metrics(&app, &app.admin, "?from=2026-10-20").await;
    let health = &data["password_health"];
    let seen: Vec<(String, Value, Value, Value)> = health["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_owned(),
                d["value"].clone(),
                d["source"].clone(),
                d["samples"].clone(),
            )
        })
        .collect();
    let row = |date: &str, value: f64, source: &str, samples: i64| {
        (date.to_owned(), json!(value), json!(source), json!(samples))
    };
    assert_eq!(
        seen,
        [
            row("2026-10-20", 66.667, "proxy", 3),
            row("2026-10-21", 66.667, "proxy", 3),
            row("2026-10-22", 81.5, "pushed", 1),
            // The description that is not a figure is left out.
            row("2026-10-23", 81.5, "pushed", 0),
            row("2026-10-24", 90.0, "pushed", 2),
            row("2026-10-25", 90.0, "pushed", 0),
            row("2026-10-26", 90.0, "pushed", 0),
            row("2026-10-27", 90.0, "pushed", 0),
            row("2026-10-28", 90.0, "pushed", 0),
            row("2026-10-29", 90.0, "pushed", 0),
            row("2026-10-30", 90.0, "pushed", 0),
            // A week after the last figure, the proxy again.
            row("2026-10-31", 66.667, "proxy", 3),
            row("2026-11-01", 66.667, "proxy", 3),
        ]
    );
    // Baseline 10-20..26: (66.667 × 2 + 81.5 × 2 + 90 × 3) / 7.
    assert_eq!(health["baseline"], 80.905);
    assert_eq!(health["target"], 97.086);
}

#[tokio::test]
async fn bad_ranges_are_refused_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let cases = [
        ("?from=2026-13-01", "from"),
        ("?to=yesterday", "to"),
        ("?to=2026-2-1", "to"),
        ("?from=1969-12-31&to=1970-01-10", "from"),
        ("?from=2026-11-02&to=2026-11-01", "from"),
        // Without `to`, it is today (2026-11-01).
        ("?from=2026-11-02", "from"),
        // 367 days.
        ("?from=2025-10-31&to=2026-11-01", "from"),
    ];
    for (query, field) in cases {
        let answer = app
            .get(&app.admin, &format!("/api/metrics/success{query}"))
            .await;
        answer.expect_error(400, "bad_request");
        assert_eq!(answer.detail_fields(), [field], "{query}");
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(&format!("`{field}`")),
            "{query}: {message}"
        );
    }
    // 366 days, both counted, is the most.
    let data = metrics(&app, &app.admin, "?from=2025-11-01&to=2026-11-01").await;
    assert_eq!(
        (&data["from"], &data["to"]),
        (&json!("2025-11-01"), &json!("2026-11-01"))
    );
    // `to` alone: the 90 days ending with it.
    let data = metrics(&app, &app.admin, "?to=2026-06-30").await;
    assert_eq!(data["from"], "2026-04-02");

    app.send(app.request(reqwest::Method::GET, "/api/metrics/success", None))
        .await
        .expect_error(401, "unauthorized");
    let reader = app.token("reader", "account:read,events:read").await;
    app.get(&reader, "/api/metrics/success")
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn another_accounts_events_are_never_counted() {
    let app = TestApp::spawn().await;
    let (_, other) = app.other_account("other").await;
    person(&app, "ana@acme.example").await;
    app.post_json(&other, "/api/users", &json!({"email": "ana@acme.example"}))
        .await
        .expect(201);
    // The other account went live earlier and has more of everything.
    let mut theirs = vec![
        ev("ana@acme.example", COMPROMISED, "2026-09-01T00:00:00Z"),
        ev("ana@acme.example", CHANGED, "2026-09-03T00:00:00Z"),
        ev("ana@acme.example", WEAK, "2026-10-25T00:00:00Z"),
        ev("ana@acme.example", HEALTH, "2026-10-31T00:00:00Z"),
    ];
    theirs[3]["description"] = json!("12");
    theirs.extend(many(5, "ana@acme.example", COMPROMISED, "2026-10-20"));
    theirs.extend(many(5, "ana@acme.example", DISMISSED_AI, "2026-10-20"));
    post(&app, &other, theirs).await;

    // Nothing of ours yet.
    let ours = metrics(&app, &app.admin, "").await;
    assert_eq!(ours["live_since"], Value::Null);
    for name in METRICS {
        assert_eq!(ours[name]["series"], json!([]), "{name}");
    }

    post(
        &app,
        &app.admin,
        vec![
            ev("ana@acme.example", COMPROMISED, "2026-10-20T09:00:00Z"),
            ev("ana@acme.example", CHANGED, "2026-10-21T09:00:00Z"),
        ],
    )
    .await;
    let ours = metrics(&app, &app.admin, "").await;
    assert_eq!(ours["live_since"], "2026-10-20T09:00:00.000Z");
    assert_eq!(
        day(&ours["compromised_passwords"], "2026-10-20")["value"],
        1.0
    );
    assert_eq!(
        day(&ours["dismissed_phishing_alerts"], "2026-10-20")["value"],
        0.0
    );
    assert_eq!(ours["time_to_remediate"]["baseline"], 1.0);
    let health = &ours["password_health"];
    assert!(
        health["series"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["source"] == "proxy" && d["samples"] == 1),
        "{health}"
    );
    assert_eq!(day(health, "2026-10-20")["value"], 0.0);
    assert_eq!(day(health, "2026-10-31")["value"], 100.0);

    let theirs = metrics(&app, &other, "").await;
    assert_eq!(theirs["live_since"], "2026-09-01T00:00:00.000Z");
    assert_eq!(
        day(&theirs["compromised_passwords"], "2026-10-20")["value"],
        5.0
    );
    assert_eq!(theirs["time_to_remediate"]["baseline"], 2.0);
    assert_eq!(day(&theirs["password_health"], "2026-10-31")["value"], 12.0);
}
