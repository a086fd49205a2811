//! Training content: lesson modules (Markdown with an optional quiz) and policies
//! (Markdown a person must read for a minimum time, then acknowledge).
//!
//! Content comes from two places: the library shipped in the binary (files with TOML front
//! matter, see [`Content::from_markdown`]) and admins, through the JSON API. Both go through
//! [`Content::validate`], so a learner never meets a quiz whose answer is not one of its
//! choices. Admins' Markdown is shown to every learner, so [`Content::body_html`] escapes
//! raw HTML and drops script links instead of passing them through.

use chrono::NaiveDate;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

pub const MAX_TITLE: usize = 200;
pub const MAX_SLUG: usize = 80;
pub const MAX_MINUTES: u32 = 240;
pub const MIN_CHOICES: usize = 2;
pub const MAX_CHOICES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    Module,
    Policy,
}

impl ContentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Module => "module",
            Self::Policy => "policy",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "module" => Some(Self::Module),
            "policy" => Some(Self::Policy),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuizQuestion {
    pub question: String,
    pub choices: Vec<String>,
    /// Zero-based index into `choices`.
    pub answer: usize,
    /// Shown after the learner answers, right or wrong.
    #[serde(default)]
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub slug: String,
    pub kind: ContentKind,
    pub title: String,
    pub summary: String,
    /// A module's reading time; a policy's minimum reading time before acknowledgement.
    pub minutes: u32,
    /// Percent needed to pass the quiz: `None` when a module has no quiz, always `None`
    /// for a policy.
    #[serde(default)]
    pub pass_mark: Option<u8>,
    #[serde(default)]
    pub quiz: Vec<QuizQuestion>,
    #[serde(default)]
    pub version: Option<String>,
    pub published: NaiveDate,
    /// Markdown.
    pub body: String,
}

/// What is wrong with content, and where (`quiz[2].answer`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ContentError {
    pub field: String,
    pub message: String,
}

impl ContentError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<ContentError> for crate::FieldError {
    fn from(error: ContentError) -> Self {
        Self::new(error.field, error.message)
    }
}

/// The outcome of one quiz attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grade {
    pub correct: usize,
    pub total: usize,
    /// Percent correct, rounded down so that rounding never lifts a fail to a pass.
    pub score: u8,
    pub passed: bool,
}

/// The front matter as written; both kinds' keys, so a key of the other kind gets a
/// message saying so rather than "unknown field".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    title: String,
    summary: String,
    minutes: Option<i64>,
    minimum_time: Option<i64>,
    pass_mark: Option<i64>,
    #[serde(default)]
    quiz: Vec<QuizQuestion>,
    version: Option<String>,
    /// A string `"2026-01-01"` or a bare TOML date `2026-01-01`.
    published: toml::Value,
}

const DELIMITER: &str = "+++";

impl Content {
    /// Parses a file of the content library: a line `+++`, TOML front matter, a line
    /// `+++`, then the Markdown body. A module's front matter holds `title`, `summary`,
    /// `minutes`, `published` and, with a quiz, `pass_mark` and `[[quiz]]` entries; a
    /// policy's holds `title`, `summary`, `minimum_time` (minutes), `version` and
    /// `published`. The result is validated.
    pub fn from_markdown(
        kind: ContentKind,
        slug: &str,
        source: &str,
    ) -> Result<Self, ContentError> {
        let (front, body) = split_front_matter(source)?;
        let matter: FrontMatter =
            toml::from_str(front).map_err(|error| toml_error(front, &error))?;
        let (minutes_key, minutes, wrong_key, wrong) = match kind {
            ContentKind::Module => (
                "minutes",
                matter.minutes,
                "minimum_time",
                matter.minimum_time,
            ),
            ContentKind::Policy => (
                "minimum_time",
                matter.minimum_time,
                "minutes",
                matter.minutes,
            ),
        };
        if wrong.is_some() {
            return Err(ContentError::new(
                wrong_key,
                format!("is not used by a {}; use `{minutes_key}`", kind.as_str()),
            ));
        }
        let minutes = minutes.ok_or_else(|| ContentError::new(minutes_key, "is missing"))?;
        let content = Self {
            slug: slug.to_owned(),
            kind,
            title: matter.title,
            summary: matter.summary,
            minutes: u32::try_from(minutes).map_err(|_| minutes_error(minutes_key))?,
            pass_mark: matter
                .pass_mark
                .map(|mark| u8::try_from(mark).map_err(|_| pass_mark_error()))
                .transpose()?,
            quiz: matter.quiz,
            version: matter.version,
            published: published_date(&matter.published)?,
            body: body.to_owned(),
        };
        content.validate().map_err(|mut error| {
            // The front matter calls a policy's `minutes` `minimum_time`.
            if error.field == "minutes" {
                error.field = minutes_key.to_owned();
            }
            error
        })?;
        Ok(content)
    }

    /// Checks everything a learner relies on; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ContentError> {
        let slug_ok = (1..=MAX_SLUG).contains(&self.slug.len())
            && self
                .slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !slug_ok {
            return Err(ContentError::new(
                "slug",
                format!("must be 1 to {MAX_SLUG} characters of a-z, 0-9 and -"),
            ));
        }
        if self.title.trim().is_empty() {
            return Err(ContentError::new("title", "must not be empty"));
        }
        if self.title.chars().count() > MAX_TITLE {
            return Err(ContentError::new(
                "title",
                format!("must be at most {MAX_TITLE} characters"),
            ));
        }
        if !(1..=MAX_MINUTES).contains(&self.minutes) {
            return Err(minutes_error("minutes"));
        }
        if self.version.as_ref().is_some_and(|v| v.trim().is_empty()) {
            return Err(ContentError::new("version", "must not be empty when given"));
        }
        if self.body.trim().is_empty() {
            return Err(ContentError::new("body", "must not be empty"));
        }
        match self.kind {
            ContentKind::Policy => {
                if !self.quiz.is_empty() {
                    return Err(ContentError::new("quiz", "a policy has no quiz"));
                }
                if self.pass_mark.is_some() {
                    return Err(ContentError::new("pass_mark", "a policy has no quiz"));
                }
            }
            ContentKind::Module => match (self.pass_mark, self.quiz.is_empty()) {
                (Some(mark), false) if mark > 100 => return Err(pass_mark_error()),
                (Some(_), true) => {
                    return Err(ContentError::new(
                        "pass_mark",
                        "is only allowed with a quiz",
                    ));
                }
                (None, false) => {
                    return Err(ContentError::new(
                        "pass_mark",
                        "is required with a quiz (percent, 0 to 100)",
                    ));
                }
                _ => {}
            },
        }
        for (index, question) in self.quiz.iter().enumerate() {
            question.validate(&format!("quiz[{index}]"))?;
        }
        Ok(())
    }

    /// The body as HTML. Raw HTML in the Markdown is shown as text and links or images to
    /// anything but http(s), mailto, tel or a relative address lose their target: the
    /// author is an admin, but every learner's browser runs the result.
    pub fn body_html(&self) -> String {
        let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
        let events = Parser::new_ext(&self.body, options).map(|event| match event {
            Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: safe_url(dest_url),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Image {
                link_type,
                dest_url: safe_url(dest_url),
                title,
                id,
            }),
            other => other,
        });
        let mut html = String::with_capacity(self.body.len() * 3 / 2);
        pulldown_cmark::html::push_html(&mut html, events);
        html
    }

    /// Grades one attempt: `answers[i]` is the chosen index for question `i`. A missing or
    /// out-of-range answer is wrong; answers beyond the quiz are ignored. Content without
    /// a quiz grades as 0 of 0 and never passes: it is completed or acknowledged instead.
    pub fn grade(&self, answers: &[Option<usize>]) -> Grade {
        let total = self.quiz.len();
        let correct = self
            .quiz
            .iter()
            .zip(answers)
            .filter(|(question, answer)| **answer == Some(question.answer))
            .count();
        // correct <= total, so the percentage fits in a u8.
        let score = (correct * 100).checked_div(total).unwrap_or(0) as u8;
        let passed = total > 0 && self.pass_mark.is_some_and(|mark| score >= mark);
        Grade {
            correct,
            total,
            score,
            passed,
        }
    }
}

impl QuizQuestion {
    fn validate(&self, at: &str) -> Result<(), ContentError> {
        if self.question.trim().is_empty() {
            return Err(ContentError::new(
                format!("{at}.question"),
                "must not be empty",
            ));
        }
        if !(MIN_CHOICES..=MAX_CHOICES).contains(&self.choices.len()) {
            return Err(ContentError::new(
                format!("{at}.choices"),
                format!(
                    "must have {MIN_CHOICES} to {MAX_CHOICES} choices, not {}",
                    self.choices.len()
                ),
            ));
        }
        for (index, choice) in self.choices.iter().enumerate() {
            let field = || format!("{at}.choices[{index}]");
            if choice.trim().is_empty() {
                return Err(ContentError::new(field(), "must not be empty"));
            }
            if let Some(first) = self.choices[..index]
                .iter()
                .position(|earlier| earlier.trim() == choice.trim())
            {
                return Err(ContentError::new(
                    field(),
                    format!("repeats choice {first}"),
                ));
            }
        }
        if self.answer >= self.choices.len() {
            return Err(ContentError::new(
                format!("{at}.answer"),
                format!(
                    "must be the zero-based index of a choice, 0 to {}",
                    self.choices.len() - 1
                ),
            ));
        }
        Ok(())
    }
}

fn minutes_error(field: &str) -> ContentError {
    ContentError::new(field, format!("must be 1 to {MAX_MINUTES} minutes"))
}

fn pass_mark_error() -> ContentError {
    ContentError::new("pass_mark", "must be a percentage, 0 to 100")
}

/// Splits `+++\n<front matter>+++\n<body>`, tolerating a byte-order mark and CRLF.
fn split_front_matter(source: &str) -> Result<(&str, &str), ContentError> {
    let missing = || {
        ContentError::new(
            "front_matter",
            "must start with a line `+++`, then TOML, then a line `+++` before the body",
        )
    };
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut lines = source.split_inclusive('\n');
    let first = lines.next().ok_or_else(missing)?;
    if first.trim_end() != DELIMITER {
        return Err(missing());
    }
    let front_start = first.len();
    let mut offset = front_start;
    for line in lines {
        if line.trim_end() == DELIMITER {
            return Ok((&source[front_start..offset], &source[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err(missing())
}

/// Names the field of a TOML error: from "missing field `x`" / "unknown field `x`", or
/// else from the `key =` on the line the error points at, as `quiz[i].key` inside the
/// i-th `[[quiz]]` table.
fn toml_error(front: &str, error: &toml::de::Error) -> ContentError {
    let message = error.message().trim().replace('\n', "; ");
    let span = error.span().filter(|span| span.start <= front.len());
    let start = span.as_ref().map_or(0, |span| span.start);
    let line_start = front[..start].rfind('\n').map_or(0, |at| at + 1);
    let line_end = front[start..]
        .find('\n')
        .map_or(front.len(), |at| start + at);
    let quiz = front[..line_end]
        .lines()
        .filter(|line| line.trim() == "[[quiz]]")
        .count();
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix)?.split('`').next());
    let on_line = span.as_ref().and_then(|_| {
        let (key, _) = front[line_start..line_end].split_once('=')?;
        Some(key.trim())
    });
    let field = match named.or(on_line).filter(|key| !key.is_empty()) {
        Some(key) if quiz > 0 => format!("quiz[{}].{key}", quiz - 1),
        Some(key) => key.to_owned(),
        None => "front_matter".to_owned(),
    };
    // A missing top-level key has no line of its own.
    let top_missing = quiz == 0 && named.is_some() && message.starts_with("missing");
    match span {
        // Counted from the file's first line, the opening `+++`.
        Some(_) if !top_missing => {
            let line = front[..line_start].lines().count() + 2;
            ContentError::new(field, format!("{message} (line {line})"))
        }
        _ => ContentError::new(field, message),
    }
}

fn published_date(value: &toml::Value) -> Result<NaiveDate, ContentError> {
    let text = match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Datetime(at) => at.to_string(),
        _ => String::new(),
    };
    crate::time::parse_date(&text)
        .ok_or_else(|| ContentError::new("published", "must be a date, YYYY-MM-DD"))
}

/// Keeps a link target unless it names a scheme other than http(s), mailto or tel.
/// Browsers ignore whitespace and control characters inside a scheme
/// (`java&#9;script:`), and so does this check.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let scheme: String = url
        .chars()
        .take_while(|c| !matches!(c, ':' | '/' | '?' | '#'))
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    let has_scheme = url
        .chars()
        .find(|c| matches!(c, ':' | '/' | '?' | '#'))
        .is_some_and(|c| c == ':');
    let allowed = ["http", "https", "mailto", "tel"];
    if !has_scheme || allowed.contains(&scheme.as_str()) {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

macro_rules! library_files {
    ($($kind:ident $dir:literal $slug:literal),* $(,)?) => {
        [$((
            ContentKind::$kind,
            $slug,
            include_str!(concat!("../content/", $dir, "/", $slug, ".md")),
        )),*]
    };
}

/// The built-in library: every module, then every policy, each by slug.
///
/// # Panics
///
/// When a shipped file does not parse, which the tests rule out.
pub fn library() -> &'static [Content] {
    static LIBRARY: OnceLock<Vec<Content>> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let files = library_files![
            Module "modules" "ai-tools-and-data",
            Module "modules" "data-handling",
            Module "modules" "multi-factor-authentication",
            Module "modules" "password-management",
            Module "modules" "phishing-red-flags",
            Module "modules" "reporting-incidents",
            Module "modules" "safe-browsing",
            Module "modules" "social-engineering",
            Policy "policies" "acceptable-use",
            Policy "policies" "incident-reporting",
            Policy "policies" "password-policy",
        ];
        let mut library: Vec<Content> = files
            .into_iter()
            .map(|(kind, slug, source)| {
                Content::from_markdown(kind, slug, source)
                    .unwrap_or_else(|error| panic!("content library {slug}: {error}"))
            })
            .collect();
        library.sort_by(|a, b| (a.kind, &a.slug).cmp(&(b.kind, &b.slug)));
        library
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::STARTER_PLAYS;

    const MODULE: &str = r#"+++
title = "Spotting Phish"
summary = "Red flags."
minutes = 5
pass_mark = 80
published = "2026-01-01"

[[quiz]]
question = "Which is a red flag?"
choices = ["Urgency", "Your name"]
answer = 0
explanation = "Pressure is the trick."

[[quiz]]
question = "Where do you report?"
choices = ["Nowhere", "The report button", "Reply"]
answer = 1
+++
## Heading

Body text.
"#;

    fn module() -> Content {
        Content::from_markdown(ContentKind::Module, "spotting-phish", MODULE).unwrap()
    }

    /// A module with `n` two-choice questions whose answer is always choice 0.
    fn quiz_of(n: usize, pass_mark: u8) -> Content {
        let question = QuizQuestion {
            question: "Q".into(),
            choices: vec!["right".into(), "wrong".into()],
            answer: 0,
            explanation: String::new(),
        };
        Content {
            quiz: vec![question; n],
            pass_mark: Some(pass_mark),
            ..module()
        }
    }

    fn answers(right: usize, total: usize) -> Vec<Option<usize>> {
        (0..total).map(|i| Some(usize::from(i >= right))).collect()
    }

    fn policy() -> Content {
        library()
            .iter()
            .find(|c| c.kind == ContentKind::Policy)
            .unwrap()
            .clone()
    }

    fn field_of(result: Result<(), ContentError>) -> String {
        result.unwrap_err().field
    }

    #[test]
    fn parses_front_matter_and_body() {
        let content = module();
        assert_eq!(content.title, "Spotting Phish");
        assert_eq!(content.minutes, 5);
        assert_eq!(content.pass_mark, Some(80));
        assert_eq!(content.quiz.len(), 2);
        assert_eq!(content.quiz[1].choices[1], "The report button");
        assert_eq!(content.quiz[1].explanation, "");
        assert_eq!(
            content.published,
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
        );
        assert_eq!(content.body, "## Heading\n\nBody text.\n");
    }

    #[test]
    fn parses_policies_crlf_and_bare_dates() {
        let source = "\u{feff}+++\r\ntitle = \"Clean Desk\"\r\nsummary = \"S\"\r\nminimum_time = 3\r\nversion = \"2.1\"\r\npublished = 2026-02-03\r\n+++\r\nLock your screen.\r\n";
        let policy = Content::from_markdown(ContentKind::Policy, "clean-desk", source).unwrap();
        assert_eq!(policy.minutes, 3);
        assert_eq!(policy.version.as_deref(), Some("2.1"));
        assert_eq!(policy.pass_mark, None);
        assert_eq!(
            policy.published,
            NaiveDate::from_ymd_opt(2026, 2, 3).unwrap()
        );
        assert_eq!(policy.body, "Lock your screen.\r\n");
    }

    #[test]
    fn parse_errors_name_the_field() {
        let error = |from: &str, to: &str| {
            Content::from_markdown(ContentKind::Module, "m", &MODULE.replacen(from, to, 1))
                .unwrap_err()
        };
        let cases = [
            ("answer = 1", "answer = -1", "quiz[1].answer"),
            ("answer = 0", "answer = 2", "quiz[0].answer"),
            ("answer = 1\n", "", "quiz[1].answer"),
            ("answer = 1", "answer = 1\nanswr = 2", "quiz[1].answr"),
            ("minutes = 5", "minutes = \"5\"", "minutes"),
            ("minutes = 5", "minimum_time = 5", "minimum_time"),
            ("minutes = 5", "minutes = 0", "minutes"),
            ("pass_mark = 80", "pass_mark = 180", "pass_mark"),
            ("title = \"Spotting Phish\"\n", "", "title"),
            (
                "published = \"2026-01-01\"",
                "published = \"1/1/2026\"",
                "published",
            ),
            ("+++\n## Heading", "++\n## Heading", "front_matter"),
        ];
        for (from, to, field) in cases {
            assert_eq!(error(from, to).field, field, "{to}");
        }
        let shown = error("answer = 1", "answer = \"b\"").to_string();
        assert!(shown.starts_with("quiz[1].answer: invalid type"), "{shown}");
        assert!(shown.ends_with("(line 17)"), "{shown}");
        let policy = "+++\ntitle = \"P\"\nsummary = \"S\"\nminutes = 3\npublished = \"2026-01-01\"\n+++\nBody\n";
        let error = Content::from_markdown(ContentKind::Policy, "p", policy).unwrap_err();
        assert_eq!(error.field, "minutes");
        assert!(error.message.contains("minimum_time"), "{error}");
        let error =
            Content::from_markdown(ContentKind::Policy, "p", "no front matter").unwrap_err();
        assert_eq!(error.field, "front_matter");
    }

    #[test]
    fn validation_names_the_bad_field() {
        let good = module();
        assert_eq!(good.validate(), Ok(()));
        let with = |change: fn(&mut Content)| {
            let mut content = good.clone();
            change(&mut content);
            field_of(content.validate())
        };
        assert_eq!(with(|c| c.slug = "Phish".into()), "slug");
        assert_eq!(with(|c| c.slug = String::new()), "slug");
        assert_eq!(with(|c| c.slug = "a".repeat(81)), "slug");
        assert_eq!(with(|c| c.slug = "a b".into()), "slug");
        assert_eq!(with(|c| c.title = "  ".into()), "title");
        assert_eq!(with(|c| c.title = "é".repeat(201)), "title");
        assert_eq!(with(|c| c.minutes = 241), "minutes");
        assert_eq!(with(|c| c.body = "\n".into()), "body");
        assert_eq!(with(|c| c.version = Some(" ".into())), "version");
        assert_eq!(with(|c| c.pass_mark = Some(101)), "pass_mark");
        assert_eq!(with(|c| c.pass_mark = None), "pass_mark");
        assert_eq!(with(|c| c.quiz.clear()), "pass_mark");
        assert_eq!(
            with(|c| c.quiz[1].question = String::new()),
            "quiz[1].question"
        );
        assert_eq!(with(|c| c.quiz[0].choices.truncate(1)), "quiz[0].choices");
        assert_eq!(
            with(|c| c.quiz[0].choices = vec!["x".into(); 11]),
            "quiz[0].choices"
        );
        assert_eq!(
            with(|c| c.quiz[1].choices[2] = " ".into()),
            "quiz[1].choices[2]"
        );
        assert_eq!(
            with(|c| c.quiz[1].choices[2] = "Nowhere ".into()),
            "quiz[1].choices[2]"
        );
        assert_eq!(with(|c| c.quiz[1].answer = 3), "quiz[1].answer");

        let mut edges = good.clone();
        edges.slug = "a".repeat(80);
        edges.title = "é".repeat(200);
        edges.minutes = 240;
        edges.pass_mark = Some(0);
        edges.quiz[0].choices = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(edges.validate(), Ok(()));
        let mut no_quiz = good.clone();
        no_quiz.quiz.clear();
        no_quiz.pass_mark = None;
        assert_eq!(no_quiz.validate(), Ok(()));

        let mut policy = policy();
        assert_eq!(policy.validate(), Ok(()));
        policy.pass_mark = Some(50);
        assert_eq!(field_of(policy.validate()), "pass_mark");
        policy.quiz = good.quiz.clone();
        assert_eq!(field_of(policy.validate()), "quiz");
    }

    #[test]
    fn json_round_trip_uses_snake_case_kinds() {
        let content = module();
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["kind"], "module");
        assert_eq!(json["published"], "2026-01-01");
        let back: Content = serde_json::from_value(json).unwrap();
        assert_eq!(back, content);
        assert_eq!(ContentKind::parse("policy"), Some(ContentKind::Policy));
        assert_eq!(ContentKind::parse("Policy"), None);
    }

    #[test]
    fn library_parses_validates_and_holds_the_starter_plays_training() {
        let library = library();
        for content in library {
            assert_eq!(content.validate(), Ok(()), "{}", content.slug);
        }
        let modules = library.iter().filter(|c| c.kind == ContentKind::Module);
        assert!(modules.clone().count() >= 8);
        assert!(
            library
                .iter()
                .filter(|c| c.kind == ContentKind::Policy)
                .count()
                >= 3
        );
        for play in STARTER_PLAYS {
            assert!(
                modules.clone().any(|m| m.title == play.training),
                "no module titled {:?}",
                play.training
            );
        }
        let order: Vec<_> = library.iter().map(|c| (c.kind, c.slug.as_str())).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }

    /// A content file added to the directory but not to `library()` would never ship.
    #[test]
    fn library_lists_every_content_file() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("content");
        let mut on_disk = Vec::new();
        for (kind, dir) in [
            (ContentKind::Module, "modules"),
            (ContentKind::Policy, "policies"),
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
                on_disk.push((kind, stem));
            }
        }
        on_disk.sort();
        let listed: Vec<_> = library().iter().map(|c| (c.kind, c.slug.clone())).collect();
        assert_eq!(listed, on_disk);
    }

    #[test]
    fn html_escapes_raw_html_and_script_links() {
        let content = Content {
            body:
                "# Hi\n\n<script>alert(1)</script>\n\nText <b onclick=\"x\">bold</b> **strong**\n\n\
                   [ok](https://example.com/a) [rel](/learn) [bad](javascript:alert(1)) \
                   [tab](java&#9;script:alert(1)) ![img](data:image/svg+xml,x)\n"
                    .into(),
            ..module()
        };
        let html = content.body_html();
        assert!(html.contains("<h1>Hi</h1>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains(r#"&lt;b onclick="x"&gt;bold&lt;/b&gt;"#),
            "{html}"
        );
        assert!(html.contains("<strong>strong</strong>"), "{html}");
        assert!(
            html.contains(r#"<a href="https://example.com/a">ok</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"<a href="/learn">rel</a>"#), "{html}");
        assert!(html.contains(r##"<a href="#">bad</a>"##), "{html}");
        assert!(html.contains(r##"<a href="#">tab</a>"##), "{html}");
        assert!(html.contains(r##"<img src="#" alt="img" />"##), "{html}");
        assert!(!html.to_ascii_lowercase().contains("javascript"), "{html}");
    }

    #[test]
    fn library_bodies_render() {
        for content in library() {
            let html = content.body_html();
            assert!(html.contains("<h2>"), "{}", content.slug);
            assert!(!html.contains("+++"), "{}", content.slug);
        }
    }

    #[test]
    fn grades_at_the_pass_mark() {
        let five = quiz_of(5, 80);
        let four_right = five.grade(&answers(4, 5));
        assert_eq!(
            four_right,
            Grade {
                correct: 4,
                total: 5,
                score: 80,
                passed: true
            }
        );
        let three_right = five.grade(&answers(3, 5));
        assert_eq!((three_right.score, three_right.passed), (60, false));

        let four = quiz_of(4, 75);
        assert_eq!(four.grade(&answers(3, 4)).score, 75);
        assert!(four.grade(&answers(3, 4)).passed);
        assert!(!four.grade(&answers(2, 4)).passed);
    }

    #[test]
    fn rounding_down_never_lifts_a_fail() {
        let grade = quiz_of(3, 67).grade(&answers(2, 3));
        assert_eq!((grade.score, grade.passed), (66, false));
        assert!(quiz_of(3, 66).grade(&answers(2, 3)).passed);
        assert_eq!(quiz_of(3, 100).grade(&answers(3, 3)).score, 100);
    }

    #[test]
    fn missing_and_bogus_answers_are_wrong_and_extras_ignored() {
        let five = quiz_of(5, 80);
        let short = five.grade(&[Some(0), Some(0), Some(0), Some(0)]);
        assert_eq!((short.correct, short.passed), (4, true));
        let gaps = five.grade(&[Some(0), None, Some(0), Some(7), Some(0)]);
        assert_eq!((gaps.correct, gaps.score, gaps.passed), (3, 60, false));
        let extra = five.grade(&[Some(0); 9]);
        assert_eq!((extra.correct, extra.total, extra.score), (5, 5, 100));
        assert_eq!(five.grade(&[]).score, 0);
    }

    #[test]
    fn content_without_a_quiz_never_passes_by_grading() {
        let grade = policy().grade(&[Some(0)]);
        assert_eq!((grade.total, grade.score, grade.passed), (0, 0, false));
        assert!(quiz_of(2, 0).grade(&[]).passed);
    }
}
