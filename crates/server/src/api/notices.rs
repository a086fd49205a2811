//! A campaign's notices: `/api/campaigns/{id}/notices` — which notices it sends and when,
//! its own text per notice and language; a preview for a chosen person, and a test send
//! to an address the admin gives.

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::notices::compose::{self, Audience, Composed, NotComposed};
use crate::paging::DataOf;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use coachloop_core::FieldError;
use coachloop_core::ids::{CampaignId, UserId};
use coachloop_core::notice::template::{self, PLACEHOLDERS, TemplateText};
use coachloop_core::notice::{Notice, NoticeSettings};
use coachloop_core::time::format_ms;
use coachloop_store::notice_texts::{CampaignNotices, NewTemplate, NoticePerson};
use coachloop_store::notices::Attempt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_notices, set_notices))
        .routes(routes!(preview_notices))
        .routes(routes!(test_notice))
}

/// Templates a campaign may hold, at most.
const MAX_TEMPLATES: usize = 60;

/// Which notices a campaign sends, and when.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The email on enrolment (default true).
    #[serde(default = "yes")]
    pub enrolled: bool,
    /// Reminders, each an ISO 8601 duration before the due time (`P3D`; `PT0S` at the due
    /// time). A reminder never comes before half-way from enrolment to due. Default
    /// `["P1D"]`; `[]` for none.
    #[serde(default = "default_reminders")]
    #[schema(max_items = 10)]
    pub reminders: Vec<String>,
    /// To the learner when past due (default false).
    #[serde(default)]
    pub past_due: bool,
    /// To the learner's manager (`manager_email`) when past due (default true).
    #[serde(default = "yes")]
    pub past_due_manager: bool,
    /// To the learner on finishing (default false).
    #[serde(default)]
    pub completed: bool,
    /// Whether `{{ reason }}` may name the site an event happened on (default false).
    #[serde(default)]
    pub reason_shows_site: bool,
}

fn yes() -> bool {
    true
}

fn default_reminders() -> Vec<String> {
    NoticeSettings::default().reminders
}

impl Default for Settings {
    fn default() -> Self {
        NoticeSettings::default().into()
    }
}

impl From<NoticeSettings> for Settings {
    fn from(s: NoticeSettings) -> Self {
        Self {
            enrolled: s.enrolled,
            reminders: s.reminders,
            past_due: s.past_due,
            past_due_manager: s.past_due_manager,
            completed: s.completed,
            reason_shows_site: s.reason_shows_site,
        }
    }
}

impl From<Settings> for NoticeSettings {
    fn from(s: Settings) -> Self {
        Self {
            enrolled: s.enrolled,
            reminders: s.reminders,
            past_due: s.past_due,
            past_due_manager: s.past_due_manager,
            completed: s.completed,
            reason_shows_site: s.reason_shows_site,
        }
    }
}

/// A notice's text: a subject and a Markdown body with placeholders.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    #[schema(pattern = "^(enrolled|reminder|past_due|past_due_manager|completed)$")]
    pub notice: String,
    /// A language tag (`de`, `fr-CA`) chosen by the person's `language`; empty or absent:
    /// the text for every other language.
    #[serde(default)]
    #[schema(pattern = "^([A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*)?$")]
    pub language: String,
    #[schema(min_length = 1, max_length = 200)]
    pub subject: String,
    /// Markdown; `{{ placeholder }}`s as listed in `placeholders`.
    #[schema(min_length = 1, max_length = 20000)]
    pub body: String,
    /// The button to the learner's link (default: the built-in label).
    #[schema(min_length = 1, max_length = 60)]
    pub button: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticesInput {
    #[serde(default)]
    pub settings: Settings,
    /// Replaces every text of the campaign; a notice without one uses the built-in text.
    #[serde(default)]
    #[schema(max_items = 60)]
    pub templates: Vec<TemplateInput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoredTemplate {
    pub notice: String,
    pub language: String,
    pub subject: String,
    pub body: String,
    pub button: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BuiltIn {
    pub notice: String,
    pub subject: String,
    pub body: String,
    pub button: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Placeholder {
    pub name: String,
    pub description: String,
}

/// A campaign's notices, with the built-in texts and the placeholders to write with.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notices {
    pub settings: Settings,
    pub templates: Vec<StoredTemplate>,
    pub built_in: Vec<BuiltIn>,
    pub placeholders: Vec<Placeholder>,
}

impl From<CampaignNotices> for Notices {
    fn from(n: CampaignNotices) -> Self {
        Self {
            settings: n.settings.into(),
            templates: (n.templates.into_iter())
                .map(|t| StoredTemplate {
                    notice: t.notice.as_str().into(),
                    language: t.language,
                    subject: t.text.subject,
                    body: t.text.body,
                    button: t.text.button,
                    updated_at: format_ms(t.updated_at),
                })
                .collect(),
            built_in: (Notice::ALL.into_iter())
                .map(|notice| {
                    let text = template::builtin(notice);
                    BuiltIn {
                        notice: notice.as_str().into(),
                        subject: text.subject,
                        body: text.body,
                        button: text.button,
                    }
                })
                .collect(),
            placeholders: (PLACEHOLDERS.iter())
                .map(|(name, description)| Placeholder {
                    name: (*name).into(),
                    description: (*description).into(),
                })
                .collect(),
        }
    }
}

fn notice_named(field: &str, name: &str) -> Result<Notice, FieldError> {
    Notice::parse(name).ok_or_else(|| {
        FieldError::new(
            field,
            format!(
                "unknown notice `{name}`; one of: {}",
                Notice::ALL.map(|n| n.as_str()).join(", ")
            ),
        )
    })
}

fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first = parts.next().unwrap_or("");
    (2..=3).contains(&first.len())
        && first.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Checks every template (each problem named by its path) and the settings.
fn validated(input: NoticesInput) -> ApiResult<(NoticeSettings, Vec<NewTemplate>)> {
    let mut errors = Vec::new();
    let settings = match NoticeSettings::from(input.settings).validated() {
        Ok(settings) => Some(settings),
        Err(bad) => {
            errors.extend(
                bad.into_iter()
                    .map(|e| FieldError::new(format!("settings.{}", e.field), e.message)),
            );
            None
        }
    };
    if input.templates.len() > MAX_TEMPLATES {
        errors.push(FieldError::new(
            "templates",
            format!("at most {MAX_TEMPLATES} templates"),
        ));
    }
    let mut templates: Vec<NewTemplate> = Vec::new();
    for (i, t) in input.templates.into_iter().enumerate() {
        let at = |field: &str| format!("templates[{i}].{field}");
        let notice = match notice_named(&at("notice"), &t.notice) {
            Ok(notice) => notice,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let language = t.language.trim().to_owned();
        if !language.is_empty() && !is_language_tag(&language) {
            errors.push(FieldError::new(
                at("language"),
                "a language tag such as `de` or `fr-CA`, or empty for every other language",
            ));
            continue;
        }
        if (templates.iter()).any(|(n, l, _)| *n == notice && l.eq_ignore_ascii_case(&language)) {
            errors.push(FieldError::new(
                at("language"),
                format!("a second {notice} text for language `{language}`"),
            ));
            continue;
        }
        let text = TemplateText {
            subject: t.subject,
            body: t.body,
            button: t.button.unwrap_or_else(|| template::builtin(notice).button),
        };
        errors.extend(
            template::check(&text)
                .into_iter()
                .map(|e| FieldError::new(at(&e.field), e.message)),
        );
        templates.push((notice, language, text));
    }
    match settings {
        Some(settings) if errors.is_empty() => Ok((settings, templates)),
        _ => Err(ApiError::invalid(errors)),
    }
}

/// A campaign's notices: what it sends and when, its own texts, the built-in texts and
/// the placeholders.
#[utoipa::path(get, path = "/api/campaigns/{id}/notices", tag = "training",
    params(("id" = i64, Path, description = "campaign id")),
    responses(
        (status = 200, description = "the campaign's notices", body = DataOf<Notices>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such campaign in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_notices(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Notices>>> {
    let notices = state
        .store
        .campaign_notices(auth.account(), CampaignId(id))
        .await?;
    Ok(Json(DataOf {
        data: notices.into(),
    }))
}

/// Set which notices a campaign sends and when, and its texts (replacing all). A text
/// naming a placeholder that does not exist is refused. Notices already queued follow
/// the new settings and texts when they are sent.
#[utoipa::path(put, path = "/api/campaigns/{id}/notices", tag = "training",
    request_body = NoticesInput,
    params(("id" = i64, Path, description = "campaign id")),
    responses(
        (status = 200, description = "set", body = DataOf<Notices>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such campaign in this account", body = ErrorBody),
        (status = 422, description = "a bad setting or text, named by its path (an unknown placeholder, bad syntax, a bad reminder offset)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_notices(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
    Json(input): Json<NoticesInput>,
) -> ApiResult<Json<DataOf<Notices>>> {
    let (settings, templates) = validated(input)?;
    let notices = state
        .store
        .set_campaign_notices(auth.account(), CampaignId(id), &settings, &templates)
        .await?;
    Ok(Json(DataOf {
        data: notices.into(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// The person to render for: their enrolment in the campaign, or a sample of the one
    /// they would get.
    #[schema(minimum = 1)]
    pub user_id: i64,
    /// The notices to render (default: all).
    #[serde(default)]
    #[schema(schema_with = crate::schemas::notice_names)]
    pub notices: Vec<String>,
}

/// One notice as it would go out.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    pub notice: String,
    /// Whether the campaign sends this notice.
    pub sent: bool,
    /// The recipient, `Name <address>`; none when it would not go (see `skipped`).
    pub to: Option<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// The text's language variant: `""` the campaign's for any language; none: built in.
    pub language: Option<String>,
    /// Why it would not go (for example, the person has no manager).
    pub skipped: Option<String>,
}

/// A person's notices in a campaign, to preview or test: their enrolment (or a sample),
/// and the campaign's settings.
struct Sample {
    settings: NoticeSettings,
    enrollment: coachloop_store::campaigns::Enrollment,
    person: NoticePerson,
    base_url: String,
}

impl Sample {
    async fn of(
        state: &AppState,
        headers: &HeaderMap,
        auth: &crate::auth::Auth,
        campaign: CampaignId,
        user: i64,
    ) -> ApiResult<Self> {
        let account = auth.account();
        let settings = state
            .store
            .campaign_notices(account, campaign)
            .await?
            .settings;
        let enrollment = state
            .store
            .enrollment_or_sample(account, campaign, UserId(user))
            .await?;
        let person = state.store.user(account, enrollment.user_id).await?.into();
        Ok(Self {
            settings,
            enrollment,
            person,
            base_url: crate::learn::base_url(state, headers),
        })
    }

    /// The notice as it would go (a reminder: the earliest of the campaign's).
    async fn compose(&self, state: &AppState, notice: Notice) -> Result<Composed, NotComposed> {
        let offset = (notice == Notice::Reminder)
            .then(|| self.settings.reminders.first().cloned())
            .flatten();
        let text = state
            .store
            .notice_text(
                self.enrollment.account_id,
                self.enrollment.campaign_id,
                notice,
                self.person.language.as_deref(),
            )
            .await?;
        compose::compose(
            &state.store,
            &self.base_url,
            compose::Context {
                enrollment: &self.enrollment,
                person: &self.person,
                text,
            },
            notice,
            offset.as_deref(),
            Audience::Email,
            true,
        )
        .await
    }
}

fn mailbox(to: &(Option<String>, String)) -> String {
    match &to.0 {
        Some(name) => format!("{name} <{}>", to.1),
        None => to.1.clone(),
    }
}

/// Render a campaign's notices for a person without sending them.
#[utoipa::path(post, path = "/api/campaigns/{id}/notices/preview", tag = "training",
    request_body = PreviewInput,
    params(("id" = i64, Path, description = "campaign id")),
    responses(
        (status = 200, description = "each notice rendered", body = DataOf<Vec<Preview>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such campaign or person in this account", body = ErrorBody),
        (status = 422, description = "an unknown notice, named", body = ErrorBody)),
    security(("bearer" = [])))]
async fn preview_notices(
    State(state): State<AppState>,
    Admin(auth): Admin,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(input): Json<PreviewInput>,
) -> ApiResult<Json<DataOf<Vec<Preview>>>> {
    let notices: Vec<Notice> = if input.notices.is_empty() {
        Notice::ALL.to_vec()
    } else {
        (input.notices.iter().enumerate())
            .map(|(i, n)| notice_named(&format!("notices[{i}]"), n))
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::invalid(vec![e]))?
    };
    let sample = Sample::of(&state, &headers, &auth, CampaignId(id), input.user_id).await?;
    let settings = &sample.settings;
    let mut out = Vec::with_capacity(notices.len());
    for notice in notices {
        let composed = sample.compose(&state, notice).await;
        out.push(match composed {
            Ok(c) => Preview {
                notice: notice.as_str().into(),
                sent: settings.sends(notice),
                to: Some(mailbox(&c.to)),
                subject: Some(c.rendered.subject),
                text: Some(c.rendered.text),
                html: Some(c.rendered.html),
                language: c.language,
                skipped: None,
            },
            Err(NotComposed::Skip(reason)) => Preview {
                notice: notice.as_str().into(),
                sent: settings.sends(notice),
                to: None,
                subject: None,
                text: None,
                html: None,
                language: None,
                skipped: Some(reason),
            },
            Err(NotComposed::Store(e)) => return Err(e.into()),
        });
    }
    Ok(Json(DataOf { data: out }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    #[schema(pattern = "^(enrolled|reminder|past_due|past_due_manager|completed)$")]
    pub notice: String,
    /// Where the test goes (instead of the learner or manager).
    #[schema(schema_with = crate::schemas::email)]
    pub to: String,
    /// The person whose notice it is.
    #[schema(minimum = 1)]
    pub user_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestSent {
    pub to: String,
    pub subject: String,
    /// The SMTP server's answer code.
    pub status_code: Option<i64>,
}

/// Send one notice, as the person would get it, to an address the admin gives, now.
#[utoipa::path(post, path = "/api/campaigns/{id}/notices/test", tag = "training",
    request_body = TestInput,
    params(("id" = i64, Path, description = "campaign id")),
    responses(
        (status = 200, description = "sent", body = DataOf<TestSent>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such campaign or person in this account", body = ErrorBody),
        (status = 409, description = "this server sends no email (no `smtp_host`)", body = ErrorBody),
        (status = 422, description = "a bad address or notice, named; or the notice cannot go for this person (why is said)", body = ErrorBody),
        (status = 502, description = "the SMTP server refused or could not be reached (its answer is said)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn test_notice(
    State(state): State<AppState>,
    Admin(auth): Admin,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(input): Json<TestInput>,
) -> ApiResult<Json<DataOf<TestSent>>> {
    let notice = notice_named("notice", &input.notice).map_err(|e| ApiError::invalid(vec![e]))?;
    let to = input.to.trim();
    if to.parse::<lettre::Address>().is_err() {
        return Err(ApiError::invalid(vec![FieldError::new(
            "to",
            "an email address such as security@example.com",
        )]));
    }
    let sample = Sample::of(&state, &headers, &auth, CampaignId(id), input.user_id).await?;
    let Some(mailer) = &state.mailer else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this server sends no email: set smtp_host (see the README's configuration)",
        ));
    };
    let mut composed = match sample.compose(&state, notice).await {
        Ok(composed) => composed,
        Err(NotComposed::Skip(reason)) => {
            return Err(ApiError::invalid(vec![FieldError::new("notice", reason)]));
        }
        Err(NotComposed::Store(e)) => return Err(e.into()),
    };
    composed.to = (None, to.to_owned());
    let id = format!(
        "<test.{}.{}@coachloop>",
        notice.as_str(),
        uuid::Uuid::new_v4().simple()
    );
    match mailer.send(&composed, id).await {
        Attempt::Delivered { status_code } => Ok(Json(DataOf {
            data: TestSent {
                to: to.to_owned(),
                subject: composed.rendered.subject,
                status_code,
            },
        })),
        Attempt::Skipped { reason } => Err(ApiError::invalid(vec![FieldError::new("to", reason)])),
        Attempt::Failed { error, .. } => {
            Err(ApiError::new(StatusCode::BAD_GATEWAY, "bad_gateway", error))
        }
    }
}
