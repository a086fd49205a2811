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
use crate::time::{date_of_ms, date_start_ms, format_date, format_ms, parse_date};
use base64::Engine;
use chrono::NaiveDate;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

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
        csv_of(self, &self.requirements)
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
                            "content_id": t.content_id,
                            "content": t.content,
                            "campaign_id": t.campaign_id,
                            "enrolled_at": format_ms(t.enrolled_at),
                            "completed_at": t.completed_at.map(format_ms),
                            "due_at": t.due_at.map(format_ms),
                            "score": t.score,
                            "effective_date": t.completed_at.map(|at| format_date(date_of_ms(at))),
                            "triggered_at": t.triggered_at.map(format_ms),
                            "trigger_to_completion_seconds": t.trigger_to_completion_secs(),
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
    /// is non-compliant; each requirement's records as a CSV resource in the back matter
    /// (embedded, with its SHA-256), which its observation cites as evidence.
    pub fn oscal(&self) -> String {
        let doc = self.document_uuid();
        let name = |kind: &str, what: &str| Uuid::new_v5(&doc, format!("{kind}|{what}").as_bytes());
        let prop = |name: &str, value: &str| json!({"name": name, "ns": OSCAL_NS, "value": value});
        let period = format!(
            "{} to {}",
            format_date(self.period.from),
            format_date(self.period.to)
        );
        let scope = match self.control {
            Some(c) => format!("{} {}", self.framework.title, c.id),
            None => self.framework.title.to_owned(),
        };
        let collected = format_ms(self.collected_at);

        let mut parties: Vec<Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in self.requirements.iter().flat_map(|r| &r.people) {
            if seen.insert(p.user_id) {
                let mut party = json!({
                    "uuid": self.party_uuid(p.user_id).to_string(),
                    "type": "person",
                    "email-addresses": [p.email],
                    "props": [prop("user-id", &p.user_id.to_string())],
                });
                if let Some(name) = p.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                    party["name"] = json!(name);
                }
                parties.push(party);
            }
        }

        let mut resources: Vec<Value> = Vec::new();
        let plan = name("plan", "requirements");
        resources.push(json!({
            "uuid": plan.to_string(),
            "title": "Assessment plan: the requirements coachloop evaluated",
            "description": self.requirements.iter().map(|r| format!(
                "* {} (`{}`, {} settings): controls {}",
                r.settings.title,
                r.settings.kind.as_str(),
                if r.source == Source::Default { "default" } else { "the account's" },
                r.controls.iter().map(|c| c.id).collect::<Vec<_>>().join(", "),
            )).collect::<Vec<_>>().join("\n"),
            "props": [prop("framework", self.framework.id)],
        }));

        let mut observations: Vec<Value> = Vec::new();
        let mut findings: Vec<Value> = Vec::new();
        let mut reviewed: Vec<Value> = Vec::new();
        for r in &self.requirements {
            let kind = r.settings.kind.as_str();
            let records = csv_of(self, std::slice::from_ref(r));
            let resource = name("records", kind);
            let filename = format!(
                "{}-{kind}-{}-{}.csv",
                self.framework.id,
                format_date(self.period.from),
                format_date(self.period.to)
            );
            let mut href = format!(
                "/api/compliance/evidence?framework={}&from={}&to={}&format=csv",
                self.framework.id,
                format_date(self.period.from),
                format_date(self.period.to)
            );
            if let Some(c) = r.controls.first() {
                href.push_str(&format!("&control={}", query_escape(c.id)));
            }
            resources.push(json!({
                "uuid": resource.to_string(),
                "title": format!("Training records: {}, {period}", r.settings.title),
                "props": [prop("requirement-kind", kind), prop("collected", &collected)],
                "rlinks": [{
                    "href": href,
                    "media-type": "text/csv",
                    "hashes": [{"algorithm": "SHA-256", "value": sha256_hex(records.as_bytes())}],
                }],
                "base64": {
                    "filename": filename,
                    "media-type": "text/csv",
                    "value": base64::engine::general_purpose::STANDARD.encode(records.as_bytes()),
                },
                "remarks": "The rlink names the export these records come from; its hash is \
                            that of the embedded copy, as collected.",
            }));

            let verdict = r.verdict();
            let counts = format!(
                "{} in scope: {} compliant, {} at risk, {} non-compliant, {} excepted",
                r.people.len(),
                r.count(Status::Compliant),
                r.count(Status::AtRisk),
                r.count(Status::NonCompliant),
                r.count(Status::Excepted)
            );
            let observation = name("observation", kind);
            let mut props = vec![
                prop("requirement-kind", kind),
                prop("requirement-status", verdict.as_str()),
                prop(
                    "settings",
                    if r.source == Source::Default {
                        "default"
                    } else {
                        "account"
                    },
                ),
                prop("tolerance-days", &r.settings.tolerance_days.to_string()),
                prop("new-hire-days", &r.settings.new_hire_days.to_string()),
                prop("in-scope", &r.people.len().to_string()),
            ];
            for status in Status::ALL {
                props.push(prop(
                    &format!("count-{}", status.as_str().replace('_', "-")),
                    &r.count(status).to_string(),
                ));
            }
            if let Source::Account(id) = r.source {
                props.push(prop("requirement-id", &id.to_string()));
            }
            let mut o = json!({
                "uuid": observation.to_string(),
                "title": r.settings.title,
                "description": format!(
                    "Each person in scope evaluated against \"{}\" at {collected}, with their \
                     training records of {period}. {counts}.",
                    r.settings.title
                ),
                "props": props,
                "methods": ["EXAMINE", "TEST"],
                "types": ["control-objective"],
                "relevant-evidence": [{
                    "href": format!("#{resource}"),
                    "description": format!("Training records of {period} as CSV"),
                }],
                "collected": collected,
            });
            let subjects: Vec<Value> = r
                .people
                .iter()
                .map(|p| {
                    let mut props = vec![prop("status", p.status.as_str())];
                    if let Some(reason) = nonblank(&p.reason) {
                        props.push(prop("reason", reason));
                    }
                    if let Some(at) = p.last_completed {
                        props.push(prop("last-completed", &format_ms(at)));
                    }
                    if let Some(at) = p.deadline {
                        props.push(prop("due", &format_ms(at)));
                    }
                    json!({
                        "subject-uuid": self.party_uuid(p.user_id).to_string(),
                        "type": "party",
                        "title": p.email,
                        "props": props,
                    })
                })
                .collect();
            if !subjects.is_empty() {
                o["subjects"] = Value::Array(subjects);
            }
            observations.push(o);

            for c in &r.controls {
                let (target_type, target_id) = oscal_target(c);
                reviewed.push(json!({"control-id": oscal_control_id(c)}));
                let satisfied = verdict != Verdict::Fail;
                findings.push(json!({
                    "uuid": name("finding", &format!("{}|{}", c.framework, c.id)).to_string(),
                    "title": format!("{} {}: {}", self.framework.title, c.id, c.title),
                    "description": format!(
                        "{} {} asks \"{}\": {}. {counts}.",
                        self.framework.title,
                        c.id,
                        r.settings.title,
                        match verdict {
                            Verdict::Pass => "everyone in scope is compliant or excepted",
                            Verdict::AtRisk => "no one is non-compliant; some are at risk",
                            Verdict::Fail => "some are non-compliant",
                        }
                    ),
                    "props": [
                        prop("control-id", c.id),
                        prop("framework", c.framework),
                        prop("control-status", verdict.as_str()),
                    ],
                    "target": {
                        "type": target_type,
                        "target-id": target_id,
                        "status": {
                            "state": if satisfied { "satisfied" } else { "not-satisfied" },
                            "reason": if satisfied { "pass" } else { "fail" },
                        },
                    },
                    "related-observations": [{"observation-uuid": observation.to_string()}],
                }));
            }
        }
        // Controls that no requirement answers for (none in the catalog today) are still
        // reviewed.
        for c in self.controls() {
            let id = oscal_control_id(c);
            if !reviewed.iter().any(|r| r["control-id"] == id) {
                reviewed.push(json!({"control-id": id}));
            }
        }

        let mut metadata_props = vec![
            prop("account", &self.account),
            prop("framework", self.framework.id),
            prop(
                "framework-enabled",
                if self.enabled { "true" } else { "false" },
            ),
            prop("period-from", &format_date(self.period.from)),
            prop("period-to", &format_date(self.period.to)),
            prop("collected", &collected),
        ];
        if let Some(c) = self.control {
            metadata_props.push(prop("control-id", c.id));
        }
        let mut metadata = json!({
            "title": format!("coachloop training evidence: {scope}, {period}"),
            "last-modified": collected,
            "version": format!("{}+{}", format_date(self.period.to), collected),
            "oscal-version": OSCAL_VERSION,
            "props": metadata_props,
        });
        if !parties.is_empty() {
            metadata["parties"] = Value::Array(parties);
        }
        let mut result = json!({
            "uuid": name("result", "").to_string(),
            "title": format!("Security awareness training: {scope}, {period}"),
            "description": format!(
                "Every person in scope of the requirements behind {scope}, with their status \
                 when collected ({collected}) and their training records dated by when the \
                 training happened in {period}."
            ),
            "start": format_ms(self.period.start_ms()),
            "end": format_ms(self.period.end_ms() - 1),
            "reviewed-controls": {"control-selections": [{"include-controls": reviewed}]},
        });
        if let Some(remark) = self.remark() {
            metadata["remarks"] = json!(remark);
            result["remarks"] = json!(remark);
        }
        if !observations.is_empty() {
            result["observations"] = Value::Array(observations);
        }
        if !findings.is_empty() {
            result["findings"] = Value::Array(findings);
        }
        let document = json!({
            "assessment-results": {
                "uuid": doc.to_string(),
                "metadata": metadata,
                "import-ap": {"href": format!("#{plan}")},
                "results": [result],
                "back-matter": {"resources": resources},
            }
        });
        let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
        text.push('\n');
        text
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
    "collected_at",
];

fn csv_of(evidence: &Evidence, requirements: &[RequirementEvidence]) -> String {
    let mut out = String::new();
    push_row(&mut out, CSV_HEADER.iter().map(|h| (*h).to_owned()));
    let collected = format_ms(evidence.collected_at);
    let opt = |v: Option<i64>| v.map(format_ms).unwrap_or_default();
    for r in requirements {
        // Every control of the framework that asks it, whichever one was exported: the
        // records of a control are those of its requirement, the same for each.
        let controls = controls_of(evidence.framework.id)
            .filter(|c| c.requirement == r.settings.kind)
            .map(|c| c.id)
            .collect::<Vec<_>>()
            .join(" ");
        for p in &r.people {
            let person = [
                evidence.framework.id.to_owned(),
                controls.clone(),
                r.settings.kind.as_str().to_owned(),
                p.user_id.to_string(),
                p.name.clone().unwrap_or_default(),
                p.email.clone(),
                p.status.as_str().to_owned(),
                p.reason.clone(),
            ];
            if p.records.is_empty() {
                let blank = std::iter::repeat_n(String::new(), 8);
                push_row(
                    &mut out,
                    person
                        .iter()
                        .cloned()
                        .chain(blank)
                        .chain([collected.clone()]),
                );
            }
            for t in &p.records {
                let training = [
                    t.content.clone(),
                    format_ms(t.enrolled_at),
                    opt(t.due_at),
                    opt(t.completed_at),
                    t.completed_at
                        .map(|at| format_date(date_of_ms(at)))
                        .unwrap_or_default(),
                    t.score.map(|s| s.to_string()).unwrap_or_default(),
                    opt(t.triggered_at),
                    t.trigger_to_completion_secs()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    collected.clone(),
                ];
                push_row(&mut out, person.iter().cloned().chain(training));
            }
        }
    }
    out
}

/// One CSV line (RFC 4180: CRLF; a field with a comma, quote or line break is quoted). A
/// field that a spreadsheet would run as a formula gets a leading `'`.
fn push_row(out: &mut String, fields: impl Iterator<Item = String>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = if field.starts_with(['=', '+', '-', '@']) && !is_number(&field) {
            format!("'{field}")
        } else {
            field
        };
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&field);
        }
    }
    out.push_str("\r\n");
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
}
