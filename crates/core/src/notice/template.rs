//! Notice templates: a subject and a Markdown body with `{{ placeholders }}` (Jinja, by
//! minijinja), rendered to a plain-text and an HTML part. Only the placeholders in
//! [`PLACEHOLDERS`] exist; a template naming another is refused when saved. Values are
//! escaped for Markdown and HTML in the HTML part (a name like `<b>Ana</b>` shows as
//! written), never in the text part or the subject.

use super::Notice;
use crate::{FieldError, html};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use pulldown_cmark::{Options, Parser};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::OnceLock;

/// Every placeholder a template may use, with what it holds.
pub const PLACEHOLDERS: [(&str, &str); 11] = [
    (
        "first_name",
        "the learner's first name (their email when none is known)",
    ),
    ("last_name", "the learner's last name (may be empty)"),
    (
        "name",
        "the learner's full name (their email when none is known)",
    ),
    ("email", "the learner's email address"),
    ("content_title", "the title of the training"),
    ("campaign", "the campaign's name"),
    (
        "due",
        "when it is due, as people read it (empty when it has no due time)",
    ),
    (
        "link",
        "the learner's own link to the training (empty where it must not go: to a manager, to a chat)",
    ),
    (
        "manager_name",
        "the learner's manager's name (may be empty)",
    ),
    (
        "reason",
        "why the learner was enrolled, in a sentence, for an enrolment a smart group caused (empty otherwise)",
    ),
    (
        "completed",
        "when the learner finished, as people read it (empty until then)",
    ),
];

pub const MAX_SUBJECT: usize = 200;
pub const MAX_BODY: usize = 20_000;
pub const MAX_BUTTON: usize = 60;
/// Template instructions one render may run: a loop that never ends is an error, not a
/// sender stuck on one notice.
const FUEL: u64 = 50_000;

/// A notice's text as an admin writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateText {
    pub subject: String,
    /// Markdown with placeholders.
    pub body: String,
    /// The label of the button to the learner's link (notices that carry one).
    pub button: String,
}

impl TemplateText {
    /// Whether the subject or body names `placeholder`: what is costly to fill (the
    /// reason) is filled only for a text that shows it.
    pub fn uses(&self, placeholder: &str) -> bool {
        let env = environment(false);
        [&self.subject, &self.body].into_iter().any(|source| {
            source.contains(placeholder)
                && env
                    .template_from_str(source)
                    .is_ok_and(|t| t.undeclared_variables(false).contains(placeholder))
        })
    }
}

/// What the placeholders hold for one notice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Values {
    pub first_name: String,
    pub last_name: String,
    pub name: String,
    pub email: String,
    pub content_title: String,
    pub campaign: String,
    pub due: String,
    pub link: String,
    pub manager_name: String,
    pub reason: String,
    pub completed: String,
}

/// A rendered notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The two environments, made once (each holds the builtin filters and tests): plain
/// values for the subject and text part, escaped ones for the HTML part.
fn environment(html: bool) -> &'static Environment<'static> {
    static PLAIN: OnceLock<Environment<'static>> = OnceLock::new();
    static HTML: OnceLock<Environment<'static>> = OnceLock::new();
    if html {
        HTML.get_or_init(|| new_environment(true))
    } else {
        PLAIN.get_or_init(|| new_environment(false))
    }
}

fn new_environment(html: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    if html {
        env.set_formatter(|out, _state, value| {
            let text = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            if value.is_safe() {
                out.write_str(&text)
            } else {
                out.write_str(&escape_markdown_html(&text))
            }
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "could not write the notice"))
        });
    }
    env
}

/// A value as Markdown that shows it literally: HTML's special characters as entities,
/// other ASCII punctuation backslash-escaped (CommonMark allows it before any), line
/// breaks as spaces.
fn escape_markdown_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match (html::entity(c), c) {
            (Some(entity), _) => out.push_str(entity),
            (None, '\n' | '\r') => out.push(' '),
            (None, c) if c.is_ascii_punctuation() => {
                out.push('\\');
                out.push(c);
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// What is wrong with a template, each problem on the field it is in: syntax, a
/// placeholder that does not exist, a length past its limit.
pub fn check(template: &TemplateText) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let env = environment(false);
    for (field, source, limit) in [
        ("subject", &template.subject, MAX_SUBJECT),
        ("body", &template.body, MAX_BODY),
    ] {
        if source.trim().is_empty() {
            errors.push(FieldError::new(field, "must not be empty"));
            continue;
        }
        if source.chars().count() > limit {
            errors.push(FieldError::new(
                field,
                format!("at most {limit} characters"),
            ));
            continue;
        }
        match env.template_from_str(source) {
            Err(e) => errors.push(FieldError::new(field, syntax_error(&e))),
            Ok(parsed) => {
                let mut unknown: Vec<String> = parsed
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|name| {
                        !PLACEHOLDERS.iter().any(|(known, _)| known == name)
                            && !env.globals().any(|(global, _)| global == name)
                    })
                    .collect();
                unknown.sort();
                if unknown.is_empty() {
                    // An unknown filter or a runaway loop shows only when rendered.
                    let sample = Value::from_serialize(Values::default());
                    if let Err(e) = parsed.render(sample) {
                        errors.push(FieldError::new(field, syntax_error(&e)));
                    }
                } else {
                    errors.push(FieldError::new(
                        field,
                        format!(
                            "unknown placeholder{} {}; the placeholders are: {}",
                            if unknown.len() == 1 { "" } else { "s" },
                            unknown
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            PLACEHOLDERS.map(|(n, _)| n).join(", ")
                        ),
                    ));
                }
            }
        }
    }
    if template.button.trim().is_empty() || template.button.chars().count() > MAX_BUTTON {
        errors.push(FieldError::new(
            "button",
            format!("a label of 1 to {MAX_BUTTON} characters"),
        ));
    }
    errors
}

fn syntax_error(e: &Error) -> String {
    match e.line() {
        Some(line) => format!("line {line}: {}", e.detail().unwrap_or("bad template")),
        None => e.detail().unwrap_or("bad template").to_owned(),
    }
}

/// Renders a checked template. The text part ends with the button's label and the link,
/// the HTML part shows a button to it; both only when `values.link` is not empty.
pub fn render(template: &TemplateText, values: &Values) -> Result<Rendered, String> {
    let context = Value::from_serialize(values);
    let plain = environment(false);
    let run = |env: &Environment<'static>, what: &str, source: &str| {
        env.render_str(source, context.clone()).map_err(|e| {
            format!(
                "the notice's {what} cannot be rendered: {}",
                syntax_error(&e)
            )
        })
    };
    let subject = run(plain, "subject", &template.subject)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut text = run(plain, "body", &template.body)?.trim_end().to_owned();
    let markdown = run(environment(true), "body", &template.body)?;
    let mut body = String::with_capacity(markdown.len() * 2);
    pulldown_cmark::html::push_html(
        &mut body,
        Parser::new_ext(
            &markdown,
            Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
        ),
    );
    let mut button = String::new();
    if !values.link.is_empty() {
        let _ = write!(text, "\n\n{}: {}", template.button, values.link);
        button = format!(
            "<table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" style=\"margin:24px 0\"><tr>\
             <td style=\"border-radius:6px;background:#1d4ed8\"><a href=\"{}\" style=\"display:inline-block;\
             padding:12px 24px;font-weight:600;color:#ffffff;text-decoration:none;border-radius:6px\">{}</a>\
             </td></tr></table>",
            html::escape(&values.link),
            html::escape(&template.button)
        );
    }
    text.push('\n');
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title}</title></head>\n\
         <body style=\"margin:0;padding:0;background:#f4f5f7\">\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#f4f5f7\">\
         <tr><td align=\"center\" style=\"padding:24px 12px\">\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" \
         style=\"max-width:560px;background:#ffffff;border-radius:8px\"><tr><td style=\"padding:32px;\
         font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;font-size:16px;\
         line-height:1.5;color:#1f2933\">\n{body}{button}\n</td></tr></table></td></tr></table></body></html>\n",
        title = html::escape(&subject),
    );
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

/// The built-in text of each notice (English), used where a campaign has none of its
/// own for the learner's language.
pub fn builtin(notice: Notice) -> TemplateText {
    let (subject, body, button) = match notice {
        Notice::Enrolled => (
            "Training for you: {{ content_title }}",
            "Hello {{ first_name }},\n\n\
             {% if reason %}{{ reason }} A few minutes of training now helps keep it from \
             happening again, so we have picked **{{ content_title }}** for you.\
             {% else %}You have been assigned **{{ content_title }}** ({{ campaign }}).{% endif %}\n\n\
             {% if due %}It is due by {{ due }}.\n\n{% endif %}\
             {% if link %}The button below is your own link: it opens this training for you \
             alone and works for 14 days.{% endif %}",
            "Start the training",
        ),
        Notice::Reminder => (
            "Reminder: {{ content_title }}",
            "Hello {{ first_name }},\n\n\
             A reminder: **{{ content_title }}** ({{ campaign }}) is still open.\
             {% if due %} It is due by {{ due }}.{% endif %}\n\n\
             It takes a few minutes{% if link %}; the button below picks up where you left \
             off{% endif %}.",
            "Continue the training",
        ),
        Notice::PastDue => (
            "Overdue: {{ content_title }}",
            "Hello {{ first_name }},\n\n\
             **{{ content_title }}** ({{ campaign }}) was due by {{ due }} and is not finished \
             yet. It still counts when you finish it now.",
            "Finish the training",
        ),
        Notice::PastDueManager => (
            "Overdue training: {{ name }}",
            "Hello{% if manager_name %} {{ manager_name }}{% endif %},\n\n\
             {{ name }} ({{ email }}) has not finished **{{ content_title }}** \
             ({{ campaign }}), which was due by {{ due }}. A word from you helps: they can \
             still finish it from the link in their own email.",
            "Open",
        ),
        Notice::Completed => (
            "Completed: {{ content_title }}",
            "Hello {{ first_name }},\n\n\
             Thank you: you finished **{{ content_title }}** ({{ campaign }}) on \
             {{ completed }}. Nothing more is needed.",
            "Open",
        ),
    };
    TemplateText {
        subject: subject.into(),
        body: body.into(),
        button: button.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            first_name: "Ana <b>".into(),
            name: "Ana <b> Silva_".into(),
            email: "ana@acme.example".into(),
            content_title: "Passwords *101*".into(),
            campaign: "Coaching".into(),
            due: "Tuesday 20 November 2029, 09:00 UTC".into(),
            link: "https://train.example/learn/e/1?t=a&b=c".into(),
            ..Values::default()
        }
    }

    #[test]
    fn every_builtin_checks_and_renders() {
        for notice in Notice::ALL {
            let template = builtin(notice);
            assert_eq!(check(&template), [], "{notice}");
            let rendered = render(&template, &values()).unwrap();
            assert!(!rendered.subject.is_empty());
            assert!(rendered.html.contains("</html>"));
        }
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let rendered = render(&builtin(Notice::Enrolled), &values()).unwrap();
        assert!(
            rendered.text.starts_with("Hello Ana <b>,"),
            "{}",
            rendered.text
        );
        assert!(rendered.text.contains("**Passwords *101***"));
        assert!(
            rendered
                .text
                .ends_with("Start the training: https://train.example/learn/e/1?t=a&b=c\n")
        );
        assert!(
            rendered.html.contains("Hello Ana &lt;b&gt;,"),
            "{}",
            rendered.html
        );
        assert!(!rendered.html.contains("<b>"));
        // Markdown in a value is shown, not followed.
        assert!(rendered.html.contains("<strong>Passwords *101*</strong>"));
        assert!(
            rendered
                .html
                .contains("href=\"https://train.example/learn/e/1?t=a&amp;b=c\"")
        );
        assert_eq!(rendered.subject, "Training for you: Passwords *101*");
    }

    #[test]
    fn a_text_says_which_placeholders_it_uses() {
        assert!(builtin(Notice::Enrolled).uses("reason"));
        assert!(!builtin(Notice::Reminder).uses("reason"));
        let text = TemplateText {
            subject: "{{ reason }}".into(),
            ..builtin(Notice::Reminder)
        };
        assert!(text.uses("reason"));
    }

    #[test]
    fn no_link_no_button() {
        let rendered = render(
            &builtin(Notice::PastDueManager),
            &Values {
                link: String::new(),
                ..values()
            },
        )
        .unwrap();
        assert!(!rendered.html.contains("<a href"));
        assert!(!rendered.text.contains("Open:"));
        // A text that points at the button says nothing of it without one (in chat).
        let rendered = render(
            &builtin(Notice::Enrolled),
            &Values {
                link: String::new(),
                ..values()
            },
        )
        .unwrap();
        assert!(!rendered.text.contains("button"), "{}", rendered.text);
    }

    #[test]
    fn unknown_placeholders_and_bad_syntax_are_named() {
        let errors = check(&TemplateText {
            subject: "Hi {{ frist_name }} {{ x.y }}".into(),
            body: "{% if reason %}".into(),
            button: String::new(),
        });
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["subject", "body", "button"]);
        assert!(
            errors[0]
                .message
                .starts_with("unknown placeholders `frist_name`, `x`;"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[1].message.starts_with("line 1:"),
            "{}",
            errors[1].message
        );
    }

    #[test]
    fn a_runaway_template_is_an_error() {
        let template = TemplateText {
            body: "{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}"
                .into(),
            ..builtin(Notice::Enrolled)
        };
        assert_eq!(check(&template)[0].field, "body");
        assert!(render(&template, &values()).is_err());
        let template = TemplateText {
            body: "{{ first_name | shout }}".into(),
            ..builtin(Notice::Enrolled)
        };
        assert_eq!(check(&template)[0].field, "body");
    }
}
