//! Drives the notice benchmark (issue 4) against a running server; see bench/notices.sh.
//!
//! `latency RATE SECONDS`: registers a webhook on a receiver of its own, a smart group
//! (any `bench_probe` event in the last hour) and an auto-enrolling campaign on it, sends
//! a warm-up event (for `warmup@bench.example`) and waits for its webhook, then sends one
//! event per person at a fixed RATE for SECONDS and prints p50/p99/max of
//! (`enrollment.created` webhook received − event POST sent).
//!
//! `drain MAILFILE COUNT`: starts a campaign for all users and prints how long until the
//! SMTP sink's MAILFILE holds COUNT messages.
//!
//! Environment: BASE (server URL), ADMIN (an admin token), EVENTS (an events:write token);
//! EVENTS_BASES (optional): comma-separated URLs of several nodes, sent the timed events
//! in turn.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Arrivals = Arc<Mutex<HashMap<i64, Instant>>>;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name}"))
}

async fn api(client: &reqwest::Client, method: &str, path: &str, body: Value) -> Value {
    let url = format!("{}{path}", env("BASE"));
    let request = match method {
        "GET" => client.get(url),
        "PUT" => client.put(url).json(&body),
        _ => client.post(url).json(&body),
    };
    let response = request
        .bearer_auth(env("ADMIN"))
        .send()
        .await
        .expect("server up");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    assert!(status.is_success(), "{method} {path}: {status} {body}");
    body
}

async fn content_id(client: &reqwest::Client) -> Value {
    let list = api(client, "GET", "/api/content?per_page=500", json!({})).await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slug"] == "password-management")
        .expect("the library's password module")["id"]
        .clone()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn latency(rate: u64, seconds: u64) {
    let client = reqwest::Client::new();
    let arrivals: Arrivals = Arc::default();
    async fn receive(State(arrivals): State<Arrivals>, body: Bytes) -> &'static str {
        let at = Instant::now();
        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
        if body["event"] == "enrollment.created"
            && let Some(user) = body["data"]["user_id"].as_i64()
        {
            arrivals.lock().unwrap().entry(user).or_insert(at);
        }
        "ok"
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    api(
        &client,
        "POST",
        "/api/webhooks",
        json!({"url": hook, "events": ["enrollment.created"]}),
    )
    .await;
    let group = api(
        &client,
        "POST",
        "/api/groups",
        json!({"name": "bench probe", "criteria": {"event": {"type": "bench_probe", "within": "PT1H"}}}),
    )
    .await["data"]["id"]
        .clone();
    let module = content_id(&client).await;
    api(
        &client,
        "POST",
        "/api/campaigns",
        json!({"name": "bench probe", "content": [module], "groups": [group]}),
    )
    .await;
    // user emails -> ids, to match webhooks (which name the user id) to sends.
    let mut ids: HashMap<String, i64> = HashMap::new();
    let mut page = 1;
    loop {
        let users = api(
            &client,
            "GET",
            &format!("/api/users?per_page=500&page={page}"),
            json!({}),
        )
        .await;
        let data = users["data"].as_array().cloned().unwrap_or_default();
        if data.is_empty() {
            break;
        }
        for u in data {
            ids.insert(
                u["email"].as_str().unwrap().to_owned(),
                u["id"].as_i64().unwrap(),
            );
        }
        page += 1;
    }
    let total = (rate * seconds) as usize;
    assert!(
        ids.len() >= total,
        "import at least {total} people (have {})",
        ids.len()
    );

    // The first event after a group change loads the account's people into the engine
    // (the engine then stays current): a warm-up event pays that before the timed phase,
    // which measures the steady state, and its own figure is printed.
    let warm_up = Instant::now();
    let warm_user = ids["warmup@bench.example"];
    let response = client
        .post(format!("{}/events", env("BASE")))
        .bearer_auth(env("EVENTS"))
        .json(&json!({"target_user": "warmup@bench.example", "event_type": "bench_probe"}))
        .send()
        .await
        .expect("server up");
    assert_eq!(response.status().as_u16(), 201, "warm-up event refused");
    while !arrivals.lock().unwrap().contains_key(&warm_user) {
        assert!(
            warm_up.elapsed() < Duration::from_secs(60),
            "no warm-up webhook"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "   warm-up event (loads the engine): webhook after {:.1} ms",
        warm_up.elapsed().as_secs_f64() * 1000.0
    );

    let sent: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut tasks = tokio::task::JoinSet::new();
    // EVENTS_BASES: several nodes of one installation, sent events in turn.
    let bases: Vec<String> = std::env::var("EVENTS_BASES")
        .map(|list| list.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|_| vec![env("BASE")]);
    let token = env("EVENTS");
    for i in 0..total {
        let events_url = format!("{}/events", bases[i % bases.len()]);
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let email = format!("user{}@bench.example", i + 1);
        let user = ids[&email];
        let (client, url, token, sent) = (
            client.clone(),
            events_url.clone(),
            token.clone(),
            sent.clone(),
        );
        tasks.spawn(async move {
            let at = Instant::now();
            sent.lock().unwrap().insert(user, at);
            let post_start = at;
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"target_user": email, "event_type": "bench_probe"}))
                .send()
                .await;
            assert!(
                response.is_ok_and(|r| r.status().as_u16() == 201),
                "event refused"
            );
            (user, post_start.elapsed().as_secs_f64() * 1000.0)
        });
    }
    let mut posts: Vec<f64> = Vec::with_capacity(total);
    let mut post_of: HashMap<i64, f64> = HashMap::with_capacity(total);
    while let Some(took) = tasks.join_next().await {
        if let Ok((user, ms)) = took {
            posts.push(ms);
            post_of.insert(user, ms);
        }
    }
    posts.sort_by(f64::total_cmp);
    let send_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = sent.lock().unwrap();
    let arrivals = arrivals.lock().unwrap();
    let mut lags: Vec<f64> = sent
        .iter()
        .filter_map(|(user, at)| {
            arrivals
                .get(user)
                .map(|r| r.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    // TIMELINE=file: one line per event (sent at, ms since the first; POST took; webhook
    // after), to see when slow ones happen and line them up with the server's log.
    if let Ok(path) = std::env::var("TIMELINE") {
        let mut rows: Vec<(f64, f64, f64)> = sent
            .iter()
            .map(|(user, at)| {
                (
                    at.duration_since(start).as_secs_f64() * 1000.0,
                    post_of.get(user).copied().unwrap_or(f64::NAN),
                    arrivals
                        .get(user)
                        .map_or(f64::NAN, |r| r.duration_since(*at).as_secs_f64() * 1000.0),
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let text: String = std::iter::once(format!("# started at unix ms {started_unix_ms}\n"))
            .chain(
                rows.iter()
                    .map(|(at, post, lag)| format!("{at:.1}\t{post:.1}\t{lag:.1}\n")),
            )
            .collect();
        std::fs::write(&path, text).expect("TIMELINE is writable");
    }
    println!(
        "   sent {total} events in {send_secs:.1} s ({:.0}/s); webhooks received {}",
        total as f64 / send_secs,
        lags.len()
    );
    println!(
        "   event POST answered 201 after: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&posts, 50.0),
        percentile(&posts, 99.0)
    );
    println!(
        "   event POST sent -> enrollment.created webhook received: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lags, 50.0),
        percentile(&lags, 99.0),
        lags.last().copied().unwrap_or(f64::NAN)
    );
}

async fn drain(mailfile: &str, count: usize) {
    let client = reqwest::Client::new();
    let policy = {
        let list = api(&client, "GET", "/api/content?kind=policy", json!({})).await;
        list["data"][0]["id"].clone()
    };
    let lines = || {
        std::fs::read_to_string(mailfile)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let before = lines();
    // The campaign starts a few seconds from now, so its own HTML text is set before
    // it enrols anyone; the clock runs from its start.
    let lead = Duration::from_secs(3);
    let starts = chrono::Utc::now() + chrono::Duration::from_std(lead).unwrap();
    let created = api(
        &client,
        "POST",
        "/api/campaigns",
        json!({"name": "bench drain", "content": [policy], "groups": [0],
               "start_date": starts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
    )
    .await;
    let campaign = created["data"]["id"].as_i64().expect("a campaign id");
    api(
        &client,
        "PUT",
        &format!("/api/campaigns/{campaign}/notices"),
        json!({"templates": [{"notice": "enrolled",
            "subject": "{{ first_name }}, a policy to read: {{ content_title }}",
            "body": "Hello **{{ first_name }}**,\n\n{% if reason %}{{ reason }}\n\n{% endif %}\
                     <p style=\"color:#52606d\">Please read and acknowledge \
                     <em>{{ content_title }}</em> ({{ campaign }}){% if due %} by {{ due }}{% endif %}.</p>\n\n\
                     | what | when |\n|---|---|\n| {{ content_title }} | {{ due or 'any time' }} |\n\n\
                     Questions? Reply to this email.",
            "button": "Read the policy"}]}),
    )
    .await;
    let wait = starts - chrono::Utc::now();
    tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
    let start = Instant::now();
    let enrolled = loop {
        let got = api(
            &client,
            "GET",
            &format!("/api/campaigns/{campaign}"),
            json!({}),
        )
        .await;
        if got["data"]["status"] != "Created" || start.elapsed() > Duration::from_secs(30) {
            break got["data"]["enrollments"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let queued_ms = start.elapsed().as_millis();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Instant::now();
    while lines() - before < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last.elapsed() > Duration::from_secs(5) {
            eprintln!("   … {} of {count} delivered", lines() - before);
            last = Instant::now();
        }
    }
    println!(
        "   {} enrolments queued {} emails (the campaign's own HTML text) in {queued_ms} ms; {} delivered to the SMTP server in {:.1} s",
        enrolled,
        count,
        lines() - before,
        start.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("latency") => {
            latency(args[1].parse().unwrap(), args[2].parse().unwrap()).await;
        }
        Some("drain") => drain(&args[1], args[2].parse().unwrap()).await,
        _ => eprintln!("usage: notice_bench latency RATE SECONDS | drain MAILFILE COUNT"),
    }
}
