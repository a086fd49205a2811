//! A campaign's notices as its admin set them: which it sends and when, and its own text
//! for each notice per language; and what goes into a notice about one enrolment (the
//! text for the learner's language, the reason they were enrolled).

use crate::campaigns::Enrollment;
use crate::{Locks, Result, Store, StoreError};
use coachloop_core::event_id::EventId;
use coachloop_core::ids::{AccountId, CampaignId};
use coachloop_core::notice::reason::{self, Happened};
use coachloop_core::notice::template::{self, TemplateText};
use coachloop_core::notice::{Notice, NoticeSettings, choose_language};
use serde::Deserialize;
use sqlx::FromRow;

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
        type Row = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT c.notices, t.language, t.subject, t.body, t.button FROM campaigns c \
             LEFT JOIN notice_templates t ON t.account_id = c.account_id \
             AND t.campaign_id = c.id AND t.notice = $3 \
             WHERE c.account_id = $1 AND c.id = $2",
        )
        .bind(account.0)
        .bind(campaign.0)
        .bind(notice.as_str())
        .fetch_all(&self.read)
        .await?;
        let Some((stored, ..)) = rows.first() else {
            return Err(StoreError::NotFound("campaign"));
        };
        let settings = read_settings(campaign, stored.as_deref())?;
        let chosen = choose_language(language, rows.iter().filter_map(|row| row.1.as_deref()));
        let own = chosen.and_then(|tag| rows.iter().find(|row| row.1.as_deref() == Some(tag)));
        Ok(match own {
            Some((_, tag, Some(subject), Some(body), Some(button))) => NoticeText {
                settings,
                text: TemplateText {
                    subject: subject.clone(),
                    body: body.clone(),
                    button: button.clone(),
                },
                language: tag.clone(),
            },
            _ => NoticeText {
                settings,
                text: template::builtin(notice),
                language: None,
            },
        })
    }

    /// Why an enrolment was made, as a sentence for the learner (see
    /// [`reason::sentence`]): only for one a smart-group join caused. The site of the
    /// latest event is named only when `show_site`.
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
        let group: Option<String> =
            sqlx::query_scalar("SELECT name FROM groups WHERE account_id = $1 AND id = $2")
                .bind(account)
                .bind(cause.group_id.unwrap_or_default())
                .fetch_optional(&self.read)
                .await?;
        let mut happened = Vec::new();
        for evidence in &cause.evidence {
            if evidence["kind"] != "events" {
                continue;
            }
            let event_type = evidence["event_type"].as_str().unwrap_or_default();
            let ids: Vec<EventId> = (evidence["events"].as_array().into_iter().flatten())
                .filter_map(|id| id.as_str()?.parse::<uuid::Uuid>().ok())
                .map(EventId::from_uuid)
                .collect();
            // The most recent first: its instant and site, then the oldest's instant.
            let (Some(latest), Some(oldest)) = (ids.first(), ids.last()) else {
                continue;
            };
            let read = |id: EventId| {
                sqlx::query_as::<_, (i64, Option<String>)>(
                    "SELECT occurred_at, metadata FROM events \
                     WHERE account_id = $1 AND id = $2 AND id_low = $3",
                )
                .bind(account)
                .bind(id.hi)
                .bind(id.lo)
                .fetch_optional(&self.read)
            };
            // An event deleted since leaves the sentence to the rest.
            let Some((last_ms, metadata)) = read(*latest).await? else {
                continue;
            };
            let first_ms = match read(*oldest).await? {
                Some((at, _)) => at,
                None => last_ms,
            };
            let description: Option<Option<String>> = sqlx::query_scalar(
                "SELECT description FROM event_types WHERE account_id = $1 AND name = $2",
            )
            .bind(account)
            .bind(event_type)
            .fetch_optional(&self.read)
            .await?;
            let site = show_site.then(|| site_of(metadata.as_deref())).flatten();
            happened.push(Happened {
                what: description
                    .flatten()
                    .filter(|d| !d.trim().is_empty())
                    .unwrap_or_else(|| reason::name_in_words(event_type)),
                count: evidence["count"].as_u64().unwrap_or(ids.len() as u64) as usize,
                first_ms: first_ms.min(last_ms),
                last_ms,
                site,
            });
        }
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
