//! `coachloop demo`: a throw-away organisation, tokens, the server, and a simulated
//! password manager whose audit log `coachloop forward`'s code delivers to the server's
//! own User Event API over HTTP.

use crate::config::{Config, Overrides};
use crate::{data_flag, open_store, shutdown_signal, without_password};
use anyhow::Context;
use clap::Args;
use coachloop_core::catalog::{self, CatalogEntry, STARTER_PLAYS};
use coachloop_core::criteria::Criteria;
use coachloop_core::duration::IsoDuration;
use coachloop_core::identity::Email;
use coachloop_core::ids::{AccountId, GroupId};
use coachloop_core::scope::Scopes;
use coachloop_core::user::UserChanges;
use coachloop_forwarder::deliver::Target;
use coachloop_forwarder::input::Input;
use coachloop_forwarder::mapping::Mapping;
use coachloop_forwarder::outbox::Outbox;
use coachloop_forwarder::status::Status;
use coachloop_store::admins::NewAdmin;
use coachloop_store::campaigns::{Due, NewCampaign};
use coachloop_store::content::ContentFilter;
use coachloop_store::groups::{GroupFilter, NewGroup};
use coachloop_store::tokens::NewToken;
use coachloop_store::{Page, Store};
use indicatif::{ProgressBar, ProgressDrawTarget};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Keep the demo's data here instead of a throw-away directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep the demo's data in this database instead (e.g. postgres://host/coachloop).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// People in the seeded organisation.
    #[arg(long, default_value_t = 300)]
    pub people: usize,
    /// Events sent per second.
    #[arg(long, default_value_t = 4.0)]
    pub rate: f64,
    /// Seed of the simulation, for a repeatable run.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

const DOMAIN: &str = "acme.example";

const DEPARTMENTS: &[(&str, &[&str])] = &[
    (
        "Engineering",
        &[
            "Software Engineer",
            "Senior Software Engineer",
            "Site Reliability Engineer",
            "Engineering Manager",
        ],
    ),
    (
        "Sales",
        &[
            "Account Executive",
            "Sales Development Rep",
            "Sales Engineer",
            "VP of Sales",
        ],
    ),
    (
        "Marketing",
        &["Content Marketer", "Growth Marketer", "Designer"],
    ),
    (
        "Finance",
        &["Accountant", "Financial Analyst", "Controller"],
    ),
    ("People", &["Recruiter", "People Partner", "Office Manager"]),
    (
        "Support",
        &[
            "Support Engineer",
            "Customer Success Manager",
            "Support Lead",
        ],
    ),
    ("Legal", &["Counsel", "Paralegal"]),
    (
        "Operations",
        &["Operations Analyst", "IT Administrator", "Procurement Lead"],
    ),
];

const LOCATIONS: &[&str] = &["Lisbon", "Berlin", "Toronto", "Austin", "Remote"];

const FIRST: &[&str] = &[
    "Ana", "Bruno", "Chloe", "Dmitri", "Elena", "Farah", "Gustavo", "Hana", "Ivan", "Jade", "Kofi",
    "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Samir", "Tara", "Uma", "Victor",
    "Wen", "Ximena", "Yusuf", "Zoe", "Aiko", "Ben", "Carla", "Diego", "Emma", "Felix", "Grace",
    "Hugo", "Iris", "Jonas", "Kira", "Leo", "Maya", "Noah",
];

const LAST: &[&str] = &[
    "Lima", "Schmidt", "Dubois", "Petrov", "Rossi", "Khan", "Silva", "Sato", "Novak", "Moreau",
    "Mensah", "Weber", "Garcia", "Haddad", "Farouk", "Patel", "Murphy", "Costa", "Aziz", "Singh",
    "Larsen", "Okafor", "Chen", "Lopez", "Demir", "Walsh", "Tanaka", "Fischer", "Romero", "Ortiz",
];

/// A simulated person.
struct Person {
    email: String,
    device: String,
    /// How prone to risky behaviour (a few people cause most events).
    risk: f64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::init_logging("warn");
    let mut config = Config::load(
        None,
        &Overrides {
            data_dir: args.data_dir.clone(),
            database_url: args.database_url.clone(),
            ..Overrides::default()
        },
    )?;
    // Unless told where to keep the data (a flag, or a database URL from the config's
    // other layers), the demo's data is thrown away with it.
    let _tmp = if args.data_dir.is_none() && config.database_url.is_none() {
        let tmp = tempfile::Builder::new()
            .prefix("coachloop-demo-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        config.data_dir = tmp.path().to_owned();
        Some(tmp)
    } else {
        None
    };
    let store = open_store(&config).await?;
    let account = store
        .account_by_name(coachloop_store::DEFAULT_ACCOUNT)
        .await?
        .context("the default account is missing")?
        .id;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let people = seed_people(&store, account, args.people, &mut rng).await?;
    let groups = ensure_starter_groups(&store, account).await?;
    ensure_starter_campaigns(&store, account, &groups).await?;
    ensure_compliance(&store, account).await?;
    let admin = fresh_token(&store, account, "demo-admin", "admin").await?;
    let events = fresh_token(&store, account, "demo-events", "events:write,events:read").await?;
    let report = fresh_token(&store, account, "demo-reporting", REPORTING_SCOPES).await?;
    // A second sender not set up yet: the console's Integrations page shows it Pending.
    fresh_token(
        &store,
        account,
        "1Password (not activated yet)",
        "events:write",
    )
    .await?;
    let console_password = console_admin(&store, account).await?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; pass another address with --listen",
                args.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(coachloop_server::serve(
        store.clone(),
        config.server()?,
        listener,
        async move {
            let _ = server_stopped.await;
        },
    ));

    print_compliance(&store, account).await?;
    print_intro(
        &config,
        addr,
        [&admin, &events, &report],
        &console_password,
        &people[0],
        &groups,
    );
    // The simulated password manager writes its audit log; `coachloop forward`'s own
    // code delivers it to this server, as it would from a real export.
    let forward_dir = tempfile::Builder::new()
        .prefix("coachloop-demo-forward-")
        .tempdir()
        .context("cannot create a directory for the demo's audit log")?;
    let audit_log = forward_dir.path().join("audit.jsonl");
    let state_dir = forward_dir.path().join("state");
    let options = coachloop_forwarder::Options {
        target: Target::new(Some(&format!("http://{addr}")), None, events.clone())?,
        input: Input::File {
            path: audit_log.clone(),
            follow: true,
        },
        mapping: Mapping::default_mapping(),
        state_dir: state_dir.clone(),
        // The simulated log replays some records from months ago: send them all.
        backfill_since: Some(0),
        listener: None,
        parallel: 1,
    };
    let forwarder = tokio::spawn(coachloop_forwarder::run(options, std::future::pending()));
    println!(
        "Writing a simulated Dashlane audit log to {}; coachloop forward delivers it.\n",
        audit_log.display()
    );
    let sender = tokio::spawn(stream_events(
        format!("http://{addr}"),
        Tokens { admin },
        Audit {
            log: audit_log,
            state: state_dir,
        },
        people,
        args.rate,
        rng,
    ));
    shutdown_signal().await;
    sender.abort();
    forwarder.abort();
    let _ = stop_server.send(());
    server.await??;
    println!("demo stopped");
    Ok(())
}

/// The frameworks the demo shows: SOC 2 and ISO/IEC 27001 (enabling one twice does
/// nothing).
async fn ensure_compliance(store: &Store, account: AccountId) -> anyhow::Result<()> {
    for framework in ["soc2", "iso27001"] {
        store.enable_framework(account, framework).await?;
    }
    Ok(())
}

/// Where the enabled controls stand, and a few people who are not compliant, and why.
async fn print_compliance(store: &Store, account: AccountId) -> anyhow::Result<()> {
    println!("Compliance (SOC 2 and ISO/IEC 27001 enabled):");
    for c in store.compliance_controls(account).await? {
        println!(
            "  {:<9} {:<6} {:<8} {} compliant, {} at risk, {} non-compliant — {}",
            c.control.framework,
            c.control.id,
            c.verdict.as_str(),
            c.counts.compliant,
            c.counts.at_risk,
            c.counts.non_compliant,
            c.control.title
        );
    }
    let filter = coachloop_store::compliance::PeopleFilter {
        status: Some(coachloop_core::compliance::Status::NonCompliant),
        ..Default::default()
    };
    let (failing, count) = store
        .compliance_people(account, &filter, coachloop_store::Page::new(1, 3))
        .await?;
    println!("Not compliant: {count} standings, for example:");
    for p in failing {
        println!("  {} ({}): {}", p.email, p.kind, p.reason);
    }
    println!();
    Ok(())
}

/// Creates (or, on a reused data directory, updates) the organisation.
async fn seed_people(
    store: &Store,
    account: AccountId,
    count: usize,
    rng: &mut StdRng,
) -> anyhow::Result<Vec<Person>> {
    let progress = if std::io::stderr().is_terminal() {
        ProgressBar::new(count as u64).with_message("seeding people")
    } else {
        ProgressBar::with_draw_target(Some(count as u64), ProgressDrawTarget::hidden())
    };
    let mut people = Vec::with_capacity(count);
    let mut rows = Vec::with_capacity(count);
    let mut heads: Vec<(String, String)> = Vec::new();
    for i in 0..count {
        let first = FIRST[i % FIRST.len()];
        let last = LAST[(i / FIRST.len() + i * 7) % LAST.len()];
        let n = i / (FIRST.len() * LAST.len());
        let local = if n == 0 {
            format!("{}.{}", first.to_lowercase(), last.to_lowercase())
        } else {
            format!("{}.{}{n}", first.to_lowercase(), last.to_lowercase())
        };
        let email = format!("{local}@{DOMAIN}");
        let device = format!(
            "{}{}-laptop",
            &first[..1].to_lowercase(),
            last.to_lowercase()
        ) + &if i >= FIRST.len() {
            format!("{i}")
        } else {
            String::new()
        };
        let (department, titles) = DEPARTMENTS[i % DEPARTMENTS.len()];
        let head = i < DEPARTMENTS.len();
        let title = if head {
            titles[titles.len() - 1]
        } else {
            titles[rng.gen_range(0..titles.len())]
        };
        if head {
            heads.push((format!("{first} {last}"), email.clone()));
        }
        let (manager_name, manager_email) = heads
            .get(i % DEPARTMENTS.len())
            .filter(|_| !head)
            .cloned()
            .unzip();
        let days_ago = if rng.gen_bool(0.05) {
            rng.gen_range(1..30)
        } else {
            rng.gen_range(30..2200)
        };
        let start = (chrono::Utc::now() - chrono::Duration::days(days_ago))
            .format("%Y-%m-%d")
            .to_string();
        let record = json!({
            "email": email, "first_name": first, "last_name": last, "job_title": title,
            "department": department, "division": if i % 2 == 0 { "Product" } else { "Go to market" },
            "location": LOCATIONS[rng.gen_range(0..LOCATIONS.len())],
            "manager_name": manager_name, "manager_email": manager_email,
            "employee_number": format!("{:05}", 10_000 + i), "employee_start_date": start,
            "organization": "Acme", "language": "English - United States",
            "aliases": [device],
        });
        rows.push(
            UserChanges::from_json(&record).map_err(|e| anyhow::anyhow!("demo data: {e:?}"))?,
        );
        let risk = if rng.gen_bool(0.1) { 6.0 } else { 1.0 };
        people.push(Person {
            email,
            device,
            risk,
        });
    }
    for chunk in rows.chunks(100) {
        for outcome in store.upsert_users(account, chunk).await? {
            outcome?;
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    Ok(people)
}

/// Revokes a live token of that name (from an earlier run) and creates a new one.
/// Creates the smart groups of the three starter plays, unless they exist (a demo run
/// again on the same data directory). Returns their ids and names.
async fn ensure_starter_groups(
    store: &Store,
    account: AccountId,
) -> anyhow::Result<Vec<(GroupId, &'static str)>> {
    let filter = GroupFilter {
        status: Some("active".into()),
        group_type: None,
    };
    let (existing, _) = store
        .list_groups(account, &filter, Page::new(1, 500))
        .await?;
    let mut groups = Vec::new();
    for play in STARTER_PLAYS {
        if let Some(group) = existing.iter().find(|g| g.name == play.group) {
            groups.push((group.id, play.group));
            continue;
        }
        let json = play.criteria();
        let criteria = Criteria::parse(&json).map_err(|e| anyhow::anyhow!("{e}"))?;
        let new = NewGroup {
            name: play.group.to_owned(),
            description: Some(format!(
                "Showed the behaviour twice in the last three months; training: {}",
                play.training
            )),
            criteria: Some((json, criteria)),
        };
        let (group, _) = store.create_group(account, &new).await?;
        groups.push((group.id, play.group));
    }
    Ok(groups)
}

/// A campaign per starter play: its training for whoever joins its smart group, due a
/// week after enrolment.
async fn ensure_starter_campaigns(
    store: &Store,
    account: AccountId,
    groups: &[(GroupId, &'static str)],
) -> anyhow::Result<()> {
    let (existing, _) = store
        .list_campaigns(account, None, Page::new(1, 500))
        .await?;
    let (content, _) = store
        .list_content(account, &ContentFilter::default(), Page::new(1, 500))
        .await?;
    for (play, (group, _)) in STARTER_PLAYS.iter().zip(groups) {
        let name = format!("Coaching: {}", play.group);
        if existing.iter().any(|c| c.name == name) {
            continue;
        }
        let module = content
            .iter()
            .find(|c| c.title == play.training)
            .with_context(|| format!("the library has no module titled {}", play.training))?;
        let new = NewCampaign {
            name,
            content: vec![module.id],
            groups: vec![*group],
            all_users: false,
            start_at: None,
            due: Due::After(IsoDuration::parse("P7D").map_err(|e| anyhow::anyhow!(e.0))?),
            auto_enroll: true,
            allow_multiple: false,
            cooldown: None,
        };
        store.create_campaign(account, &new).await?;
    }
    Ok(())
}

async fn fresh_token(
    store: &Store,
    account: AccountId,
    name: &str,
    scopes: &str,
) -> anyhow::Result<String> {
    let _ = store.revoke_token(account, name).await;
    let new = NewToken {
        name: name.to_owned(),
        scopes: Scopes::parse_list(scopes)?,
        expires_at: None,
        limits: Default::default(),
        lrs: false,
    };
    Ok(store.create_token(account, &new).await?.1)
}

/// What a compliance tool reading the Reporting API needs.
const REPORTING_SCOPES: &str =
    "account:read,user:read,group:read,program:read,campaign:read,enrollments:read";

/// The demo's console administrator (also the one `/v1/account` lists).
const CONSOLE_ADMIN: &str = "ada.admin@acme.example";

/// The account's administrator, with a fresh console password for this run.
async fn console_admin(store: &Store, account: AccountId) -> anyhow::Result<String> {
    let email = Email::parse(CONSOLE_ADMIN)?;
    if store.list_admins(account).await?.is_empty() {
        let new = NewAdmin {
            email: email.clone(),
            first_name: Some("Ada".to_owned()),
            last_name: Some("Admin".to_owned()),
        };
        store.create_admin(account, &new).await?;
    }
    let password = coachloop_server::console::password::generate();
    let hash = coachloop_server::console::password::hash(&password)?;
    store.set_admin_password(account, &email, &hash).await?;
    Ok(password)
}

fn print_intro(
    config: &Config,
    addr: SocketAddr,
    [admin, events, report]: [&str; 3],
    console_password: &str,
    someone: &Person,
    groups: &[(GroupId, &str)],
) {
    let base = format!("http://{addr}");
    let first = groups.first().map_or(GroupId(1), |g| g.0);
    let plays: String = groups
        .iter()
        .map(|(id, name)| format!("\n  {id:>3}  {name}"))
        .collect();
    let data = match &config.database_url {
        Some(url) => without_password(url),
        None => config.data_dir.display().to_string(),
    };
    println!(
        "\ncoachloop demo — data in {data}\n\
         \n  console:      {base}/console/  (account default, {CONSOLE_ADMIN}, password {console_password})\
         \n  admin token:  {admin}\n  events token: {events}\n\
         \nTry:\n\
         \n  export ADMIN={admin} EVENTS={events}\
         \n  curl -s -H \"Authorization: Bearer $EVENTS\" '{base}/events?per_page=5'\
         \n  curl -s -H \"Authorization: Bearer $EVENTS\" -H 'Content-Type: application/json' \\\
         \n       -d '{{\"target_user\":\"{email}\",\"event_type\":\"dashlane_user_typed_compromised_password\",\"description\":\"logged in to Dashlane\",\"risk_level\":8}}' {base}/events\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/users?q={email}'\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/users/1/timeline'\
         \n  open {base}/docs\
         \n\nSmart groups of the three starter plays (the behaviour twice in the last 3 months):{plays}\
         \n\nWatch people join and leave them — some events arrive late, replayed from an audit\
         \nlog almost 3 months old, so those people leave again minutes later, at the exact\
         \ninstant the old event leaves the window:\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/groups/{first}/members'\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/groups/{first}/history?per_page=5'\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/groups/{first}/members/<user_id>/why'\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/account/risk'\
         \n\nEach play has a campaign: joining enrols the person in its module at once, and a\
         \nfew simulated learners finish theirs every 10 s (reported over xAPI):\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/campaigns'\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/enrollments?per_page=5'\
         \n\nWhat a compliance tool reads (the Reporting API; this token has its six read scopes):\
         \n  export REPORT={report}\
         \n  curl -s -H \"Authorization: Bearer $REPORT\" '{base}/v1/account'\
         \n  curl -s -H \"Authorization: Bearer $REPORT\" '{base}/v1/training/campaigns'\
         \n  curl -s -H \"Authorization: Bearer $REPORT\" '{base}/v1/training/enrollments?per_page=5'\
         \n\nCompliance, kept current as people train (SOC 2 and ISO/IEC 27001 are enabled):\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/compliance/controls'\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/compliance/non-compliant?per_page=5'\
         \n  curl -s -H \"Authorization: Bearer $ADMIN\" '{base}/api/metrics/success'\
         \n\nCLI on the same data: coachloop tokens list{flag}\
         \n\nCredential-risk events go to {base}/events through coachloop forward — Ctrl-C stops.\n",
        email = someone.email,
        flag = data_flag(config),
    );
}

struct Tokens {
    admin: String,
}

/// The simulated audit log and the forwarder's state directory.
struct Audit {
    log: PathBuf,
    state: PathBuf,
}

/// Appends audit-log records at `rate` per second until aborted, as a password manager
/// exporting its log would, and every 10 s reports what the forwarder delivered and the
/// starter groups' sizes.
async fn stream_events(
    base: String,
    tokens: Tokens,
    audit: Audit,
    people: Vec<Person>,
    rate: f64,
    mut rng: StdRng,
) {
    let client = reqwest::Client::new();
    let weights: Vec<f64> = people.iter().map(|p| p.risk).collect();
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut ticker = tokio::time::interval(interval);
    let mut written = 0u64;
    let mut last_report = tokio::time::Instant::now();
    let mut shown_link = false;
    let mut log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&audit.log)
    {
        Ok(log) => log,
        Err(e) => {
            eprintln!("demo: cannot write {}: {e}", audit.log.display());
            return;
        }
    };
    loop {
        ticker.tick().await;
        let index = weighted(&weights, &mut rng);
        let record = simulated_record(&people[index], &mut rng);
        let mut lines = record.to_string() + "\n";
        if let Some(late) = late_twin(&record, &mut rng) {
            lines += &(late.to_string() + "\n");
        }
        if let Err(e) = log.write_all(lines.as_bytes()) {
            eprintln!("demo: cannot write {}: {e}", audit.log.display());
            return;
        }
        written += 1;
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = tokio::time::Instant::now();
            if let Some(status) = forwarded(&audit.state).await {
                println!(
                    "wrote {written} audit-log records; forwarded {} events ({} naming a device, not an email), {} queued, {} dead{}",
                    status.delivered,
                    status.device_users,
                    status.queued,
                    status.dead,
                    status
                        .last_error
                        .map(|e| format!("; last error: {e}"))
                        .unwrap_or_default()
                );
            }
            if let Some(sizes) = group_sizes(&client, &base, &tokens.admin).await {
                println!("  smart groups: {sizes}");
            }
            learners_finish_some(&client, &base, &tokens.admin, &mut rng, &mut shown_link).await;
        }
    }
}

/// The forwarder's status, as `coachloop forward status` shows it.
async fn forwarded(state: &Path) -> Option<Status> {
    let outbox = Outbox::open_existing(state).await.ok()??;
    let status = Status::of(&outbox).await.ok();
    outbox.close().await;
    status
}

/// Simulated learners: a few open enrolments are finished through the xAPI endpoint, as
/// another LMS would report them (most pass, some fail); the first time there is an open
/// one, prints its learner link to open in a browser.
async fn learners_finish_some(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    rng: &mut StdRng,
    shown_link: &mut bool,
) {
    let open: Value = match client
        .get(format!(
            "{base}/api/enrollments?status=Not%20Started&per_page=20"
        ))
        .bearer_auth(admin)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => return,
    };
    let open = open["data"].as_array().cloned().unwrap_or_default();
    let total = open.len();
    let mut statements = Vec::new();
    for (i, e) in open.iter().enumerate() {
        if i == 0 && !*shown_link {
            let link: Value = match client
                .post(format!("{base}/api/enrollments/{}/link", e["id"]))
                .bearer_auth(admin)
                .send()
                .await
            {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => Value::Null,
            };
            if let Some(url) = link["data"]["url"].as_str() {
                println!(
                    "  training was assigned to {} — open their learner page: {url}",
                    e["email"].as_str().unwrap_or_default()
                );
                *shown_link = true;
            }
            continue;
        }
        if i > total / 3 {
            break;
        }
        let (verb, scaled) = if rng.gen_bool(0.8) {
            ("passed", 0.8 + rng.gen_range(0.0..0.2))
        } else {
            ("failed", rng.gen_range(0.2..0.6))
        };
        let slug = e["content_title"].as_str().map(slug_of).unwrap_or_default();
        statements.push(json!({
            "actor": {"mbox": format!("mailto:{}", e["email"].as_str().unwrap_or_default())},
            "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
            "object": {"id": format!("https://lms.example.com/activities/{slug}")},
            "result": {"score": {"scaled": scaled}},
        }));
    }
    if statements.is_empty() {
        return;
    }
    let sent = client
        .post(format!("{base}/xapi/statements"))
        .bearer_auth(admin)
        .header("X-Experience-API-Version", "1.0.3")
        .json(&statements)
        .send()
        .await;
    if let Ok(r) = sent
        && r.status().is_success()
    {
        println!(
            "  simulated learners reported {} results over xAPI",
            statements.len()
        );
    }
}

/// The library slug of a starter play's module, from its title.
fn slug_of(title: &str) -> String {
    coachloop_core::content::library()
        .iter()
        .find(|c| c.title == title)
        .map(|c| c.slug.clone())
        .unwrap_or_default()
}

/// For a starter-play record, now and then the same behaviour from almost three months
/// ago, as a password manager replaying its audit log would write it: the person joins at
/// once and leaves minutes later, when the old event leaves the window.
fn late_twin(record: &Value, rng: &mut StdRng) -> Option<Value> {
    let kind = format!("dashlane_{}", record["log_type"].as_str()?);
    if !STARTER_PLAYS.iter().any(|p| p.event_type == kind) || !rng.gen_bool(0.4) {
        return None;
    }
    let occurred = chrono::Utc::now().checked_sub_months(chrono::Months::new(3))?
        + chrono::Duration::seconds(rng.gen_range(60..300));
    let mut late = record.clone();
    late["uuid"] = json!(uuid_like(rng));
    late["date_time"] = json!(occurred.timestamp_millis());
    Some(late)
}

/// "name: N members" for each smart group, via the admin API.
async fn group_sizes(client: &reqwest::Client, base: &str, admin: &str) -> Option<String> {
    let body: Value = client
        .get(format!("{base}/api/groups?group_type=smart_group"))
        .bearer_auth(admin)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let sizes: Vec<String> = body["data"]
        .as_array()?
        .iter()
        .map(|g| {
            format!(
                "{} {}",
                g["name"].as_str().unwrap_or("?"),
                g["member_count"]
            )
        })
        .collect();
    Some(sizes.join(" · "))
}

fn weighted(weights: &[f64], rng: &mut StdRng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut pick = rng.gen_range(0.0..total);
    for (i, w) in weights.iter().enumerate() {
        if pick < *w {
            return i;
        }
        pick -= w;
    }
    weights.len() - 1
}

/// How often each catalog event happens, relative to the others.
fn frequency(entry: &CatalogEntry) -> u32 {
    match entry.suggested_risk {
        0 => 16,
        r if r < 0 => 10,
        4 => 18,
        8 => 8,
        9 => 4,
        _ => 6,
    }
}

/// One record of the password manager's audit log, in the shape its CLI exports
/// (shared/reference/dashlane-events.md); the forwarder's mapping makes it an event.
fn simulated_record(person: &Person, rng: &mut StdRng) -> Value {
    let entries = catalog::DASHLANE;
    let entry = entries
        .choose_weighted(rng, frequency)
        .unwrap_or(&entries[0]);
    let description = entry.variants.choose(rng).copied();
    // Not logged in: the sender knows only the device's user name.
    let logged_out = description.is_some_and(|d| d != "logged in to Dashlane");
    let shared_kiosk = logged_out && rng.gen_bool(0.15);
    let target = if shared_kiosk {
        format!("kiosk-{:02}", rng.gen_range(1..9))
    } else if logged_out {
        person.device.clone()
    } else {
        person.email.clone()
    };
    let login_status = match description {
        Some("logged in to Dashlane") | None => "logged_in",
        Some("not logged in to Dashlane") => "not_logged_in",
        Some(_) => "no_account",
    };
    json!({
        "uuid": uuid_like(rng),
        "team_id": 1,
        "category": "user_settings",
        "log_type": entry.name.trim_start_matches("dashlane_"),
        "date_time": chrono::Utc::now().timestamp_millis(),
        "properties": {"domain_url": "intranet.acme.example", "login_status": login_status},
        "author_login": target,
        "schema_version": "1.0.0",
    })
}

fn uuid_like(rng: &mut StdRng) -> String {
    let n: u128 = rng.r#gen();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (n >> 96) as u32,
        (n >> 80) as u16,
        (n >> 64) as u16,
        (n >> 48) as u16,
        n & 0xffff_ffff_ffff
    )
}
