//! Drives the Reporting API benchmark (issue 5) against a running server; see
//! bench/reporting.sh.
//!
//! 1. Reads every enrolment page by page, 500 a page, one request after another as a
//!    compliance tool would; prints the total, and the first, median and last page's time.
//! 2. Reads them all again as one NDJSON stream; prints the time, and the server's peak
//!    RSS while it streamed (sampled from /proc every 10 ms).
//!
//! Environment: BASE (server URL), TOKEN (an `enrollments:read` token), SERVER_PID.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name}"))
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let base = env("BASE");
    let token = env("TOKEN");
    let pid = env("SERVER_PID");
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/training/enrollments");

    // 1. Page by page.
    let mut pages: Vec<Duration> = Vec::new();
    let mut rows = 0usize;
    let started = Instant::now();
    for page in 1.. {
        let sent = Instant::now();
        let response = client
            .get(&url)
            .query(&[("page", page.to_string()), ("per_page", "500".to_owned())])
            .bearer_auth(&token)
            .send()
            .await
            .expect("server up");
        assert!(
            response.status().is_success(),
            "page {page}: {}",
            response.status()
        );
        let body: Vec<serde_json::Value> = response.json().await.expect("a JSON array");
        pages.push(sent.elapsed());
        rows += body.len();
        if body.len() < 500 {
            break;
        }
    }
    let total = started.elapsed();
    let mut sorted = pages.clone();
    sorted.sort();
    // The last full page: the final request may be an empty or short one.
    let last_full = pages.len().saturating_sub(2);
    println!(
        "pages: {rows} enrolments in {} pages of 500 in {:.2} s; first page {:.1} ms, median {:.1} ms, last full page (#{}) {:.1} ms, final request {:.1} ms",
        pages.len(),
        total.as_secs_f64(),
        ms(pages[0]),
        ms(sorted[sorted.len() / 2]),
        last_full + 1,
        ms(pages[last_full]),
        ms(*pages.last().expect("at least one page")),
    );

    // 2. One NDJSON stream, with the server's RSS sampled meanwhile.
    let before = rss_kib(&pid);
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), pid.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(&pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let started = Instant::now();
    let mut response = client
        .get(&url)
        .header("Accept", "application/x-ndjson")
        .bearer_auth(&token)
        .send()
        .await
        .expect("server up");
    assert!(
        response.status().is_success(),
        "stream: {}",
        response.status()
    );
    let mut lines = 0usize;
    let mut bytes = 0usize;
    while let Some(chunk) = response.chunk().await.expect("the stream reads to its end") {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        bytes += chunk.len();
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");
    println!(
        "ndjson: {lines} enrolments ({:.0} MiB) in {:.2} s; server RSS {:.0} MiB before, peak {:.0} MiB during",
        bytes as f64 / 1048576.0,
        took.as_secs_f64(),
        before as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
    );
    assert_eq!(
        lines, rows,
        "the stream and the pages hold the same enrolments"
    );
}
