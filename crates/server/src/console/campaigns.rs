//! Campaigns: the list with each one's progress, a campaign's page with its enrolments,
//! and the form that creates one — content, groups (or everyone), a start, an end date
//! or a time to finish from each enrolment, automatic enrolment. The form's values go
//! through the same checks as `POST /api/campaigns`.

use super::layout::{self, PageQuery, Section, csrf, pager, when};
use super::people::{name_of, page_of};
use super::session::{Posted, Session, see_other};
use super::why;
use crate::AppState;
use crate::api::training::CampaignInput;
use crate::audit::Note;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use coachloop_core::ids::CampaignId;
use coachloop_store::campaigns::{Campaign, EnrollmentFilter};
use coachloop_store::content::ContentFilter;
use coachloop_store::groups::GroupFilter;
use coachloop_store::{Page, StoreError};
use maud::{Markup, html};
use serde_json::json;

fn progress(c: &Campaign) -> Markup {
    html! {
        (c.finished) " of " (c.enrolled) " finished"
        @if c.enrolled > 0 { " (" (c.completion_percentage()) "%)" }
    }
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PageQuery>,
) -> Response {
    let page = page_of(query.page.as_deref(), 50);
    let (campaigns, total) = match state
        .store
        .list_campaigns(session.account, None, page)
        .await
    {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let body = html! {
        p { a href="/console/campaigns/new" { "New campaign" } }
        table {
            thead { tr { th { "Name" } th { "Status" } th { "Groups" } th { "Enrols joiners" } th { "Progress" } } }
            tbody {
                @for c in &campaigns {
                    tr {
                        td { a href=(format!("/console/campaigns/{}", c.id.0)) { (c.name) } }
                        td { (c.status) }
                        td { @if c.all_users { "everyone" } @else {
                            @for (i, (_, name)) in c.groups.iter().enumerate() { @if i > 0 { ", " } (name) } } }
                        td { @if c.auto_enroll { "yes" } @else { "no" } }
                        td { (progress(c)) }
                    }
                }
            }
        }
        (pager("/console/campaigns", &[], page, total))
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Campaigns, "Campaigns", body),
    )
}

pub async fn campaign(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> Response {
    let page = page_of(query.page.as_deref(), 50);
    let found = async {
        let campaign = state
            .store
            .campaign(session.account, CampaignId(id))
            .await?;
        let filter = EnrollmentFilter {
            campaign_id: Some(CampaignId(id)),
            ..EnrollmentFilter::default()
        };
        let enrollments = state
            .store
            .list_enrollments(session.account, &filter, page)
            .await?;
        Ok::<_, StoreError>((campaign, enrollments))
    }
    .await;
    let (c, (enrollments, total)) = match found {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let body = html! {
        p { a href=(format!("/console/campaigns/{id}/notices")) { "Notifications: what is sent, when, and its text" } }
        dl.facts {
            dt { "Status" } dd { (c.status) }
            dt { "Starts" } dd { (when(c.start_at)) }
            dt { "Due" } dd {
                @if let Some(end) = c.end_at { (when(end)) }
                @else if let Some(d) = &c.relative_duration { (d) " after each enrolment" }
            }
            dt { "Enrols people who join later" } dd { @if c.auto_enroll { "yes" } @else { "no" } }
            dt { "Progress" } dd { (progress(&c)) }
        }
        h2 { "Enrolments" }
        @if enrollments.is_empty() {
            p { "Nobody is enrolled yet." }
        } @else {
            table {
                thead { tr { th { "Person" } th { "Content" } th { "Status" } th { "Enrolled" } th { "Why" } } }
                tbody {
                    @for e in &enrollments {
                        tr {
                            td { a href=(format!("/console/people/{}", e.user_id.0)) {
                                (name_of(e.first_name.as_deref(), e.last_name.as_deref(), &e.email)) } }
                            td { (e.content_title) }
                            td { (e.status) }
                            td { (when(e.enrolled_at)) }
                            td { (why::cause(&e.cause, |id| c.groups.iter()
                                .find(|(g, _)| g.0 == id).map(|(_, name)| name.clone()))) }
                        }
                    }
                }
            }
            (pager(&format!("/console/campaigns/{id}"), &[], page, total))
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Campaigns, &c.name, body),
    )
}

/// The form's values: repeated `content` and `groups` fields, and the rest.
#[derive(Debug, Default)]
struct Draft {
    fields: Vec<(String, String)>,
}

impl Draft {
    fn get(&self, key: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .unwrap_or_default()
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn input(&self) -> Result<CampaignInput, String> {
        let ids = |key: &str| -> Result<Vec<i64>, String> {
            self.all(key)
                .iter()
                .map(|v| {
                    v.parse()
                        .map_err(|_| format!("`{v}` is not one of the {key}"))
                })
                .collect()
        };
        let optional = |key: &str| Some(self.get(key).to_owned()).filter(|v| !v.is_empty());
        let (end_date, relative_duration) = match self.get("due") {
            "date" => (optional("end_date"), None),
            _ => (
                None,
                Some(format!(
                    "P{}D",
                    match self.get("days") {
                        "" => "7",
                        d => d,
                    }
                )),
            ),
        };
        Ok(CampaignInput {
            name: self.get("name").to_owned(),
            content: ids("content")?,
            groups: ids("groups")?,
            start_date: optional("start_date"),
            end_date,
            relative_duration,
            auto_enroll: Some(self.get("auto_enroll") == "on"),
            allow_multiple_enrollments: Some(self.get("allow_multiple") == "on"),
            cooldown: None,
        })
    }
}

async fn form(
    state: &AppState,
    session: &Session,
    draft: &Draft,
    problem: Option<&str>,
) -> Result<Markup, StoreError> {
    let (content, _) = state
        .store
        .list_content(
            session.account,
            &ContentFilter::default(),
            Page::new(1, 500),
        )
        .await?;
    let (groups, _) = state
        .store
        .list_groups(
            session.account,
            &GroupFilter {
                status: Some("active".to_owned()),
                group_type: None,
            },
            Page::new(1, 500),
        )
        .await?;
    let chosen = |key: &str, id: i64| draft.all(key).contains(&id.to_string().as_str());
    let fresh = draft.fields.is_empty();
    Ok(layout::page(
        session,
        Section::Campaigns,
        "New campaign",
        html! {
            @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
            form.stack method="post" action="/console/campaigns/new" {
                (csrf(session))
                label for="name" { "Name" }
                input id="name" name="name" value=(draft.get("name")) required maxlength="255";
                label for="content" { "Content (in the order learners see it)" }
                select id="content" name="content" multiple size="8" required {
                    @for c in &content {
                        option value=(c.id.0) selected[chosen("content", c.id.0)] {
                            (c.title) " (" (c.kind.as_str()) ", " (c.minutes) " min)" }
                    }
                }
                label for="groups" { "Groups" }
                select id="groups" name="groups" multiple size="6" required {
                    option value="0" selected[chosen("groups", 0)] { "Everyone (every active person)" }
                    @for g in &groups {
                        option value=(g.id.0) selected[chosen("groups", g.id.0)] { (g.name) " (" (g.member_count) ")" }
                    }
                }
                label for="start_date" { "Starts (empty: now)" }
                input id="start_date" name="start_date" type="date" value=(draft.get("start_date"));
                fieldset {
                    legend { "Due" }
                    label.choice { input type="radio" name="due" value="days" checked[draft.get("due") != "date"];
                        " a number of days after each enrolment" }
                    label for="days" { "Days" }
                    input id="days" name="days" type="number" min="1" value=(match draft.get("days") { "" => "7", d => d });
                    label.choice { input type="radio" name="due" value="date" checked[draft.get("due") == "date"];
                        " on one date for everyone" }
                    label for="end_date" { "Date" }
                    input id="end_date" name="end_date" type="date" value=(draft.get("end_date"));
                }
                label.choice { input type="checkbox" name="auto_enroll" checked[fresh || draft.get("auto_enroll") == "on"];
                    " Enrol people who join a group later, the instant they join" }
                label.choice { input type="checkbox" name="allow_multiple" checked[draft.get("allow_multiple") == "on"];
                    " Enrol a person again once they have finished" }
                button type="submit" { "Create the campaign" }
            }
        },
    ))
}

pub async fn new(State(state): State<AppState>, session: Session) -> Response {
    match form(&state, &session, &Draft::default(), None).await {
        Ok(markup) => layout::respond(StatusCode::OK, markup),
        Err(e) => layout::store_error(e),
    }
}

pub async fn create(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let Posted {
        session,
        form: fields,
    } = posted;
    let draft = Draft {
        fields: fields.into_iter().filter(|(k, _)| k != "csrf").collect(),
    };
    let now = state.store.clock().now_ms();
    let new = match draft.input().and_then(|input| {
        input.into_new(now).map_err(|e| match e.details.first() {
            Some(d) => format!("{}: {}", d.field, d.message),
            None => e.message,
        })
    }) {
        Ok(new) => new,
        Err(problem) => return refuse(&state, &session, &draft, problem).await,
    };
    match state.store.create_campaign(session.account, &new).await {
        Ok((campaign, enrolled)) => {
            let mut response = see_other(&format!("/console/campaigns/{}", campaign.id.0));
            response.extensions_mut().insert(Note {
                method: None,
                path: Some(format!("/api/campaigns/{}", campaign.id.0)),
                before: None,
                after: Some(
                    json!({"name": campaign.name, "auto_enroll": campaign.auto_enroll,
                                   "enrolled": enrolled}),
                ),
            });
            response
        }
        Err(e @ (StoreError::Invalid(_) | StoreError::Conflict(_) | StoreError::NotFound(_))) => {
            refuse(&state, &session, &draft, e.to_string()).await
        }
        Err(e) => layout::store_error(e),
    }
}

/// The form again, with what to fix.
async fn refuse(state: &AppState, session: &Session, draft: &Draft, problem: String) -> Response {
    match form(state, session, draft, Some(&problem)).await {
        Ok(markup) => layout::respond(StatusCode::UNPROCESSABLE_ENTITY, markup),
        Err(e) => layout::store_error(e),
    }
}
