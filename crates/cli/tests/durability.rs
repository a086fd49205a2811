//! A 201 from `POST /events` means the event is on disk: killing the server with SIGKILL
//! while events stream in loses none that were acknowledged (on either engine).

mod common;

use common::{PATIENCE, Server, TestData, create_token, stored_external_ids};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Concurrent senders.
const SENDERS: usize = 8;
/// Every this many requests a sender posts a bulk array instead of one event.
const BULK_EVERY: usize = 4;
const BULK_SIZE: usize = 50;
/// The server is killed once this many requests have been acknowledged, so that it dies
/// in the middle of the stream with requests in flight.
const KILL_AFTER_ACKS: usize = 300;

/// What one sender saw.
#[derive(Default)]
struct Sent {
    /// external_ids of events in requests answered 201.
    acknowledged: Vec<String>,
    /// Answers other than 201 (none are expected).
    unexpected: Vec<(StatusCode, String)>,
}

fn event(external_id: &str) -> Value {
    json!({
        "target_user": "ana.lima@acme.example",
        "event_type": "crash_test",
        "external_id": external_id,
        "source": "durability test",
        "risk_level": 3,
    })
}

/// Posts events until the server stops answering.
async fn sender(id: usize, url: String, token: String, acks: Arc<AtomicUsize>) -> Sent {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut sent = Sent::default();
    for request in 0.. {
        let ids: Vec<String> = if request % BULK_EVERY == BULK_EVERY - 1 {
            (0..BULK_SIZE)
                .map(|item| format!("s{id}-r{request}-i{item}"))
                .collect()
        } else {
            vec![format!("s{id}-r{request}")]
        };
        let body = if ids.len() == 1 {
            event(&ids[0])
        } else {
            Value::Array(ids.iter().map(|x| event(x)).collect())
        };
        let response = match client
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
        {
            Ok(response) => response,
            // The server is gone (connection refused or reset).
            Err(_) => break,
        };
        let status = response.status();
        // A 201 counts only once its body has arrived in full.
        let Ok(text) = response.text().await else {
            break;
        };
        if status != StatusCode::CREATED {
            sent.unexpected.push((status, text));
            break;
        }
        sent.acknowledged.extend(ids);
        acks.fetch_add(1, Ordering::SeqCst);
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill() {
    let data = TestData::new().await;
    let server = Server::start(&data).await;
    let token = create_token(&data, "default", "crash", "events:write,events:read").await;

    let acks = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|id| {
            tokio::spawn(sender(
                id,
                server.url("/events"),
                token.clone(),
                acks.clone(),
            ))
        })
        .collect();

    // Kill once enough requests are acknowledged, with requests still in flight (or
    // as soon as every sender has given up, which the assertions below report).
    let waited = tokio::time::timeout(PATIENCE, async {
        while acks.load(Ordering::SeqCst) < KILL_AFTER_ACKS
            && !senders.iter().all(|s| s.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "only {} requests acknowledged in {PATIENCE:?}",
        acks.load(Ordering::SeqCst)
    );
    server.kill().await;

    let mut acknowledged = HashSet::new();
    let mut unexpected = Vec::new();
    for sender in senders {
        let sent = sender.await.expect("sender task");
        acknowledged.extend(sent.acknowledged);
        unexpected.extend(sent.unexpected);
    }
    assert!(
        unexpected.is_empty(),
        "the server answered something other than 201: {unexpected:?}"
    );
    assert!(
        acknowledged.len() >= KILL_AFTER_ACKS,
        "too few acknowledged events to prove anything: {}",
        acknowledged.len()
    );

    let server = Server::start(&data).await;
    let client = reqwest::Client::new();
    let stored = stored_external_ids(&client, &token, &server).await;
    let mut lost: Vec<&String> = acknowledged.difference(&stored).collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events are missing after the restart, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(10)]
    );
}
