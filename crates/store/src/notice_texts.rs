//! A campaign's notices as its admin set them: which it sends and when, and its own text
//! for each notice per language; and what goes into a notice about one enrolment (the
//! text for the learner's language, the reason they were enrolled).

use crate::campaigns::{ENROLLMENT_COLUMNS, ENROLLMENT_FROM, Enrollment};
use crate::{Locks, Result, Store, StoreError};
use coachloop_core::event_id::EventId;
use coachloop_core::ids::{AccountId, CampaignId, EnrollmentId};
use coachloop_core::notice::reason::{self, Happened};
use coachloop_core::notice::template::{self, TemplateText};
use coachloop_core::notice::{Notice, NoticeSettings, choose_language};
use serde::Deserialize;
use sqlx::FromRow;
use std::collections::HashMap;

/// A campaign's own text for one notice in one language (`""`: any other language).
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeTemplate {
    pub notice: Notice,
    pub language: String,
    pub text: TemplateText,
    pub updated_at: i64,
}

/// A text to store: the notice, the language (`""`: any other), the text.
pub type NewTemplate = (Notice, String, TemplateText);

/// What a campaign sends, and its own texts.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignNotices {
    pub settings: NoticeSettings,
    pub templates: Vec<NoticeTemplate>,
}

/// Who an enrolment's person is, as far as a notice needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoticePerson {
    pub language: Option<String>,
    pub manager_name: Option<String>,
    pub manager_email: Option<String>,
}

impl From<crate::users::User> for NoticePerson {
    fn from(user: crate::users::User) -> Self {
        Self {
            language: user.language,
            manager_name: user.manager_name,
            manager_email: user.manager_email,
        }
    }
}

/// What a notice about one enrolment is made from (see [`Store::notice_context`]).
#[derive(Debug, Clone)]
pub struct NoticeContext {
    pub enrollment: Enrollment,
    pub person: NoticePerson,
    pub text: NoticeText,
}

/// The text of one notice for one person: the campaign's, or the built-in one.
#[derive(Debug, Clone, PartialEq)]
pub struct NoticeText {
    pub settings: NoticeSettings,
    pub text: TemplateText,
    /// The variant used (`Some("")`: the campaign's for any language); `None`: built in.
    pub language: Option<String>,
}

#[derive(FromRow)]
struct TemplateRow {
    notice: String,
    language: String,
    subject: String,
    body: String,
    button: String,
    updated_at: i64,
}

impl TryFrom<TemplateRow> for NoticeTemplate {
    type Error = StoreError;

    fn try_from(row: TemplateRow) -> Result<Self> {
        Ok(Self {
            notice: Notice::parse(&row.notice).ok_or_else(|| {
                StoreError::Corrupt(format!("a notice template names `{}`", row.notice))
            })?,
            language: row.language,
            text: TemplateText {
                subject: row.subject,
                body: row.body,
                button: row.button,
            },
            updated_at: row.updated_at,
        })
    }
}

/// What an enrolment's `cause` says of a smart-group join (see `campaigns::enrol_joins`).
#[derive(Deserialize)]
struct JoinCause {
    kind: String,
    group_id: Option<i64>,
    at: Option<String>,
    #[serde(default)]
    evidence: Vec<serde_json::Value>,
}

fn read_settings(campaign: CampaignId, stored: Option<&str>) -> Result<NoticeSettings> {
    NoticeSettings::from_stored(stored)
        .map_err(|e| StoreError::Corrupt(format!("campaign {campaign}: {e}")))
}

impl Store {
    pub async fn campaign_notices(
        &self,
        account: AccountId,
        campaign: CampaignId,
    ) -> Result<CampaignNotices> {
        let stored: Option<Option<String>> =
            sqlx::query_scalar("SELECT notices FROM campaigns WHERE account_id = $1 AND id = $2")
                .bind(account.0)
                .bind(campaign.0)
                .fetch_optional(&self.read)
                .await?;
        let stored = stored.ok_or(StoreError::NotFound("campaign"))?;
        let rows: Vec<TemplateRow> = sqlx::query_as(
            "SELECT notice, language, subject, body, button, updated_at FROM notice_templates \
             WHERE account_id = $1 AND campaign_id = $2 ORDER BY notice, language",
        )
        .bind(account.0)
        .bind(campaign.0)
        .fetch_all(&self.read)
        .await?;
        Ok(CampaignNotices {
            settings: read_settings(campaign, stored.as_deref())?,
            templates: rows
                .into_iter()
                .map(NoticeTemplate::try_from)
                .collect::<Result<_>>()?,
        })
    }

    /// Replaces a campaign's notice settings and all its own texts (checked by the
    /// caller). Notices already queued follow the new settings when they are sent.
    pub async fn set_campaign_notices(
        &self,
        account: AccountId,
        campaign: CampaignId,
        settings: &NoticeSettings,
        templates: &[NewTemplate],
    ) -> Result<CampaignNotices> {
        let now = self.now_ms();
        let mut tx = self.begin_write(&Locks::none()).await?;
        let updated = sqlx::query(
            "UPDATE campaigns SET notices = $1, updated_at = $2 WHERE account_id = $3 AND id = $4",
        )
        .bind(settings.to_stored())
        .bind(now)
        .bind(account.0)
        .bind(campaign.0)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("campaign"));
        }
        sqlx::query("DELETE FROM notice_templates WHERE account_id = $1 AND campaign_id = $2")
            .bind(account.0)
            .bind(campaign.0)
            .execute(&mut *tx)
            .await?;
        for (notice, language, text) in templates {
            sqlx::query(
                "INSERT INTO notice_templates (account_id, campaign_id, notice, language, \
                 subject, body, button, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(account.0)
            .bind(campaign.0)
            .bind(notice.as_str())
            .bind(language)
            .bind(&text.subject)
            .bind(&text.body)
            .bind(&text.button)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.campaign_notices(account, campaign).await
    }

    /// The campaign's settings and the text of `notice` for a person whose language is
    /// `language` (see [`choose_language`]), in one read.
    pub async fn notice_text(
        &self,
        account: AccountId,
        campaign: CampaignId,
        notice: Notice,
        language: Option<&str>,
    ) -> Result<NoticeText> {
        let rows: Vec<TextRow> = sqlx::query_as(
            "SELECT c.notices, n.language AS text_language, n.subject, n.body, n.button \
             FROM campaigns c LEFT JOIN notice_templates n ON n.account_id = c.account_id \
             AND n.campaign_id = c.id AND n.notice = $3 WHERE c.account_id = $1 AND c.id = $2",
        )
        .bind(account.0)
        .bind(campaign.0)
        .bind(notice.as_str())
        .fetch_all(&self.read)
        .await?;
        chosen_text(campaign, notice, language, &rows)
    }

    /// Everything a notice about one enrolment is made from, in one read: the enrolment,
    /// who the person is, and the campaign's settings and text in their language. The
    /// notice runner's read for each email and chat message.
    pub async fn notice_context(
        &self,
        account: AccountId,
        enrollment: EnrollmentId,
        notice: Notice,
    ) -> Result<NoticeContext> {
        let rows: Vec<ContextRow> = sqlx::query_as(&format!(
            "SELECT {ENROLLMENT_COLUMNS}, u.language, u.manager_name, u.manager_email, \
             c.notices, n.language AS text_language, n.subject, n.body, n.button \
             FROM {ENROLLMENT_FROM} LEFT JOIN notice_templates n \
             ON n.account_id = e.account_id AND n.campaign_id = e.campaign_id AND n.notice = $3 \
             WHERE e.account_id = $1 AND e.id = $2"
        ))
        .bind(account.0)
        .bind(enrollment.0)
        .bind(notice.as_str())
        .fetch_all(&self.read)
        .await?;
        let Some(first) = rows.first() else {
            return Err(StoreError::NotFound("enrollment"));
        };
        let texts: Vec<TextRow> = rows.iter().map(|row| row.text.clone()).collect();
        Ok(NoticeContext {
            text: chosen_text(
                first.enrollment.campaign_id,
                notice,
                first.language.as_deref(),
                &texts,
            )?,
            person: NoticePerson {
                language: first.language.clone(),
                manager_name: first.manager_name.clone(),
                manager_email: first.manager_email.clone(),
            },
            enrollment: first.enrollment.clone(),
        })
    }

    /// Why an enrolment was made, as a sentence for the learner (see
    /// [`reason::sentence`]): only for one a smart-group join caused. The site of the
    /// latest event is named only when `show_site`. It reads the counted events that date
    /// it (the most recent and the oldest of each kind; one for a single event) with
    /// their type's description, and the group's name only for a join on attributes
    /// alone.
    pub async fn enrollment_reason(
        &self,
        enrollment: &Enrollment,
        show_site: bool,
    ) -> Result<Option<String>> {
        let Ok(cause) = serde_json::from_str::<JoinCause>(&enrollment.cause) else {
            return Ok(None);
        };
        if cause.kind != "group_joined" {
            return Ok(None);
        }
        let account = enrollment.account_id.0;
        // Per event leaf: (its type, how many counted, the most recent id, the oldest id).
        let leaves: Vec<(&str, Option<u64>, EventId, EventId)> = (cause.evidence.iter())
            .filter(|evidence| evidence["kind"] == "events")
            .filter_map(|evidence| {
                let ids: Vec<EventId> = (evidence["events"].as_array().into_iter().flatten())
                    .filter_map(|id| id.as_str()?.parse::<uuid::Uuid>().ok())
                    .map(EventId::from_uuid)
                    .collect();
                Some((
                    evidence["event_type"].as_str().unwrap_or_default(),
                    evidence["count"].as_u64().or(Some(ids.len() as u64)),
                    *ids.first()?,
                    *ids.last()?,
                ))
            })
            .collect();
        // Each dating event by its key alone: a list of keys beside the account's
        // condition is planned, on a PostgreSQL table that grows fast, as a read of every
        // event of the account (0.5–2 ms an email at 20,000 events, against 0.02 ms).
        let mut events: HashMap<i64, (i64, Option<String>, Option<String>)> = HashMap::new();
        for (_, _, latest, oldest) in &leaves {
            for id in [latest.hi, oldest.hi] {
                if events.contains_key(&id) {
                    continue;
                }
                let row: Option<(i64, Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT t.occurred_at, t.metadata, \
                     (SELECT description FROM event_types WHERE id = t.event_type_id) \
                     FROM events t WHERE t.id = $1 AND t.account_id = $2",
                )
                .bind(id)
                .bind(account)
                .fetch_optional(&self.read)
                .await?;
                if let Some(row) = row {
                    events.insert(id, row);
                }
            }
        }
        let mut happened = Vec::new();
        for (event_type, count, latest, oldest) in leaves {
            // An event deleted since leaves the sentence to the rest.
            let Some((last_ms, metadata, description)) = events.get(&latest.hi) else {
                continue;
            };
            let first_ms = events.get(&oldest.hi).map_or(*last_ms, |(at, ..)| *at);
            happened.push(Happened {
                what: (description.clone())
                    .filter(|d| !d.trim().is_empty())
                    .unwrap_or_else(|| reason::name_in_words(event_type)),
                count: count.unwrap_or(1) as usize,
                first_ms: first_ms.min(*last_ms),
                last_ms: *last_ms,
                site: show_site.then(|| site_of(metadata.as_deref())).flatten(),
            });
        }
        let group: Option<String> = if happened.is_empty() {
            sqlx::query_scalar("SELECT name FROM groups WHERE account_id = $1 AND id = $2")
                .bind(account)
                .bind(cause.group_id.unwrap_or_default())
                .fetch_optional(&self.read)
                .await?
        } else {
            None
        };
        let joined_ms = (cause.at.as_deref())
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map_or(enrollment.enrolled_at, |at| at.timestamp_millis());
        Ok(Some(reason::sentence(
            &happened,
            group.as_deref().unwrap_or("a smart group"),
            joined_ms,
            self.now_ms(),
        )))
    }
}

/// A campaign's stored settings beside one of its texts for a notice (none: a row of
/// the campaign with no text of its own).
#[derive(Clone, FromRow)]
struct TextRow {
    notices: Option<String>,
    text_language: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    button: Option<String>,
}

#[derive(FromRow)]
struct ContextRow {
    #[sqlx(flatten)]
    enrollment: Enrollment,
    language: Option<String>,
    manager_name: Option<String>,
    manager_email: Option<String>,
    #[sqlx(flatten)]
    text: TextRow,
}

/// The settings, and the text of `notice` for `language` among a campaign's `rows`
/// (the built-in text when none fits).
fn chosen_text(
    campaign: CampaignId,
    notice: Notice,
    language: Option<&str>,
    rows: &[TextRow],
) -> Result<NoticeText> {
    let Some(first) = rows.first() else {
        return Err(StoreError::NotFound("campaign"));
    };
    let settings = read_settings(campaign, first.notices.as_deref())?;
    let chosen = choose_language(
        language,
        rows.iter().filter_map(|row| row.text_language.as_deref()),
    );
    let own = chosen.and_then(|tag| {
        rows.iter()
            .find(|row| row.text_language.as_deref() == Some(tag))
    });
    Ok(match own {
        Some(TextRow {
            text_language,
            subject: Some(subject),
            body: Some(body),
            button: Some(button),
            ..
        }) => NoticeText {
            settings,
            text: TemplateText {
                subject: subject.clone(),
                body: body.clone(),
                button: button.clone(),
            },
            language: text_language.clone(),
        },
        _ => NoticeText {
            settings,
            text: template::builtin(notice),
            language: None,
        },
    })
}

/// The site an event's metadata names (`site`, `domain`, or the host of `url`).
fn site_of(metadata: Option<&str>) -> Option<String> {
    let metadata: serde_json::Value = serde_json::from_str(metadata?).ok()?;
    for key in ["site", "domain"] {
        if let Some(site) = metadata[key].as_str().filter(|s| !s.trim().is_empty()) {
            return Some(site.trim().chars().take(200).collect());
        }
    }
    let url = metadata["url"].as_str()?;
    let host = url.split("://").nth(1)?.split(['/', '?', '#']).next()?;
    let host = host.rsplit('@').next()?;
    (!host.is_empty()).then(|| host.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::site_of;

    #[test]
    fn the_site_is_the_metadata_site_domain_or_url_host() {
        assert_eq!(
            site_of(Some(r#"{"site": " a.example "}"#)).as_deref(),
            Some("a.example")
        );
        assert_eq!(
            site_of(Some(r#"{"domain": "b.example"}"#)).as_deref(),
            Some("b.example")
        );
        assert_eq!(
            site_of(Some(r#"{"url": "https://u:p@c.example/login?x=1"}"#)).as_deref(),
            Some("c.example")
        );
        assert_eq!(site_of(Some(r#"{"password": "hunter2"}"#)), None);
        assert_eq!(site_of(Some("not json")), None);
        assert_eq!(site_of(None), None);
    }
}
