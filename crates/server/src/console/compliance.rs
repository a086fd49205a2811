//! Compliance: frameworks to enable, controls with their status and history, people who
//! are not compliant and why, exceptions, evidence exports (kept as a chain of
//! snapshots) and the check of that chain. Changes and exports go through the API
//! ([`super::api`]).

use super::api::{self, segment};
use super::charts::{self, Series};
use super::layout::{self, PreEscaped, Section, csrf, pager, when};
use super::people::page_of;
use super::session::{Fields, Posted, Session};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_DISPOSITION;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use coachloop_core::compliance::Status;
use coachloop_core::compliance::catalog::FRAMEWORKS;
use coachloop_core::identity::Email;
use coachloop_store::StoreError;
use coachloop_store::compliance::{ControlState, Exception, PeopleFilter};
use coachloop_store::console::ConsoleSession;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

const HOME: &str = "/console/compliance";

fn verdict_badge(verdict: &str) -> Markup {
    let class = match verdict {
        "pass" => "badge good",
        "at_risk" => "badge warn",
        _ => "badge bad",
    };
    html! { span class=(class) { (verdict.replace('_', " ")) } }
}

/// The enabled frameworks' controls with their verdicts, each linked to its history.
pub fn controls_table(controls: &[ControlState]) -> Markup {
    html! {
        @if controls.is_empty() {
            p { "No framework is enabled. " a href=(HOME) { "Enable one" } "." }
        } @else {
            table {
                thead { tr { th { "Framework" } th { "Control" } th { "Status" }
                    th.num { "Compliant" } th.num { "At risk" } th.num { "Not compliant" } th.num { "Excepted" } } }
                tbody {
                    @for c in controls {
                        tr {
                            td { (c.control.framework) }
                            td {
                                a href=(format!("{HOME}/controls/{}/{}", c.control.framework, segment(c.control.id))) { (c.control.id) }
                                " " span.muted { (c.control.title) }
                            }
                            td { (verdict_badge(c.verdict.as_str())) }
                            td.num { (c.counts.compliant) }
                            td.num { (c.counts.at_risk) }
                            td.num { (c.counts.non_compliant) }
                            td.num { (c.counts.excepted) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PeopleQuery {
    pub status: Option<String>,
    pub page: Option<String>,
}

fn name_of(first: Option<&str>, last: Option<&str>, email: &str) -> String {
    match (first, last) {
        (Some(f), Some(l)) => format!("{f} {l}"),
        (Some(n), None) | (None, Some(n)) => n.to_owned(),
        (None, None) => email.to_owned(),
    }
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PeopleQuery>,
) -> Response {
    match page(&state, &session, &query).await {
        Ok(markup) => layout::respond(StatusCode::OK, markup),
        Err(e) => layout::store_error(e),
    }
}

async fn page(
    state: &AppState,
    session: &Session,
    query: &PeopleQuery,
) -> Result<Markup, StoreError> {
    let store = &state.store;
    let account = session.account;
    let status = query
        .status
        .as_deref()
        .and_then(Status::parse)
        .unwrap_or(Status::NonCompliant);
    let paging = page_of(query.page.as_deref(), 50);
    let filter = PeopleFilter {
        status: Some(status),
        ..PeopleFilter::default()
    };
    let (frameworks, controls, requirements, (people, total), exceptions, (snapshots, _)) = tokio::try_join!(
        store.compliance_frameworks(account),
        store.compliance_controls(account),
        store.compliance_requirements(account),
        store.compliance_people(account, &filter, paging),
        store.compliance_exceptions(account),
        store.evidence_snapshots(account, coachloop_store::Page::new(1, 10)),
    )?;
    let requirement_title = |id: i64| {
        requirements
            .iter()
            .find(|r| r.id.0 == id)
            .map(|r| r.settings.title.clone())
            .unwrap_or_else(|| format!("requirement {id}"))
    };
    let today = coachloop_core::time::date_of_ms(store.clock().now_ms());
    let year_ago = today - chrono::Days::new(365);
    let body = html! {
        h2 { "Frameworks" }
        table {
            thead { tr { th { "Framework" } th { "Enabled" } th { span.visually-hidden { "Action" } } } }
            tbody {
                @for f in &frameworks {
                    tr {
                        td { (f.framework.title) }
                        td { @match f.enabled_at { Some(at) => { "since " (when(at)) } None => "no" } }
                        td {
                            form.inline method="post" action=(format!("{HOME}/frameworks/{}", f.framework.id)) {
                                (csrf(session))
                                @if f.enabled_at.is_some() {
                                    input type="hidden" name="enable" value="no";
                                    button.danger type="submit" aria-label=(format!("Disable {}", f.framework.title)) { "Disable" }
                                } @else {
                                    input type="hidden" name="enable" value="yes";
                                    button type="submit" aria-label=(format!("Enable {}", f.framework.title)) { "Enable" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Controls" }
        (controls_table(&controls))
        form.inline method="post" action=(format!("{HOME}/evaluate")) {
            (csrf(session))
            button type="submit" { "Evaluate everyone again" }
            span.muted { "Statuses are kept current on every change; this is a full check." }
        }
        h2 #people { "People" }
        form.inline method="get" action=(format!("{HOME}#people")) {
            label { "Status"
                select name="status" {
                    @for s in [Status::NonCompliant, Status::AtRisk, Status::Excepted, Status::Compliant] {
                        option value=(s.as_str()) selected[s == status] { (s.as_str().replace('_', " ")) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @if people.is_empty() {
            p { "Nobody is " (status.as_str().replace('_', " ")) "." }
        } @else {
            table {
                thead { tr { th { "Person" } th { "Requirement" } th { "Why" } th { "Due" } th { "Since" } } }
                tbody {
                    @for p in &people {
                        tr {
                            td { a href=(format!("/console/people/{}", p.user_id)) {
                                (name_of(p.first_name.as_deref(), p.last_name.as_deref(), &p.email)) }
                                @if let Some(source) = &p.source { br; span.muted { "from " (source) } } }
                            td { (requirement_title(p.requirement_id)) }
                            td { (p.reason) }
                            td { @if let Some(at) = p.deadline { (when(at)) } }
                            td { (when(p.since)) }
                        }
                    }
                }
            }
            (pager(HOME, &[("status", status.as_str())], paging, total))
        }
        h2 #exceptions { "Exceptions" }
        (exceptions_table(session, &exceptions, &requirement_title, store.clock().now_ms()))
        details {
            summary { "Grant an exception" }
            form.stack method="post" action=(format!("{HOME}/exceptions")) {
                (csrf(session))
                label for="ex-email" { "The person's email" }
                input #ex-email name="email" type="email" required;
                label for="ex-requirement" { "Requirement" }
                select #ex-requirement name="requirement_id" {
                    @for r in &requirements { option value=(r.id.0) { (r.settings.title) } }
                }
                label for="ex-reason" { "Reason (kept as evidence)" }
                input #ex-reason name="reason" required maxlength="1000";
                label for="ex-until" { "Until (optional; none: for good)" }
                input #ex-until name="expires_at" type="date";
                div.actions { button type="submit" { "Grant" } }
            }
        }
        h2 #evidence { "Evidence" }
        form.inline method="post" action=(format!("{HOME}/evidence")) {
            (csrf(session))
            label { "Framework"
                select name="framework" {
                    @for f in FRAMEWORKS { option value=(f.id) { (f.title) } }
                }
            }
            label { "Control (optional)" input name="control" size="10" placeholder="CC1.4"; }
            label { "From" input name="from" type="date" required value=(year_ago.format("%Y-%m-%d")); }
            label { "To" input name="to" type="date" required value=(today.format("%Y-%m-%d")); }
            label { "Format"
                select name="format" {
                    option value="csv" { "CSV" }
                    option value="json" { "JSON" }
                    option value="oscal" { "OSCAL assessment results (JSON)" }
                }
            }
            button type="submit" { "Export evidence" }
        }
        p.muted { "Each export is kept as a snapshot, chained to the one before by its SHA-256, so that a change to any of them shows." }
        @if !snapshots.is_empty() {
            table {
                thead { tr { th { "Snapshot" } th { "Framework" } th { "Period" } th { "Format" } th { "Collected" } th { "SHA-256" } } }
                tbody {
                    @for s in &snapshots {
                        tr {
                            td { a href=(format!("{HOME}/evidence/snapshots/{}", s.id)) { "#" (s.id) } }
                            td { (s.framework) @if let Some(c) = &s.control { " " (c) } }
                            td { (s.period_from) " to " (s.period_to) }
                            td { (s.format) }
                            td { (when(s.collected_at)) }
                            td { code { (s.sha256.get(..16).unwrap_or(&s.sha256)) "…" } }
                        }
                    }
                }
            }
        }
        form.inline method="post" action=(format!("{HOME}/verify")) {
            (csrf(session))
            button type="submit" { "Verify every snapshot" }
        }
    };
    Ok(layout::page(
        session,
        Section::Compliance,
        "Compliance",
        body,
    ))
}

fn exceptions_table(
    session: &ConsoleSession,
    exceptions: &[Exception],
    requirement_title: &dyn Fn(i64) -> String,
    now: i64,
) -> Markup {
    html! {
        @if exceptions.is_empty() {
            p { "No exception granted." }
        } @else {
            table {
                thead { tr { th { "Person" } th { "Requirement" } th { "Reason" } th { "Granted" } th { "Until" } th { span.visually-hidden { "Action" } } } }
                tbody {
                    @for e in exceptions {
                        @let live = e.revoked_at.is_none() && e.expires_at.is_none_or(|at| at > now);
                        tr {
                            td { a href=(format!("/console/people/{}", e.user_id)) { "person " (e.user_id) } }
                            td { (requirement_title(e.requirement_id)) }
                            td { (e.reason) }
                            td { (when(e.created_at)) " by " (e.granted_by) }
                            td {
                                @if let Some(at) = e.revoked_at { "revoked " (when(at)) }
                                @else if let Some(at) = e.expires_at { (when(at)) }
                                @else { "for good" }
                            }
                            td {
                                @if live {
                                    form.inline method="post" action=(format!("{HOME}/exceptions/{}/revoke", e.id)) {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn control(
    State(state): State<AppState>,
    session: Session,
    Path((framework, control)): Path<(String, String)>,
) -> Response {
    let Some(found) = coachloop_core::compliance::catalog::control_of(&framework, &control) else {
        return layout::problem(
            Some(&session),
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such control in the catalog.",
        );
    };
    let history = match state
        .store
        .compliance_history(session.account, found.framework, found.id)
        .await
    {
        Ok(history) => history,
        Err(e) => return layout::store_error(e),
    };
    let points = |count: fn(&coachloop_store::compliance::HistoryEntry) -> i64| {
        history
            .iter()
            .map(|h| (coachloop_core::time::date_of_ms(h.at), count(h) as f64))
            .collect::<Vec<_>>()
    };
    let body = html! {
        p { (found.title) " (" (found.framework) ")" }
        @if history.is_empty() {
            p { "No verdict recorded yet: enable the framework to evaluate it." }
        } @else {
            figure {
                (PreEscaped(charts::lines("People by status over time", &[
                    Series { name: "compliant", points: points(|h| h.compliant) },
                    Series { name: "at risk", points: points(|h| h.at_risk) },
                    Series { name: "not compliant", points: points(|h| h.non_compliant) },
                ], None)))
                figcaption { "People in scope by status at each change of the verdict." }
            }
            table {
                thead { tr { th { "From" } th { "Status" } th.num { "Compliant" } th.num { "At risk" } th.num { "Not compliant" } th.num { "Excepted" } } }
                tbody {
                    @for h in history.iter().rev() {
                        tr {
                            td { (when(h.at)) }
                            td { (verdict_badge(&h.status)) }
                            td.num { (h.compliant) }
                            td.num { (h.at_risk) }
                            td.num { (h.non_compliant) }
                            td.num { (h.excepted) }
                        }
                    }
                }
            }
        }
        p { a href=(HOME) { "Back to compliance" } }
    };
    let title = format!("{} {}", found.framework, found.id);
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Compliance, &title, body),
    )
}

pub async fn framework(
    State(state): State<AppState>,
    Path(framework): Path<String>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let fields = Fields(posted.form);
    let method = if fields.get("enable") == "no" {
        Method::DELETE
    } else {
        Method::PUT
    };
    let path = format!("/api/compliance/frameworks/{}", segment(&framework));
    let answer = api::call(&state, &session, method, &path, None).await;
    answer.then_see(&session, HOME)
}

pub async fn evaluate(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let path = "/api/compliance/evaluate";
    let answer = api::call(&state, &session, Method::POST, path, None).await;
    answer.then_see(&session, HOME)
}

pub async fn grant_exception(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let fields = Fields(posted.form);
    let refuse = |what: String| {
        layout::problem(
            Some(&session),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not granted",
            &what,
        )
    };
    let text = fields.get("email").trim();
    let Ok(email) = Email::parse(text) else {
        return refuse(format!("email: {text:?} is not an email address"));
    };
    let user = match state.store.user_id_by_email(session.account, &email).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return refuse(format!(
                "email: nobody in this account has the address {text}"
            ));
        }
        Err(e) => return layout::store_error(e),
    };
    let body = json!({
        "requirement_id": fields.get("requirement_id").parse::<i64>().unwrap_or(0),
        "user_id": user.0,
        "reason": fields.get("reason").trim(),
        "expires_at": fields.given("expires_at"),
    });
    let path = "/api/compliance/exceptions";
    let answer = api::call(&state, &session, Method::POST, path, Some(body)).await;
    answer.then_see(&session, &format!("{HOME}#exceptions"))
}

pub async fn revoke_exception(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let path = format!("/api/compliance/exceptions/{id}");
    let answer = api::call(&state, &session, Method::DELETE, &path, None).await;
    answer.then_see(&session, &format!("{HOME}#exceptions"))
}

/// An export, downloaded as a file named for what it holds.
pub async fn export(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let fields = Fields(posted.form);
    let mut query: Vec<(&str, &str)> = ["framework", "from", "to", "format"]
        .into_iter()
        .map(|name| (name, fields.get(name).trim()))
        .collect();
    if let Some(control) = fields.given("control") {
        query.push(("control", control));
    }
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    let response = api::pass_through(
        &state,
        &session,
        &format!("/api/compliance/evidence?{query}"),
    )
    .await;
    download(&session, response, fields.get("format"))
}

pub async fn snapshot(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
) -> Response {
    let path = format!("/api/compliance/evidence/snapshots/{id}");
    let response = api::pass_through(&state, &session, &path).await;
    let format = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            if t.starts_with("text/csv") {
                "csv"
            } else {
                "json"
            }
        })
        .unwrap_or("json");
    download(&session, response, format)
}

/// The API's document as an attachment named by its snapshot; a refusal as a page.
fn download(session: &Session, mut response: Response, format: &str) -> Response {
    let status = response.status();
    if !status.is_success() {
        let what = match status {
            StatusCode::NOT_FOUND => "There is no such framework, control or snapshot.",
            StatusCode::BAD_REQUEST => {
                "A date is missing or the period is not valid (from must not be after to)."
            }
            _ => "The export could not be made; the server's log says why.",
        };
        return layout::problem(Some(session), status, "No evidence exported", what);
    }
    let snapshot = response
        .headers()
        .get(crate::api::evidence::SNAPSHOT_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("export")
        .to_owned();
    let extension = if format == "csv" { "csv" } else { "json" };
    let name = format!("attachment; filename=\"coachloop-evidence-{snapshot}.{extension}\"");
    if let Ok(value) = HeaderValue::from_str(&name) {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    response
}

pub async fn verify(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let path = "/api/compliance/evidence/verify";
    let answer = api::call(&state, &session, Method::GET, path, None).await;
    if !answer.ok() {
        return answer.then_see(&session, HOME);
    }
    let data = answer.data();
    let checked = data["checked"].as_i64().unwrap_or(0);
    let body = html! {
        @match data["broken"]["snapshot_id"].as_i64() {
            None => p.notice role="status" {
                "Verified: all " (checked) " snapshots match their records and their chain."
            },
            Some(id) => p.problem role="alert" {
                "Snapshot #" (id) " does not match: "
                (data["broken"]["what"].as_str().unwrap_or("it differs"))
                ". Every snapshot before it is intact."
            },
        }
        p { a href=(format!("{HOME}#evidence")) { "Back to compliance" } }
    };
    answer.noted(layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Compliance, "Evidence verified", body),
    ))
}
