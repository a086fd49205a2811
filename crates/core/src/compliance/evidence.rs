//! Evidence for an audit: a framework's (or one control's) per-person training records
//! over a period, with each person's status when the evidence was collected, written as
//! CSV, JSON or an OSCAL assessment-results document.
//!
//! Everything here is pure: the store collects an [`Evidence`] and these functions write
//! it. The same evidence (same data, same collected instant) always gives the same bytes,
//! OSCAL included: its UUIDs are version 5, named from the account, framework, control,
//! period and collected instant, and a person's party UUID from the account and the
//! person alone (the same in every export).
//!
//! A record belongs to the period when the training was open or finished during it: the
//! enrolment was made by the period's last day and was not finished before its first. It
//! is dated by when the training happened (its completion: `effective_date`), and every
//! document carries when it was collected.

use super::catalog::{Control, Framework, controls_of};
use super::evaluate::{Status, Verdict};
use super::requirement::Requirement;
use crate::FieldError;
use crate::time::{
    date_of_ms, date_start_ms, format_date, format_ms, parse_date, push_date_of_ms, push_ms,
};
use chrono::NaiveDate;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use uuid::Uuid;

mod oscal;

/// The namespace of coachloop's own OSCAL properties.
pub const OSCAL_NS: &str = "urn:coachloop:oscal";
pub const OSCAL_VERSION: &str = "1.2.1";

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    Json,
    Oscal,
}

impl Format {
    pub const ALL: [Self; 3] = [Self::Csv, Self::Json, Self::Oscal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Oscal => "oscal",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json | Self::Oscal => "application/json",
        }
    }
}

/// The days an export covers, both included (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The first and last day a period may name: OSCAL's timestamps have four-digit years
/// from 1900 on, and nothing in coachloop predates 1970.
const FIRST_DAY: (i32, u32, u32) = (1970, 1, 1);
const LAST_DAY: (i32, u32, u32) = (2999, 12, 30);

impl Period {
    /// Parses `from` and `to` (`YYYY-MM-DD`); each problem named by its parameter.
    pub fn parse(from: &str, to: &str) -> Result<Self, FieldError> {
        let first = NaiveDate::from_ymd_opt(FIRST_DAY.0, FIRST_DAY.1, FIRST_DAY.2);
        let last = NaiveDate::from_ymd_opt(LAST_DAY.0, LAST_DAY.1, LAST_DAY.2);
        let day = |name: &str, text: &str| {
            let date = parse_date(text)
                .ok_or_else(|| FieldError::new(name, "a date written YYYY-MM-DD"))?;
            if Some(date) < first || Some(date) > last {
                return Err(FieldError::new(
                    name,
                    "a date from 1970-01-01 to 2999-12-30",
                ));
            }
            Ok(date)
        };
        let period = Self {
            from: day("from", from)?,
            to: day("to", to)?,
        };
        if period.from > period.to {
            return Err(FieldError::new("from", "must not come after `to`"));
        }
        Ok(period)
    }

    /// The first instant of the period (epoch ms).
    pub fn start_ms(&self) -> i64 {
        date_start_ms(self.from)
    }

    /// The first instant after the period (epoch ms).
    pub fn end_ms(&self) -> i64 {
        date_start_ms(self.to) + super::evaluate::DAY_MS
    }

    /// Whether an enrolment was open or finished during the period.
    pub fn covers(&self, enrolled_at: i64, completed_at: Option<i64>) -> bool {
        enrolled_at < self.end_ms() && completed_at.is_none_or(|done| done >= self.start_ms())
    }
}

/// One enrolment that counts for a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingRecord {
    pub enrollment_id: i64,
    pub content_id: i64,
    pub content: String,
    pub campaign_id: i64,
    pub enrolled_at: i64,
    pub due_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub score: Option<i64>,
    /// Event-triggered training: when the triggering event (the smart-group join) was.
    pub triggered_at: Option<i64>,
    /// The sync connection the record came from (its ids are the remote's); `None`: this
    /// installation's own.
    pub source: Option<String>,
}

impl TrainingRecord {
    /// From the triggering event to the completion, in whole seconds.
    pub fn trigger_to_completion_secs(&self) -> Option<i64> {
        Some((self.completed_at? - self.triggered_at?) / 1000)
    }
}

/// A person in a requirement's scope when the evidence was collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonEvidence {
    pub user_id: i64,
    pub email: String,
    /// First and last name, when known.
    pub name: Option<String>,
    pub status: Status,
    /// Why, in words, as of the collected instant.
    pub reason: String,
    pub deadline: Option<i64>,
    pub last_completed: Option<i64>,
    /// Their records of the period, oldest first.
    pub records: Vec<TrainingRecord>,
}

/// Where a requirement's settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The account's requirement (its id).
    Account(i64),
    /// The catalog's default: the account has no requirement of this kind.
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequirementEvidence {
    pub source: Source,
    pub settings: Requirement,
    /// The exported framework's controls that ask it (only the exported control when one
    /// was asked for).
    pub controls: Vec<&'static Control>,
    pub people: Vec<PersonEvidence>,
}

impl RequirementEvidence {
    pub fn count(&self, status: Status) -> usize {
        self.people.iter().filter(|p| p.status == status).count()
    }

    pub fn verdict(&self) -> Verdict {
        Verdict::of(self.count(Status::NonCompliant), self.count(Status::AtRisk))
    }
}

/// What an export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub account_id: i64,
    pub account: String,
    pub framework: &'static Framework,
    /// One control, or all of the framework's.
    pub control: Option<&'static Control>,
    /// Whether the account enabled the framework; when not, it was evaluated in memory
    /// for this export (nothing stored).
    pub enabled: bool,
    pub period: Period,
    pub collected_at: i64,
    /// In catalog order of their first control.
    pub requirements: Vec<RequirementEvidence>,
}

impl Evidence {
    /// What a document says of a framework the account has not enabled.
    pub fn remark(&self) -> Option<String> {
        (!self.enabled).then(|| {
            format!(
                "{} is not enabled for this account: it was evaluated in memory for this \
                 export with the requirements enabling it would use (the account's \
                 requirement of a kind where it has one, else the default), and nothing \
                 was stored",
                self.framework.title
            )
        })
    }

    /// Writes the evidence in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Csv => self.csv(),
            Format::Json => self.json(),
            Format::Oscal => self.oscal(),
        }
    }

    fn controls(&self) -> Vec<&'static Control> {
        match self.control {
            Some(c) => vec![c],
            None => controls_of(self.framework.id).collect(),
        }
    }

    /// One row per record; a person with none in the period has one row without
    /// training, so everyone in scope is listed.
    pub fn csv(&self) -> String {
        let mut out = Vec::new();
        write_csv(self, &self.requirements, &mut out).expect("writing to memory");
        String::from_utf8(out).expect("CSV of UTF-8 fields")
    }

    pub fn json(&self) -> String {
        let requirements: Vec<Value> = self
            .requirements
            .iter()
            .map(|r| {
                json!({
                    "kind": r.settings.kind.as_str(),
                    "title": r.settings.title,
                    "requirement_id": match r.source { Source::Account(id) => Some(id), Source::Default => None },
                    "settings": if r.source == Source::Default { "default" } else { "account" },
                    "controls": r.controls.iter().map(|c| c.id).collect::<Vec<_>>(),
                    "status": r.verdict().as_str(),
                    "counts": {
                        "compliant": r.count(Status::Compliant),
                        "at_risk": r.count(Status::AtRisk),
                        "non_compliant": r.count(Status::NonCompliant),
                        "excepted": r.count(Status::Excepted),
                        "in_scope": r.people.len(),
                    },
                    "people": r.people.iter().map(|p| json!({
                        "user_id": p.user_id,
                        "name": p.name,
                        "email": p.email,
                        "status": p.status.as_str(),
                        "reason": p.reason,
                        "due": p.deadline.map(format_ms),
                        "last_completed": p.last_completed.map(format_ms),
                        "records": p.records.iter().map(|t| json!({
                            "enrollment_id": t.enrollment_id,
                            // A remote module has no id here.
                            "content_id": t.source.is_none().then_some(t.content_id),
                            "content": t.content,
                            "campaign_id": t.campaign_id,
                            "enrolled_at": format_ms(t.enrolled_at),
                            "completed_at": t.completed_at.map(format_ms),
                            "due_at": t.due_at.map(format_ms),
                            "score": t.score,
                            "effective_date": t.completed_at.map(|at| format_date(date_of_ms(at))),
                            "triggered_at": t.triggered_at.map(format_ms),
                            "trigger_to_completion_seconds": t.trigger_to_completion_secs(),
                            "source": t.source,
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let document = json!({
            "framework": {
                "id": self.framework.id,
                "title": self.framework.title,
                "enabled": self.enabled,
            },
            "control": self.control.map(|c| json!({"id": c.id, "title": c.title})),
            "period": {"from": format_date(self.period.from), "to": format_date(self.period.to)},
            "collected_at": format_ms(self.collected_at),
            "remarks": self.remark(),
            "requirements": requirements,
        });
        let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
        text.push('\n');
        text
    }

    /// An OSCAL assessment-results document (1.2.1): one result for the period; one
    /// observation per requirement, its people as subjects (each a party in the
    /// metadata) with their status; one finding per control, `satisfied` unless someone
    /// is non-compliant; each requirement's records as a resource in the back matter (the
    /// CSV export's bytes, gzip-compressed and embedded, with the CSV's SHA-256), which
    /// its observation cites as evidence. Written compact, in one pass.
    pub fn oscal(&self) -> String {
        oscal::document(self)
    }

    fn document_uuid(&self) -> Uuid {
        Uuid::new_v5(
            &namespace(),
            format!(
                "assessment-results|{}|{}|{}|{}|{}|{}",
                self.account_id,
                self.framework.id,
                self.control.map_or("*", |c| c.id),
                format_date(self.period.from),
                format_date(self.period.to),
                self.collected_at
            )
            .as_bytes(),
        )
    }

    /// A person's party: the same in every export of the account.
    fn party_uuid(&self, user: i64) -> Uuid {
        Uuid::new_v5(
            &namespace(),
            format!("party|{}|{user}", self.account_id).as_bytes(),
        )
    }
}

/// coachloop's UUID namespace (itself a version-5 UUID of its URN).
fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, OSCAL_NS.as_bytes())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn nonblank(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// `(`, `)` and the like in a query value.
fn query_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '-' | '_' => c.to_string(),
            c => format!("%{:02X}", c as u32),
        })
        .collect()
}

/// A control's OSCAL id: NIST SP 800-53's as NIST's own OSCAL catalog writes them
/// (`at-2`, `at-2.3`); every other framework's prefixed with the framework so that it is a
/// valid token (`pci-dss-12.6.3`, `hipaa-164.308-a-5-ii-a`), lower case.
pub fn oscal_control_id(c: &Control) -> String {
    if c.framework == "nist-800-53" {
        // AT-2.a.2 is a statement of AT-2: the control is at-2.
        let base = c.id.split(".a.").next().unwrap_or(c.id);
        return token(&base.to_lowercase().replace('(', ".").replace(')', ""));
    }
    token(&format!("{}-{}", c.framework, c.id.to_lowercase()))
}

/// What a control's finding targets: a statement (`at-2_smt.a.2`, the part of AT-2 on
/// event-triggered training) or the control's objective.
pub fn oscal_target(c: &Control) -> (&'static str, String) {
    if c.framework == "nist-800-53"
        && let Some((_, part)) = c.id.split_once(".a.")
    {
        return (
            "statement-id",
            format!("{}_smt.a.{part}", oscal_control_id(c)),
        );
    }
    ("objective-id", oscal_control_id(c))
}

/// Letters, digits, `.`, `-` and `_`; anything else becomes `-` (one for a run), none at
/// the end; a leading character that is not a letter is prefixed with `_`.
fn token(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    match out.chars().next() {
        Some(c) if c.is_alphabetic() || c == '_' => out,
        _ => format!("_{out}"),
    }
}

const CSV_HEADER: &[&str] = &[
    "framework",
    "controls",
    "requirement",
    "user_id",
    "name",
    "email",
    "status",
    "reason",
    "content",
    "enrolled_at",
    "due_at",
    "completed_at",
    "effective_date",
    "score",
    "triggered_at",
    "trigger_to_completion_seconds",
    "source",
    "collected_at",
];

/// Writes the records of `requirements` as CSV to `out`: one row per record; a person
/// with none in the period has one row without training, so everyone in scope is listed.
/// Rows are made in a buffer handed to `out` every 64 KiB (at 100,000 people the CSV is
/// a quarter of a gigabyte: an OSCAL export compresses it on the way, never holding it
/// whole), each person's columns once for all their rows.
fn write_csv(
    evidence: &Evidence,
    requirements: &[RequirementEvidence],
    out: &mut impl Write,
) -> io::Result<()> {
    const BLOCK: usize = 1 << 16;
    let mut csv = Csv::new(2 * BLOCK);
    for header in CSV_HEADER {
        csv.field(header);
    }
    csv.end();
    let collected = format_ms(evidence.collected_at);
    let mut person = Csv::new(256);
    for r in requirements {
        // Every control of the framework that asks it, whichever one was exported: the
        // records of a control are those of its requirement, the same for each.
        let controls = controls_of(evidence.framework.id)
            .filter(|c| c.requirement == r.settings.kind)
            .map(|c| c.id)
            .collect::<Vec<_>>()
            .join(" ");
        for p in &r.people {
            person.line.clear();
            person.first = true;
            person.field(evidence.framework.id);
            person.field(&controls);
            person.field(r.settings.kind.as_str());
            person.number(Some(p.user_id));
            person.field(p.name.as_deref().unwrap_or_default());
            person.field(&p.email);
            person.field(p.status.as_str());
            person.field(&p.reason);
            if p.records.is_empty() {
                csv.line.extend_from_slice(&person.line);
                csv.first = false;
                for _ in 0..9 {
                    csv.field("");
                }
                csv.field(&collected);
                csv.end();
            }
            for t in &p.records {
                csv.line.extend_from_slice(&person.line);
                csv.first = false;
                csv.field(&t.content);
                csv.time(Some(t.enrolled_at));
                csv.time(t.due_at);
                csv.time(t.completed_at);
                csv.pushed(|line| {
                    if let Some(at) = t.completed_at {
                        push_date_of_ms(line, at);
                    }
                });
                csv.number(t.score);
                csv.time(t.triggered_at);
                csv.number(t.trigger_to_completion_secs());
                csv.field(t.source.as_deref().unwrap_or_default());
                csv.field(&collected);
                csv.end();
            }
            if csv.line.len() >= BLOCK {
                out.write_all(&csv.line)?;
                csv.line.clear();
            }
        }
    }
    out.write_all(&csv.line)
}

/// CSV lines (RFC 4180: CRLF; a field with a comma, quote or line break is quoted). A
/// field that a spreadsheet would run as a formula gets a leading `'`.
struct Csv {
    line: Vec<u8>,
    /// No field written yet on this line.
    first: bool,
}

impl Csv {
    fn new(capacity: usize) -> Self {
        Self {
            line: Vec::with_capacity(capacity),
            first: true,
        }
    }

    fn separate(&mut self) {
        if !self.first {
            self.line.push(b',');
        }
        self.first = false;
    }

    fn field(&mut self, field: &str) {
        self.separate();
        let formula = field.starts_with(['=', '+', '-', '@']) && !is_number(field);
        let quoted = field.contains([',', '"', '\n', '\r']);
        if quoted {
            self.line.push(b'"');
        }
        if formula {
            self.line.push(b'\'');
        }
        if quoted {
            for (i, part) in field.split('"').enumerate() {
                if i > 0 {
                    self.line.extend_from_slice(b"\"\"");
                }
                self.line.extend_from_slice(part.as_bytes());
            }
            self.line.push(b'"');
        } else {
            self.line.extend_from_slice(field.as_bytes());
        }
    }

    /// An instant (see [`Csv::pushed`]).
    fn time(&mut self, at: Option<i64>) {
        self.pushed(|line| {
            if let Some(at) = at {
                push_ms(line, at);
            }
        });
    }

    /// A field that `push` appends: an instant or a day, nothing to quote; defused if it
    /// starts with a sign (a year past 9999).
    fn pushed(&mut self, push: impl FnOnce(&mut Vec<u8>)) {
        self.separate();
        let start = self.line.len();
        push(&mut self.line);
        if matches!(self.line.get(start), Some(b'+' | b'-')) {
            self.line.insert(start, b'\'');
        }
    }

    /// A number: nothing to quote, and a number is never defused.
    fn number(&mut self, n: Option<i64>) {
        self.separate();
        if let Some(n) = n {
            // Writing to a Vec cannot fail.
            let _ = write!(self.line, "{n}");
        }
    }

    fn end(&mut self) {
        self.first = true;
        self.line.extend_from_slice(b"\r\n");
    }
}

fn is_number(text: &str) -> bool {
    text.parse::<f64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::catalog::{control_of, framework};
    use crate::compliance::requirement::RequirementKind;

    #[test]
    fn periods_are_checked_parameter_by_parameter() {
        let p = Period::parse("2026-01-01", "2026-12-31").unwrap();
        assert_eq!(
            p.end_ms() - p.start_ms(),
            365 * super::super::evaluate::DAY_MS
        );
        assert_eq!(
            Period::parse("2026-1-1", "2026-12-31").unwrap_err().field,
            "from"
        );
        assert_eq!(Period::parse("2026-01-01", "x").unwrap_err().field, "to");
        assert_eq!(
            Period::parse("2026-02-01", "2026-01-31").unwrap_err().field,
            "from"
        );
        assert_eq!(
            Period::parse("0001-01-01", "2026-01-31").unwrap_err().field,
            "from"
        );
        // Open or finished during the period.
        assert!(p.covers(p.start_ms() - 1, None));
        assert!(!p.covers(p.start_ms() - 10, Some(p.start_ms() - 1)));
        assert!(!p.covers(p.end_ms(), None));
    }

    #[test]
    fn control_ids_are_valid_tokens() {
        let re = regex::Regex::new(r"^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$").unwrap();
        for c in crate::compliance::CONTROLS {
            let id = oscal_control_id(c);
            assert!(re.is_match(&id), "{} {} -> {id}", c.framework, c.id);
            assert!(re.is_match(&oscal_target(c).1), "{}", c.id);
        }
        let id = |f, c| oscal_control_id(control_of(f, c).unwrap());
        assert_eq!(id("pci-dss", "12.6.3"), "pci-dss-12.6.3");
        assert_eq!(
            id("hipaa", "164.308(a)(5)(ii)(A)"),
            "hipaa-164.308-a-5-ii-a"
        );
        assert_eq!(id("nist-800-53", "AT-2(3)"), "at-2.3");
        assert_eq!(
            oscal_target(control_of("nist-800-53", "AT-2.a.2").unwrap()),
            ("statement-id", "at-2_smt.a.2".to_owned())
        );
    }

    fn evidence() -> Evidence {
        let cc14 = control_of("soc2", "CC1.4").unwrap();
        Evidence {
            account_id: 1,
            account: "default".into(),
            framework: framework("soc2").unwrap(),
            control: Some(cc14),
            enabled: false,
            period: Period::parse("2026-01-01", "2026-12-31").unwrap(),
            collected_at: 1_790_000_000_000,
            requirements: vec![RequirementEvidence {
                source: Source::Default,
                settings: Requirement::default_for(RequirementKind::Awareness),
                controls: vec![cc14],
                people: vec![PersonEvidence {
                    user_id: 7,
                    email: "ana@acme.example".into(),
                    name: Some("Ana, \"the\" Lopez".into()),
                    status: Status::Compliant,
                    reason: "=cmd".into(),
                    deadline: None,
                    last_completed: None,
                    records: vec![],
                }],
            }],
        }
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let csv = evidence().csv();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0].split(',').count(), CSV_HEADER.len());
        assert!(
            lines[1].contains(r#""Ana, ""the"" Lopez",ana@acme.example,compliant,'=cmd"#),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn oscal_is_reproducible_and_says_the_framework_is_not_enabled() {
        let e = evidence();
        let a = e.oscal();
        assert_eq!(a, e.clone().oscal());
        let doc: Value = serde_json::from_str(&a).unwrap();
        let ar = &doc["assessment-results"];
        assert_eq!(ar["uuid"].as_str().unwrap().as_bytes()[14], b'5');
        assert!(
            ar["metadata"]["remarks"]
                .as_str()
                .unwrap()
                .contains("not enabled")
        );
        let mut later = e.clone();
        later.collected_at += 1;
        assert_ne!(later.oscal(), a);
    }

    #[test]
    fn oscal_embeds_the_csv_export_compressed_with_its_hash() {
        use std::io::Read;
        let mut e = evidence();
        e.requirements[0].people[0].records.push(TrainingRecord {
            enrollment_id: 3,
            content_id: 4,
            content: "Phishing, \"advanced\"".into(),
            campaign_id: 5,
            enrolled_at: 1_780_000_000_000,
            due_at: Some(1_781_000_000_000),
            completed_at: Some(1_780_500_000_000),
            score: Some(-1),
            triggered_at: None,
            source: None,
        });
        let csv = e.csv();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert!(
            lines[1].ends_with(
                r#","Phishing, ""advanced""",2026-05-28T20:26:40.000Z,2026-06-09T10:13:20.000Z,2026-06-03T15:20:00.000Z,2026-06-03,-1,,,,2026-09-21T14:13:20.000Z"#
            ),
            "{}",
            lines[1]
        );
        let doc: Value = serde_json::from_str(&e.oscal()).unwrap();
        let resource = &doc["assessment-results"]["back-matter"]["resources"][1];
        assert_eq!(resource["base64"]["media-type"], "application/gzip");
        let gzip = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            resource["base64"]["value"].as_str().unwrap(),
        )
        .unwrap();
        let mut embedded = String::new();
        flate2::read::GzDecoder::new(gzip.as_slice())
            .read_to_string(&mut embedded)
            .unwrap();
        assert_eq!(embedded, csv);
        assert_eq!(
            resource["rlinks"][0]["hashes"][0]["value"],
            sha256_hex(csv.as_bytes())
        );
    }
}
