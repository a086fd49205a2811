//! A campaign's notifications: which notices it sends and when, its own subject and body
//! for each (Markdown with placeholders; blank keeps the built-in text), one language at
//! a time, and a preview of each notice for a person. Saved and previewed through the
//! API (`PUT` and `POST …/notices/preview`), which checks placeholders and offsets.

use super::api;
use super::layout::{self, Section, csrf};
use super::session::{Fields, Posted, Session};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use coachloop_core::identity::Email;
use coachloop_core::ids::CampaignId;
use coachloop_core::notice::Notice;
use coachloop_core::notice::template::{self, PLACEHOLDERS};
use coachloop_store::notice_texts::CampaignNotices;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Default, Deserialize)]
pub struct LanguageQuery {
    /// The language whose texts the form edits (`""`: the default for every other).
    pub language: Option<String>,
}

fn title(notice: Notice) -> &'static str {
    match notice {
        Notice::Enrolled => "On enrolment",
        Notice::Reminder => "Reminders",
        Notice::PastDue => "Past due, to the learner",
        Notice::PastDueManager => "Past due, to the manager",
        Notice::Completed => "On completion",
    }
}

/// The setting that turns a notice on (reminders are on when any offset is given).
fn switch(notice: Notice) -> Option<&'static str> {
    match notice {
        Notice::Enrolled => Some("enrolled"),
        Notice::Reminder => None,
        Notice::PastDue => Some("past_due"),
        Notice::PastDueManager => Some("past_due_manager"),
        Notice::Completed => Some("completed"),
    }
}

struct Form<'a> {
    campaign: i64,
    name: &'a str,
    language: &'a str,
    notices: &'a CampaignNotices,
    /// A refused form's values and what to fix; or a preview to show.
    draft: Option<&'a Fields>,
    problem: Option<String>,
    preview: Option<Markup>,
}

fn page(session: &Session, form: Form<'_>) -> Markup {
    let settings = &form.notices.settings;
    let stored = |notice: Notice| {
        form.notices
            .templates
            .iter()
            .find(|t| t.notice == notice && t.language == form.language)
            .map(|t| &t.text)
    };
    let field = |notice: Notice, part: &str| -> String {
        let name = format!("{}.{part}", notice.as_str());
        match form.draft {
            Some(draft) => draft.get(&name).to_owned(),
            None => stored(notice)
                .map(|t| match part {
                    "subject" => t.subject.clone(),
                    "body" => t.body.clone(),
                    _ => t.button.clone(),
                })
                .unwrap_or_default(),
        }
    };
    let on = |name: &str, stored: bool| match form.draft {
        Some(draft) => draft.get(name) == "on",
        None => stored,
    };
    let reminders = match form.draft {
        Some(draft) => draft.get("reminders").to_owned(),
        None => settings.reminders.join(", "),
    };
    let action = format!("/console/campaigns/{}/notices", form.campaign);
    let languages: Vec<&str> = {
        let mut found: Vec<&str> = form
            .notices
            .templates
            .iter()
            .map(|t| t.language.as_str())
            .filter(|l| !l.is_empty())
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    };
    let body = html! {
        p { a href=(format!("/console/campaigns/{}", form.campaign)) { "Back to " (form.name) } }
        @if let Some(problem) = &form.problem { p.problem role="alert" { (problem) } }
        @if let Some(preview) = form.preview { (preview) }
        nav aria-label="Languages" {
            "Texts for: "
            @if form.language.is_empty() { strong { "every language (default)" } }
            @else { a href=(action) { "every language (default)" } }
            @for l in &languages {
                " · "
                @if *l == form.language { strong { (l) } }
                @else { a href=(format!("{action}?language={l}")) { (l) } }
            }
            form.inline method="get" action=(action) {
                label { "Another language (a tag such as fr or pt-BR)"
                    input name="language" size="8" pattern="[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*"; }
                button type="submit" { "Edit its texts" }
            }
        }
        form.stack method="post" action=(action) {
            (csrf(session))
            input type="hidden" name="language" value=(form.language);
            fieldset {
                legend { "What is sent" }
                @for notice in Notice::ALL {
                    @if let Some(name) = switch(notice) {
                        label.choice {
                            input type="checkbox" name=(name)
                                checked[on(name, settings.sends(notice))];
                            " " (title(notice))
                        }
                    }
                }
                label for="reminders" { "Reminders before the due time (ISO 8601, comma-separated: P3D, PT0S for the due time; none: no reminders)" }
                input #reminders name="reminders" value=(reminders);
                label.choice {
                    input type="checkbox" name="reason_shows_site"
                        checked[on("reason_shows_site", settings.reason_shows_site)];
                    " The reason may name the site an event happened on"
                }
            }
            p.muted {
                "Placeholders: "
                @for (name, description) in PLACEHOLDERS {
                    code title=(description) { "{{ " (name) " }}" } " "
                }
            }
            @for notice in Notice::ALL {
                @let builtin = template::builtin(notice);
                @let id = notice.as_str();
                fieldset {
                    legend { (title(notice)) }
                    label for=(format!("{id}-subject")) { "Subject (blank: the built-in text)" }
                    input id=(format!("{id}-subject")) name=(format!("{id}.subject"))
                        value=(field(notice, "subject")) placeholder=(builtin.subject) maxlength="200";
                    label for=(format!("{id}-body")) { "Body, Markdown" }
                    textarea id=(format!("{id}-body")) name=(format!("{id}.body")) rows="6"
                        placeholder=(builtin.body) { (field(notice, "body")) }
                    label for=(format!("{id}-button")) { "Button label" }
                    input id=(format!("{id}-button")) name=(format!("{id}.button"))
                        value=(field(notice, "button")) placeholder=(builtin.button) maxlength="60";
                }
            }
            div.actions { button type="submit" { "Save notifications" } }
        }
        h2 { "Preview" }
        form.inline method="post" action=(format!("{action}/preview")) {
            (csrf(session))
            input type="hidden" name="language" value=(form.language);
            label { "For the person with the email" input name="email" type="email" required; }
            button type="submit" { "Preview every notice" }
        }
    };
    let heading = format!("Notifications: {}", form.name);
    layout::page(session, Section::Campaigns, &heading, body)
}

async fn load(
    state: &AppState,
    session: &Session,
    id: i64,
) -> Result<(String, CampaignNotices), Response> {
    let found = tokio::try_join!(
        state.store.campaign(session.account, CampaignId(id)),
        state
            .store
            .campaign_notices(session.account, CampaignId(id))
    );
    match found {
        Ok((campaign, notices)) => Ok((campaign.name, notices)),
        Err(e) => Err(layout::store_error(e)),
    }
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Query(query): Query<LanguageQuery>,
) -> Response {
    let (name, notices) = match load(&state, &session, id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let language = query.language.unwrap_or_default();
    let form = Form {
        campaign: id,
        name: &name,
        language: language.trim(),
        notices: &notices,
        draft: None,
        problem: None,
        preview: None,
    };
    layout::respond(StatusCode::OK, page(&session, form))
}

/// The request body of `PUT …/notices`: the form's settings, its language's texts, and
/// every other language's texts as they are.
fn input(fields: &Fields, notices: &CampaignNotices) -> Value {
    let language = fields.get("language").trim();
    let mut templates: Vec<Value> = notices
        .templates
        .iter()
        .filter(|t| t.language != language)
        .map(|t| {
            json!({"notice": t.notice.as_str(), "language": t.language,
                   "subject": t.text.subject, "body": t.text.body, "button": t.text.button})
        })
        .collect();
    for notice in Notice::ALL {
        let part = |p: &str| fields.get(&format!("{}.{p}", notice.as_str())).trim();
        // Subject and body together make a text; a blank pair keeps the built-in one.
        if part("subject").is_empty() && part("body").is_empty() {
            continue;
        }
        let mut template = json!({"notice": notice.as_str(), "language": language,
                                  "subject": part("subject"), "body": part("body")});
        if !part("button").is_empty() {
            template["button"] = json!(part("button"));
        }
        templates.push(template);
    }
    let reminders: Vec<&str> = fields
        .get("reminders")
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    let on = |name: &str| fields.get(name) == "on";
    json!({
        "settings": {
            "enrolled": on("enrolled"),
            "reminders": reminders,
            "past_due": on("past_due"),
            "past_due_manager": on("past_due_manager"),
            "completed": on("completed"),
            "reason_shows_site": on("reason_shows_site"),
        },
        "templates": templates,
    })
}

pub async fn save(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let fields = Fields(posted.form);
    let (name, notices) = match load(&state, &session, id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let path = format!("/api/campaigns/{id}/notices");
    let answer = api::call(
        &state,
        &session,
        Method::PUT,
        &path,
        Some(input(&fields, &notices)),
    )
    .await;
    let language = fields.get("language").trim();
    if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
        let form = Form {
            campaign: id,
            name: &name,
            language,
            notices: &notices,
            draft: Some(&fields),
            problem: Some(answer.problem()),
            preview: None,
        };
        return layout::respond(StatusCode::UNPROCESSABLE_ENTITY, page(&session, form));
    }
    let back = match language {
        "" => path.replacen("/api/", "/console/", 1),
        l => format!(
            "{}?language={}",
            path.replacen("/api/", "/console/", 1),
            api::segment(l)
        ),
    };
    answer.then_see(&session, &back)
}

pub async fn preview(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<Vec<(String, String)>>,
) -> Response {
    let session = posted.session;
    let fields = Fields(posted.form);
    let (name, notices) = match load(&state, &session, id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let language = fields.get("language").trim();
    let respond = |status: StatusCode, problem: Option<String>, preview: Option<Markup>| {
        let form = Form {
            campaign: id,
            name: &name,
            language,
            notices: &notices,
            draft: None,
            problem,
            preview,
        };
        layout::respond(status, page(&session, form))
    };
    let email = fields.get("email").trim();
    let user = match Email::parse(email) {
        Ok(email) => state.store.user_id_by_email(session.account, &email).await,
        Err(_) => Ok(None),
    };
    let user = match user {
        Ok(Some(user)) => user,
        Ok(None) => {
            return respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(format!(
                    "email: nobody in this account has the address {email:?}"
                )),
                None,
            );
        }
        Err(e) => return layout::store_error(e),
    };
    let path = format!("/api/campaigns/{id}/notices/preview");
    let body = json!({"user_id": user.0});
    let answer = api::call(&state, &session, Method::POST, &path, Some(body)).await;
    if !answer.ok() {
        return respond(answer.status, Some(answer.problem()), None);
    }
    let shown = html! {
        section.card aria-label="Preview" {
            p.muted { "As " (email) " would receive each notice, with the texts saved now:" }
            @for p in answer.data().as_array().into_iter().flatten() {
                h3 {
                    (p["notice"].as_str().unwrap_or_default())
                    @if p["sent"] == false { " " span.badge { "not sent by this campaign" } }
                }
                @if let Some(skipped) = p["skipped"].as_str() {
                    p { "Not sent: " (skipped) }
                } @else {
                    dl.facts {
                        dt { "To" } dd { (p["to"].as_str().unwrap_or_default()) }
                        dt { "Subject" } dd { (p["subject"].as_str().unwrap_or_default()) }
                        @if let Some(language) = p["language"].as_str() { dt { "Language" } dd { (language) } }
                    }
                    pre { (p["text"].as_str().unwrap_or_default()) }
                }
            }
        }
    };
    respond(StatusCode::OK, None, Some(shown))
}
