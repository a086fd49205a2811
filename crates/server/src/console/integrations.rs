//! Integrations: who sends events (tokens, *Pending* until their first event, their last
//! error), Reporting API keys, SCIM, webhooks with their delivery log, and remote sync
//! connections with *Test connection* and *Sync now*. Every change is made through the
//! API ([`super::api`]); a new secret is shown once, on the page that answers its form.

use super::api::{self, Answer, segment};
use super::layout::{self, Section, csrf, when};
use super::session::{Fields, Posted, Session};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use coachloop_core::ids::WebhookId;
use coachloop_core::notice::Notice;
use coachloop_core::scope::Scope;
use coachloop_store::notices::{Delivery, Job, WEBHOOK_EVENTS, Webhook};
use coachloop_store::sync::Connection;
use coachloop_store::tokens::Token;
use maud::{Markup, html};
use serde_json::{Value, json};

const HOME: &str = "/console/integrations";

/// What a token is for, and the scopes that takes.
const PURPOSES: [(&str, &str, &[Scope]); 3] = [
    (
        "sender",
        "Event sender (a password manager's User Event API key)",
        &[Scope::EventsWrite],
    ),
    (
        "reporting",
        "Reporting API key (a compliance platform reading training)",
        &[
            Scope::AccountRead,
            Scope::UserRead,
            Scope::GroupRead,
            Scope::ProgramRead,
            Scope::CampaignRead,
            Scope::EnrollmentsRead,
        ],
    ),
    (
        "scim",
        "SCIM (the identity provider provisioning people)",
        &[Scope::Scim],
    ),
];

/// A form that was refused, shown again with its values and what to fix.
struct Refused<'a> {
    form: &'static str,
    fields: &'a Fields,
    problem: String,
}

impl Refused<'_> {
    fn of<'a>(
        refused: Option<&'a Refused<'a>>,
        form: &str,
    ) -> (Option<&'a str>, Option<&'a Fields>) {
        match refused {
            Some(r) if r.form == form => (Some(r.problem.as_str()), Some(r.fields)),
            _ => (None, None),
        }
    }
}

fn public_url(state: &AppState) -> String {
    state
        .config
        .public_url
        .clone()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned()
}

fn token_status(token: &Token, now: i64) -> Markup {
    if let Some(at) = token.revoked_at {
        return html! { "Revoked " (when(at)) };
    }
    if token.expires_at.is_some_and(|at| at <= now) {
        return html! { "Expired" };
    }
    html! {
        @if token.scopes.allows(Scope::EventsWrite) && !token.scopes.allows(Scope::Admin) {
            @match token.last_event_at {
                None => { strong { "Pending" } " — no event received yet" }
                Some(at) => { "Last event " (when(at)) }
            }
        } @else {
            "Live"
        }
        @if let Some((at, why)) = &token.last_error {
            br;
            span.problem-text { "Last error " (when(*at)) ": " (why) }
        }
    }
}

fn tokens_section(
    session: &Session,
    tokens: &[Token],
    now: i64,
    refused: Option<&Refused>,
) -> Markup {
    let (problem, draft) = Refused::of(refused, "token");
    let value = |name: &str| draft.map(|d| d.get(name)).unwrap_or_default().to_owned();
    let purpose = value("purpose");
    let picked = draft.map(|d| d.all("scopes")).unwrap_or_default();
    html! {
        section #tokens aria-labelledby="tokens-title" {
            h2 #tokens-title { "Event senders and API keys" }
            @if tokens.is_empty() {
                p { "No token yet. A sender (a password manager, " code { "coachloop forward" }
                    ") needs one with " code { "events:write" } "." }
            } @else {
                table {
                    thead { tr { th { "Name" } th { "Scopes" } th { "Status" } th { "Last used" } th { "Expires" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for t in tokens {
                            tr {
                                td { (t.name) }
                                td { @for s in t.scopes.iter() { code { (s.as_str()) } " " } }
                                td { (token_status(t, now)) }
                                td { @match t.last_used_at { Some(at) => (when(at)), None => "never" } }
                                td { @match t.expires_at { Some(at) => (when(at)), None => "never" } }
                                td {
                                    @if t.unusable_reason(now).is_none() {
                                        form.inline method="post" action=(format!("{HOME}/tokens/{}/revoke", segment(&t.name))) {
                                            (csrf(session))
                                            button.danger type="submit" aria-label=(format!("Revoke {}", t.name)) { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            details open[problem.is_some()] {
                summary { "New token" }
                @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
                form.stack method="post" action=(format!("{HOME}/tokens")) {
                    (csrf(session))
                    label for="token-name" { "Name" }
                    input #token-name name="name" required maxlength="100" value=(value("name"));
                    fieldset {
                        legend { "For" }
                        @for (id, label, _) in PURPOSES {
                            label.choice {
                                input type="radio" name="purpose" value=(id)
                                    checked[purpose == id || (purpose.is_empty() && id == "sender")];
                                " " (label)
                            }
                        }
                        label.choice {
                            input type="radio" name="purpose" value="custom" checked[purpose == "custom"];
                            " Other: the scopes ticked below"
                        }
                        @for scope in Scope::ALL {
                            label.choice {
                                input type="checkbox" name="scopes" value=(scope.as_str())
                                    checked[picked.contains(&scope.as_str())];
                                " " code { (scope.as_str()) }
                            }
                        }
                    }
                    label for="token-expires" { "Expires (optional)" }
                    input #token-expires name="expires" type="date" value=(value("expires"));
                    label for="token-rate" { "Requests a second, at most (optional)" }
                    input #token-rate name="rate_per_second" type="number" min="1" value=(value("rate_per_second"));
                    div.actions { button type="submit" { "Create token" } }
                }
            }
        }
    }
}

fn scim_section(state: &AppState, tokens: &[Token], now: i64) -> Markup {
    let live: Vec<&Token> = tokens
        .iter()
        .filter(|t| t.scopes.iter().any(|s| s == Scope::Scim) && t.unusable_reason(now).is_none())
        .collect();
    html! {
        section #scim aria-labelledby="scim-title" {
            h2 #scim-title { "SCIM provisioning" }
            dl.facts {
                dt { "SCIM base URL" } dd { code { (public_url(state)) "/scim/v2" } }
                dt { "Authentication" } dd { "HTTP header, a bearer token with the " code { "scim" } " scope" }
                dt { "Tokens" }
                dd {
                    @if live.is_empty() { "none yet: create one above, for SCIM" }
                    @for t in &live {
                        (t.name) " (last used "
                        @match t.last_used_at { Some(at) => (when(at)), None => "never" }
                        ") "
                    }
                }
            }
        }
    }
}

fn webhooks_section(session: &Session, hooks: &[Webhook], refused: Option<&Refused>) -> Markup {
    let (problem, draft) = Refused::of(refused, "webhook");
    let value = |name: &str| draft.map(|d| d.get(name)).unwrap_or_default().to_owned();
    let picked = draft.map(|d| d.all("events")).unwrap_or_default();
    let format = value("format");
    html! {
        section #webhooks aria-labelledby="webhooks-title" {
            h2 #webhooks-title { "Webhooks" }
            @if hooks.is_empty() {
                p { "No webhook yet." }
            } @else {
                table {
                    thead { tr { th { "URL" } th { "Format" } th { "Sends" } th { "Status" } } }
                    tbody {
                        @for w in hooks {
                            tr {
                                td { a href=(format!("{HOME}/webhooks/{}", w.id.0)) { (w.url) } }
                                td { (w.format) }
                                td { (w.event_names().unwrap_or_default().join(", ")) }
                                td { @if w.active { "Active" } @else { "Stopped" } }
                            }
                        }
                    }
                }
            }
            details open[problem.is_some()] {
                summary { "New webhook" }
                @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
                form.stack method="post" action=(format!("{HOME}/webhooks")) {
                    (csrf(session))
                    label for="hook-url" { "URL" }
                    input #hook-url name="url" type="url" required value=(value("url"));
                    label for="hook-format" { "Format" }
                    select #hook-format name="format" {
                        option value="json" selected[format != "slack" && format != "teams"] { "JSON, signed (for your systems)" }
                        option value="slack" selected[format == "slack"] { "Slack incoming webhook (notices)" }
                        option value="teams" selected[format == "teams"] { "Microsoft Teams incoming webhook (notices)" }
                    }
                    fieldset {
                        legend { "Facts sent as JSON" }
                        @for event in WEBHOOK_EVENTS {
                            label.choice {
                                input type="checkbox" name="events" value=(event) checked[picked.contains(&event)];
                                " " code { (event) }
                            }
                        }
                    }
                    fieldset {
                        legend { "Notices sent to a chat" }
                        @for notice in Notice::ALL {
                            label.choice {
                                input type="checkbox" name="events" value=(notice.as_str()) checked[picked.contains(&notice.as_str())];
                                " " code { (notice.as_str()) }
                            }
                        }
                    }
                    label for="hook-campaign" { "Only this campaign's notices (a chat webhook; its id, optional)" }
                    input #hook-campaign name="campaign_id" type="number" min="1" value=(value("campaign_id"));
                    div.actions { button type="submit" { "Add webhook" } }
                }
            }
        }
    }
}

fn connection_status(c: &Connection, now: i64) -> Markup {
    html! {
        @if c.syncing(now) { "Syncing now" br; }
        @match (c.last_success_at, c.failures) {
            (None, _) => { strong { "Pending" } " — no sync has succeeded yet" }
            (Some(at), 0) => { "Last sync " (when(at)) }
            (Some(at), _) => { "Failing since the sync of " (when(at)) }
        }
        @if let (Some(at), Some(why)) = (c.last_error_at, &c.last_error) {
            br;
            span.problem-text { "Last error " (when(at)) ": " (why) }
        }
    }
}

fn connections_section(
    session: &Session,
    connections: &[Connection],
    now: i64,
    refused: Option<&Refused>,
) -> Markup {
    let (problem, draft) = Refused::of(refused, "connection");
    let value = |name: &str| draft.map(|d| d.get(name)).unwrap_or_default().to_owned();
    let region = value("region");
    html! {
        section #connections aria-labelledby="connections-title" {
            h2 #connections-title { "Remote Reporting APIs (sync)" }
            @if connections.is_empty() {
                p { "No connection yet. Connect a KnowBe4 account, or another coachloop, to count its training for compliance." }
            } @else {
                table {
                    thead { tr { th { "Name" } th { "Reads from" } th { "Status" } th.num { "People" } th.num { "Enrolments" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for c in connections {
                            tr {
                                td { (c.name) }
                                td { code { (c.base_url) } " (key " (c.key_hint) ")" }
                                td { (connection_status(c, now)) br; span.muted { "next " (when(c.next_sync_at)) } }
                                td.num { (c.people) }
                                td.num { (c.enrollments) }
                                td {
                                    @for (action, label) in [("test", "Test connection"), ("sync", "Sync now"), ("remove", "Remove")] {
                                        form.inline method="post" action=(format!("{HOME}/connections/{}/{action}", c.id.0)) {
                                            (csrf(session))
                                            button.danger[action == "remove"] type="submit"
                                                aria-label=(format!("{label}: {}", c.name)) { (label) }
                                        }
                                        " "
                                    }
                                }
                            }
                        }
                    }
                }
            }
            details open[problem.is_some()] {
                summary { "New connection" }
                @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
                form.stack method="post" action=(format!("{HOME}/connections")) {
                    (csrf(session))
                    label for="conn-name" { "Name" }
                    input #conn-name name="name" required maxlength="255" value=(value("name"));
                    label for="conn-region" { "Region (the reference service's)" }
                    select #conn-region name="region" {
                        option value="" selected[region.is_empty()] { "— none: the base URL below —" }
                        @for r in ["us", "eu", "ca", "uk", "de"] {
                            option value=(r) selected[region == r] { (r.to_uppercase()) }
                        }
                    }
                    label for="conn-base" { "Or the base URL of another Reporting API" }
                    input #conn-base name="base_url" type="url" value=(value("base_url"));
                    label for="conn-key" { "Reporting API key (kept sealed, never shown again)" }
                    input #conn-key name="key" type="password" required autocomplete="off";
                    label for="conn-interval" { "Minutes between syncs" }
                    input #conn-interval name="interval_minutes" type="number" min="5" max="10080"
                        value=(match value("interval_minutes").as_str() { "" => "60".to_owned(), v => v.to_owned() });
                    div.actions { button type="submit" { "Connect" } }
                }
            }
        }
    }
}

async fn render(state: &AppState, session: &Session, refused: Option<Refused<'_>>) -> Response {
    let account = session.account;
    let store = &state.store;
    let (tokens, hooks, connections) = match tokio::try_join!(
        store.list_tokens(account),
        store.list_webhooks(account),
        store.sync_connections(account)
    ) {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let now = store.clock().now_ms();
    // Live tokens first; revoked and expired ones after them.
    let mut tokens = tokens;
    tokens.sort_by_key(|t| t.unusable_reason(now).is_some());
    let refused = refused.as_ref();
    let base = public_url(state);
    let body = html! {
        p {
            "Senders post events to " code { (base) "/events" } ", compliance platforms read "
            code { (base) "/v1" } ", identity providers provision people at " code { (base) "/scim/v2" } "."
        }
        (tokens_section(session, &tokens, now, refused))
        (scim_section(state, &tokens, now))
        (webhooks_section(session, &hooks, refused))
        (connections_section(session, &connections, now, refused))
    };
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    layout::respond(
        status,
        layout::page(session, Section::Integrations, "Integrations", body),
    )
}

pub async fn show(State(state): State<AppState>, session: Session) -> Response {
    render(&state, &session, None).await
}

/// A form refused by the API: the page again, with its values and what to fix (or the
/// refusal alone when it is not about the form's values).
async fn refused(
    state: &AppState,
    session: &Session,
    form: &'static str,
    fields: &Fields,
    answer: &Answer,
) -> Response {
    if !matches!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT | StatusCode::BAD_REQUEST
    ) {
        return layout::problem(Some(session), answer.status, "Not done", &answer.problem());
    }
    render(
        state,
        session,
        Some(Refused {
            form,
            fields,
            problem: answer.problem(),
        }),
    )
    .await
}

/// A number field: none when blank, the text itself when it is not a number (the API
/// then names the field).
fn number(fields: &Fields, name: &str) -> Value {
    match fields.given(name) {
        None => Value::Null,
        Some(text) => text.parse::<i64>().map(Value::from).unwrap_or(json!(text)),
    }
}

/// A secret shown once, with where it goes.
fn shown_once(session: &Session, title: &str, secret: &str, how: Markup) -> Response {
    let body = html! {
        p.notice role="status" {
            "This secret is shown this once: copy it now. coachloop keeps only "
            "what it needs to check it, and cannot show it again."
        }
        label for="secret" { "Secret" }
        input #secret.secret readonly value=(secret) size="70";
        (how)
        p { a href=(HOME) { "Back to integrations" } }
    };
    layout::respond(
        StatusCode::CREATED,
        layout::page(session, Section::Integrations, title, body),
    )
}

pub async fn create_token(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let fields = Fields(posted.form);
    let purpose = fields.get("purpose");
    let scopes: Vec<&str> = match PURPOSES.iter().find(|(id, _, _)| *id == purpose) {
        Some((_, _, scopes)) => scopes.iter().map(|s| s.as_str()).collect(),
        None => fields.all("scopes"),
    };
    let body = json!({
        "name": fields.get("name").trim(),
        "scopes": scopes,
        "expires": fields.given("expires"),
        "rate_per_second": number(&fields, "rate_per_second"),
    });
    let answer = api::call(&state, &session, Method::POST, "/api/tokens", Some(body)).await;
    if !answer.ok() {
        return refused(&state, &session, "token", &fields, &answer).await;
    }
    let secret = answer.data()["secret"].as_str().unwrap_or_default();
    let base = public_url(&state);
    let how = match purpose {
        "sender" => html! {
            p { "In the password manager's console, choose a custom region URL of " code { (base) }
                " (events go to " code { (base) "/events" } "), paste this key, save and activate. "
                "The token reads " strong { "Pending" } " here until its first event arrives." }
        },
        "reporting" => html! {
            p { "Give the compliance platform this key and the Reporting API's base URL, " code { (base) "/v1" } "." }
        },
        "scim" => html! {
            p { "In the identity provider's provisioning settings, the SCIM base URL is "
                code { (base) "/scim/v2" } " and this is the bearer token." }
        },
        _ => html! { p { "Send it as " code { "Authorization: Bearer <secret>" } "." } },
    };
    answer.noted(shown_once(&session, "Token created", secret, how))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let path = format!("/api/tokens/{}", segment(&name));
    let answer = api::call(&state, &session, Method::DELETE, &path, None).await;
    answer.then_see(&session, &format!("{HOME}#tokens"))
}

pub async fn create_webhook(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let fields = Fields(posted.form);
    let body = json!({
        "url": fields.get("url").trim(),
        "format": fields.given("format").unwrap_or("json"),
        "events": fields.all("events"),
        "campaign_id": number(&fields, "campaign_id"),
    });
    let answer = api::call(&state, &session, Method::POST, "/api/webhooks", Some(body)).await;
    if !answer.ok() {
        return refused(&state, &session, "webhook", &fields, &answer).await;
    }
    let data = answer.data();
    let how = html! {
        p { "Each delivery carries " code { "X-Coachloop-Signature: sha256=HMAC(secret, \"<timestamp>.<body>\")" }
            "; check it with this secret. "
            a href=(format!("{HOME}/webhooks/{}", data["id"])) { "The webhook and its delivery log" } "." }
    };
    let secret = data["secret"].as_str().unwrap_or_default();
    answer.noted(shown_once(&session, "Webhook added", secret, how))
}

fn attempts(log: &[Delivery]) -> Markup {
    html! {
        ol.attempts {
            @for d in log {
                li {
                    (when(d.at)) ": "
                    @if d.ok { "delivered" } @else { "failed" }
                    @if let Some(code) = d.status_code { " (HTTP " (code) ")" }
                    @if let Some(error) = &d.error { " — " (error) }
                    " in " (d.took_ms) " ms"
                }
            }
        }
    }
}

pub async fn webhook(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
) -> Response {
    let account = session.account;
    let id = WebhookId(id);
    let (hook, log) = match tokio::try_join!(
        state.store.webhook(account, id),
        state.store.webhook_log(account, id, 100)
    ) {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let row = |job: &Job, tries: &[Delivery]| {
        html! {
            tr {
                td { code { (job.dedupe) } }
                td { (job.status) }
                td.num { (job.attempts) }
                td {
                    @if job.status == "pending" { "next try " (when(job.run_at)) }
                    @if let Some(e) = &job.last_error { span.problem-text { (e) } }
                }
                td { (attempts(tries)) }
            }
        }
    };
    let body = html! {
        dl.facts {
            dt { "URL" } dd { code { (hook.url) } }
            dt { "Format" } dd { (hook.format) }
            dt { "Sends" } dd { (hook.event_names().unwrap_or_default().join(", ")) }
            dt { "Status" } dd { @if hook.active { "Active" } @else { "Stopped" } }
            dt { "Added" } dd { (when(hook.created_at)) }
        }
        @if hook.active {
            form method="post" action=(format!("{HOME}/webhooks/{}/stop", hook.id.0)) {
                (csrf(&session))
                button.danger type="submit" { "Stop this webhook" }
                " Nothing new is queued for it; what is queued is still tried."
            }
        }
        h2 { "Delivery log (latest 100)" }
        @if log.is_empty() {
            p { "Nothing sent yet." }
        } @else {
            table {
                thead { tr { th { "Delivery id" } th { "Status" } th.num { "Attempts" } th { "Next, or last error" } th { "Each attempt" } } }
                tbody { @for (job, tries) in &log { (row(job, tries)) } }
            }
        }
        p { a href=(HOME) { "Back to integrations" } }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Integrations, "Webhook", body),
    )
}

pub async fn stop_webhook(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let path = format!("/api/webhooks/{id}");
    let answer = api::call(&state, &session, Method::DELETE, &path, None).await;
    answer.then_see(&session, &format!("{HOME}/webhooks/{id}"))
}

pub async fn create_connection(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let fields = Fields(posted.form);
    let mut body = json!({
        "name": fields.get("name").trim(),
        "key": fields.get("key").trim(),
        "interval_minutes": number(&fields, "interval_minutes"),
    });
    if let Some(region) = fields.given("region") {
        body["region"] = json!(region);
    }
    if let Some(base) = fields.given("base_url") {
        body["base_url"] = json!(base);
    }
    if body["interval_minutes"].is_null() {
        body.as_object_mut().map(|b| b.remove("interval_minutes"));
    }
    let path = "/api/compliance/connections";
    let answer = api::call(&state, &session, Method::POST, path, Some(body)).await;
    if !answer.ok() {
        return refused(&state, &session, "connection", &fields, &answer).await;
    }
    answer.then_see(&session, &format!("{HOME}#connections"))
}

/// *Test connection*, *Sync now* and *Remove*.
pub async fn connection_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let base = format!("/api/compliance/connections/{id}");
    let (method, path) = match action.as_str() {
        "test" => (Method::POST, format!("{base}/test")),
        "sync" => (Method::POST, format!("{base}/sync")),
        "remove" => (Method::DELETE, base),
        _ => {
            return layout::problem(
                Some(&session),
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such action on a connection.",
            );
        }
    };
    let answer = api::call(&state, &session, method, &path, None).await;
    if action != "test" || !answer.ok() {
        return answer.then_see(&session, &format!("{HOME}#connections"));
    }
    let data = answer.data();
    let body = html! {
        @if data["ok"].as_bool() == Some(true) {
            p.notice role="status" {
                "The key works: it reads every path a sync needs"
                @if let Some(name) = data["account"].as_str() { ", from the account " strong { (name) } }
                "."
            }
        } @else {
            p.problem role="alert" {
                (data["problem"]["message"].as_str().unwrap_or("the connection failed"))
            }
            p.muted { "Kind of problem: " code { (data["problem"]["kind"].as_str().unwrap_or("unknown")) } }
        }
        p { a href=(format!("{HOME}#connections")) { "Back to integrations" } }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Integrations, "Test connection", body),
    )
}
