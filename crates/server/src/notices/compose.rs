//! What a notice about one enrolment says and to whom: the campaign's text for the
//! person's language (or the built-in one), its placeholders filled, rendered to text and
//! HTML. One place for the runner's emails and chat messages, the preview and the test
//! send, so all four say the same.

use crate::learn;
use coachloop_core::notice::template::{self, Rendered, Values};
use coachloop_core::notice::{Notice, NoticeSettings};
use coachloop_core::time::format_human_ms;
use coachloop_store::campaigns::Enrollment;
use coachloop_store::notice_texts::{NoticePerson, NoticeText};
use coachloop_store::{Store, StoreError};

/// Where the text goes: an email carries the learner's own link; a chat channel is
/// shared, so it never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Email,
    Chat,
}

/// A notice ready to send.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The recipient's name (when known) and address.
    pub to: (Option<String>, String),
    pub rendered: Rendered,
    /// The text's language variant: `Some("")` the campaign's for any language, `None`
    /// the built-in one.
    pub language: Option<String>,
}

/// Why a notice is not composed.
#[derive(Debug)]
pub enum NotComposed {
    /// Nothing to send, and why (the campaign no longer sends it, no manager, finished).
    Skip(String),
    /// A read failed: try again later.
    Store(StoreError),
}

impl From<StoreError> for NotComposed {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// What a notice is composed from: the enrolment, its person, and the campaign's
/// settings and text for the person's language (`Store::notice_context`).
pub struct Context<'a> {
    pub enrollment: &'a Enrollment,
    pub person: &'a NoticePerson,
    pub text: NoticeText,
}

/// Composes `notice` (a reminder: the one at `offset`) from `context`. For a `preview`
/// it is composed whether or not the campaign sends it and whatever the enrolment's
/// state; an enrolment with id 0 is a sample, whose link is the learner's home page.
pub async fn compose(
    store: &Store,
    base_url: &str,
    context: Context<'_>,
    notice: Notice,
    offset: Option<&str>,
    audience: Audience,
    preview: bool,
) -> Result<Composed, NotComposed> {
    let Context {
        enrollment,
        person,
        text: NoticeText {
            settings,
            text,
            language,
        },
    } = context;
    if !preview && let Some(why) = not_due(&settings, enrollment, notice, offset) {
        return Err(NotComposed::Skip(why));
    }
    let full_name = [&enrollment.first_name, &enrollment.last_name]
        .into_iter()
        .flatten()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = if full_name.is_empty() {
        enrollment.email.clone()
    } else {
        full_name
    };
    let to = if notice.to_manager() {
        let Some(manager) = (person.manager_email.as_deref())
            .map(str::trim)
            .filter(|m| !m.is_empty())
        else {
            return Err(NotComposed::Skip("the person has no manager_email".into()));
        };
        (person.manager_name.clone(), manager.to_owned())
    } else {
        (Some(name.clone()), enrollment.email.clone())
    };
    // The reason's reads only for a text that shows it.
    let reason = if text.uses("reason") {
        store
            .enrollment_reason(enrollment, settings.reason_shows_site)
            .await?
            .unwrap_or_default()
    } else {
        String::new()
    };
    let link = if !notice.has_link() || audience == Audience::Chat {
        String::new()
    } else if enrollment.id.0 == 0 {
        format!("{base_url}/learn")
    } else {
        link(store, base_url, enrollment).await?
    };
    let values = Values {
        first_name: (enrollment.first_name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| enrollment.email.clone()),
        last_name: enrollment.last_name.clone().unwrap_or_default(),
        name,
        email: enrollment.email.clone(),
        content_title: enrollment.content_title.clone(),
        campaign: enrollment.campaign_name.clone(),
        due: enrollment.due_at.map(format_human_ms).unwrap_or_default(),
        link,
        manager_name: person.manager_name.clone().unwrap_or_default(),
        reason,
        completed: (enrollment.completed_at)
            .map(format_human_ms)
            .unwrap_or_default(),
    };
    let rendered = template::render(&text, &values).map_err(NotComposed::Skip)?;
    Ok(Composed {
        to,
        rendered,
        language,
    })
}

/// Why a queued notice is not sent now, if it is not: the campaign stopped sending it
/// (or this reminder), or the enrolment's state makes it moot.
fn not_due(
    settings: &NoticeSettings,
    enrollment: &Enrollment,
    notice: Notice,
    offset: Option<&str>,
) -> Option<String> {
    if !settings.sends(notice) {
        return Some(format!("the campaign no longer sends the {notice} notice"));
    }
    if let Some(offset) = offset.filter(|_| notice == Notice::Reminder)
        && !settings.reminders.iter().any(|r| r == offset)
    {
        return Some(format!(
            "the campaign no longer reminds {offset} before the due time"
        ));
    }
    match (enrollment.is_finished(), notice.after_finish()) {
        (true, false) => Some("the enrolment is finished already".into()),
        (false, true) => Some("the enrolment is not finished".into()),
        _ => None,
    }
}

/// The learner's own link to the enrolment, good for [`learn::LINK_TTL_MS`].
pub async fn link(
    store: &Store,
    base_url: &str,
    enrollment: &Enrollment,
) -> Result<String, StoreError> {
    let key = store.secret(learn::KEY_NAME).await?;
    let expires = store.clock().now_ms() + learn::LINK_TTL_MS;
    Ok(format!(
        "{base_url}{}",
        learn::link_path(&key, enrollment, expires)
    ))
}
