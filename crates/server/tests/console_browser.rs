//! The console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), through the flows of the source walkthroughs: sign in, build a smart
//! group with its preview, an auto-enrolling campaign on it, an event that enrols a
//! person, their timeline and the why, an unmatched identity mapped, a sender's key,
//! evidence exported and verified. Each page's screenshot is written to `target/console-screenshots/<engine>/`.
//!
//! The harness installs what it needs: Debian's `chromium` and `chromium-driver`, when
//! `/usr/bin/chromedriver` is missing.

mod common;

use common::TestApp;
use common::console::admin_with_password;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const COMPROMISED: &str = "dashlane_user_typed_compromised_password";

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        if !std::path::Path::new(CHROMEDRIVER).exists() {
            let installed = Command::new("sh")
                .args([
                    "-c",
                    "apt-get install -y -q chromium chromium-driver >/dev/null \
                     || (apt-get update -q >/dev/null && \
                         apt-get install -y -q chromium chromium-driver >/dev/null)",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                installed,
                "could not install Chromium (apt-get install chromium chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go, one folder per engine.
fn screenshots() -> PathBuf {
    let engine = std::env::var("COACHLOOP_TEST_ENGINE").unwrap_or_else(|_| "sqlite".to_owned());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/console-screenshots")
        .join(engine);
    // This run's screenshots only.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

struct Walk {
    browser: Client,
    base: String,
    shots: PathBuf,
    taken: usize,
}

impl Walk {
    async fn open(&mut self, path: &str) {
        self.browser
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("the page opens");
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.browser.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.browser
            .find(Locator::Css(css))
            .await
            .expect(css)
            .click()
            .await
            .expect("click");
    }

    /// Waits for a page with a preview section, then keeps its screenshot.
    async fn arrived_any(&mut self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self
            .browser
            .find(Locator::Css("section.preview"))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "no preview on the page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.keep(name).await
    }

    async fn keep(&mut self, name: &str) -> String {
        self.taken += 1;
        let png = self.browser.screenshot().await.expect("a screenshot");
        let file = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&file, png).expect("write the screenshot");
        self.browser.source().await.expect("the page source")
    }

    /// Waits until the page's main heading is `title`, then keeps its screenshot.
    async fn arrived(&mut self, title: &str, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(h1) = self.browser.find(Locator::Css("h1")).await
                && h1.text().await.is_ok_and(|t| t == title)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never reached `{title}`; at {:?}: {}",
                self.browser.current_url().await.map(|u| u.to_string()),
                self.browser.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.keep(name).await
    }
}

#[tokio::test]
async fn an_administrator_walks_the_console() {
    let app = TestApp::spawn().await;
    admin_with_password(
        &app,
        app.account,
        "ada@acme.example",
        "a long enough password",
    )
    .await;
    let person = app
        .create_user(&json!({"email": "kim@acme.example", "first_name": "Kim",
                             "last_name": "Lee", "department": "Sales"}))
        .await["id"]
        .as_i64()
        .unwrap();
    // The event type exists (an earlier event named it), so the builder offers it.
    app.submit(&json!({"target_user": "someone.else@acme.example", "event_type": COMPROMISED}))
        .await;

    let driver = Driver::start();
    let shots = screenshots();
    let mut walk = Walk {
        browser: driver.browser().await,
        base: app.base.clone(),
        shots: shots.clone(),
        taken: 0,
    };

    // Sign in: the console sends a visitor without a session to the form, and back.
    walk.open("/console/people").await;
    walk.arrived("Sign in", "sign-in").await;
    walk.fill("#email", "ada@acme.example").await;
    walk.fill("#password", "a long enough password").await;
    walk.click("button[type=submit]").await;
    walk.arrived("People", "people").await;

    // Groups → New smart group: the builder, its preview, then saving.
    walk.open("/console/groups").await;
    walk.arrived("Groups", "groups").await;
    walk.click("a[href='/console/groups/new']").await;
    walk.arrived("New smart group", "builder").await;
    walk.fill("#name", "Typed a compromised password").await;
    walk.browser
        .find(Locator::Css("#r0_type"))
        .await
        .expect("the event type list")
        .select_by_value(COMPROMISED)
        .await
        .expect("choose the type");
    walk.fill("#r0_count", "1").await;
    walk.browser
        .find(Locator::Css("#r0_within"))
        .await
        .expect("the time frame list")
        .select_by_value("P30D")
        .await
        .expect("choose the frame");
    walk.click("button[value=preview]").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while walk.browser.find(Locator::Css("#preview")).await.is_err() {
        assert!(Instant::now() < deadline, "no preview");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = walk.arrived("New smart group", "builder-preview").await;
    assert!(page.contains("people match now"), "{page}");
    assert!(page.contains("<svg"), "the 90-day chart: {page}");
    walk.click("button[value=save]").await;
    walk.arrived("Typed a compromised password", "group-saved")
        .await;
    let url = walk.browser.current_url().await.expect("url").to_string();
    let group: i64 = url
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .expect("the group's id");

    // Training → a campaign on the group that enrols joiners automatically.
    walk.open("/console/campaigns/new").await;
    walk.arrived("New campaign", "campaign-form").await;
    walk.fill("#name", "Passwords, just in time").await;
    walk.click("#content option").await;
    walk.browser
        .find(Locator::Css("#groups"))
        .await
        .expect("the group list")
        .select_by_value(&group.to_string())
        .await
        .expect("choose the group");
    walk.click("form[action='/console/campaigns/new'] button[type=submit]")
        .await;
    walk.arrived("Passwords, just in time", "campaign").await;
    let campaign_url = walk.browser.current_url().await.expect("url").to_string();

    // An event over the API: the person joins the smart group at once.
    let event: Value = json!({"target_user": "kim@acme.example", "event_type": COMPROMISED,
                              "description": "logged in to Dashlane", "risk_level": 8});
    app.submit(&event).await;
    walk.open(&format!("/console/groups/{group}")).await;
    let page = walk.arrived("Typed a compromised password", "group").await;
    assert!(
        page.contains("kim@acme.example"),
        "the member shows: {page}"
    );

    // … and is enrolled in the campaign at the same instant.
    walk.browser
        .goto(&campaign_url)
        .await
        .expect("the campaign");
    let page = walk
        .arrived("Passwords, just in time", "campaign-enrolled")
        .await;
    assert!(page.contains("Kim Lee"), "{page}");
    assert!(
        page.contains(&format!(
            "joined Typed a compromised password: 1 event of type {COMPROMISED}"
        )),
        "why they were enrolled: {page}"
    );
    walk.browser
        .goto(&format!("{}/console/groups/{group}", app.base))
        .await
        .expect("the group");
    walk.arrived("Typed a compromised password", "group-again")
        .await;

    // Their page: the timeline, and why they joined.
    walk.click(&format!("a[href='/console/people/{person}']"))
        .await;
    let page = walk.arrived("Kim Lee", "person").await;
    assert!(page.contains(COMPROMISED), "{page}");
    assert!(
        page.contains(&format!("1 event of type {COMPROMISED}")),
        "the why: {page}"
    );
    assert!(page.contains("logged in to Dashlane"), "{page}");

    // Search finds them.
    walk.open("/console/people").await;
    walk.arrived("People", "people-list").await;
    walk.fill("input[name=q]", "kim").await;
    walk.click("form[role=search] button").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !walk
        .browser
        .current_url()
        .await
        .is_ok_and(|u| u.as_str().contains("q=kim"))
    {
        assert!(Instant::now() < deadline, "the search did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = walk.arrived("People", "people-search").await;
    assert!(page.contains("kim@acme.example"));

    // An identity that matches nobody is mapped to Kim through the inbox's form.
    app.submit(&json!({"target_user": "KIOSK-7", "event_type": COMPROMISED}))
        .await;
    walk.open("/console/unmatched").await;
    let page = walk.arrived("Unmatched identities", "unmatched").await;
    assert!(page.contains("KIOSK-7"), "{page}");
    walk.fill("#map-0", "kim@acme.example").await;
    walk.click("form[action='/console/unmatched'] button").await;
    let page = walk.arrived("Kim Lee", "mapped").await;
    assert!(page.contains("KIOSK-7"), "the alias shows: {page}");

    // Content: the library, and a piece as learners see it.
    walk.open("/console/content").await;
    walk.arrived("Content", "content").await;
    walk.click("td a[href^='/console/content/']").await;
    let page = walk.arrived_any("content-piece").await;
    assert!(page.contains("As learners see it"), "{page}");

    // Integrations: a sender's key, shown once, Pending until its first event.
    walk.open("/console/integrations").await;
    walk.arrived("Integrations", "integrations").await;
    walk.click("#tokens summary").await;
    walk.fill("#token-name", "Dashlane").await;
    walk.click("form[action='/console/integrations/tokens'] button[type=submit]")
        .await;
    let page = walk.arrived("Token created", "token-created").await;
    assert!(page.contains("shown this once"), "{page}");
    walk.open("/console/integrations").await;
    let page = walk.arrived("Integrations", "integrations-pending").await;
    assert!(page.contains("Pending"), "{page}");

    // Compliance: enable SOC 2, export evidence, verify the snapshots.
    walk.open("/console/compliance").await;
    walk.arrived("Compliance", "compliance-empty").await;
    walk.click("button[aria-label^='Enable SOC 2']").await;
    let page = walk.arrived("Compliance", "compliance").await;
    assert!(page.contains("CC1.4"), "{page}");
    walk.click("form[action='/console/compliance/evidence'] button")
        .await;
    // The export downloads; the page lists the snapshot it was kept as.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        walk.open("/console/compliance").await;
        let page = walk.arrived("Compliance", "compliance-exported").await;
        if page.contains("/console/compliance/evidence/snapshots/") {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    walk.click("form[action='/console/compliance/verify'] button")
        .await;
    let page = walk.arrived("Evidence verified", "evidence-verified").await;
    assert!(page.contains("Verified: all 1 snapshots"), "{page}");

    // The dashboard, then signing out.
    walk.open("/console/").await;
    walk.arrived("Dashboard", "dashboard").await;
    walk.click("header form[action='/console/sign-out'] button")
        .await;
    walk.arrived("Sign in", "signed-out").await;
    walk.open("/console/").await;
    walk.arrived("Sign in", "after-sign-out").await;

    walk.browser.close().await.expect("close the browser");
    eprintln!("console screenshots: {}", shots.display());
}
