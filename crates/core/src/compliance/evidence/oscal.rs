//! The OSCAL assessment-results document (1.2.1) of an [`Evidence`], written in one pass
//! by typed structs that borrow from it: at 100,000 people a `serde_json::Value` tree of
//! the same document took seconds to build and gigabytes to hold.
//!
//! Field names and order follow NIST's schema; nothing outside it is written (coachloop's
//! own data is in `props` with [`OSCAL_NS`]), and an array is written only when it holds
//! something.

use super::{
    Evidence, OSCAL_NS, OSCAL_VERSION, PersonEvidence, RequirementEvidence, Source, nonblank,
    oscal_control_id, oscal_target, query_escape, write_csv,
};
use crate::compliance::catalog::Control;
use crate::compliance::evaluate::{Status, Verdict};
use crate::time::{format_date, format_ms};
use base64::Engine;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use uuid::Uuid;

#[derive(Serialize)]
struct Prop<'a> {
    name: Cow<'a, str>,
    ns: &'static str,
    value: Cow<'a, str>,
}

fn prop<'a>(name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Prop<'a> {
    Prop {
        name: name.into(),
        ns: OSCAL_NS,
        value: value.into(),
    }
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "assessment-results")]
    assessment_results: AssessmentResults<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AssessmentResults<'a> {
    uuid: Uuid,
    metadata: Metadata<'a>,
    import_ap: Href,
    results: [AssessmentResult<'a>; 1],
    back_matter: BackMatter<'a>,
}

#[derive(Serialize)]
struct Href {
    href: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Metadata<'a> {
    title: String,
    last_modified: &'a str,
    version: String,
    oscal_version: &'static str,
    props: Vec<Prop<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parties: Option<Parties<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remarks: Option<String>,
}

/// Everyone in scope of any requirement, once, as a `person` party.
struct Parties<'a>(&'a Evidence);

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Party<'a> {
    uuid: Uuid,
    r#type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    props: [Prop<'a>; 1],
    email_addresses: [&'a str; 1],
}

impl Serialize for Parties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let evidence = self.0;
        let mut seen = HashSet::new();
        serializer.collect_seq(
            evidence
                .requirements
                .iter()
                .flat_map(|r| &r.people)
                .filter(|p| seen.insert(p.user_id))
                .map(|p| Party {
                    uuid: evidence.party_uuid(p.user_id),
                    r#type: "person",
                    name: p.name.as_deref().and_then(nonblank),
                    props: [prop("user-id", p.user_id.to_string())],
                    email_addresses: [&p.email],
                }),
        )
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AssessmentResult<'a> {
    uuid: Uuid,
    title: String,
    description: String,
    start: String,
    end: String,
    reviewed_controls: ReviewedControls,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    observations: Vec<Observation<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    findings: Vec<Finding<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remarks: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ReviewedControls {
    control_selections: [ControlSelection; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ControlSelection {
    include_controls: Vec<ControlId>,
}

#[derive(Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
struct ControlId {
    control_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Observation<'a> {
    uuid: Uuid,
    title: &'a str,
    description: String,
    props: Vec<Prop<'a>>,
    methods: [&'static str; 2],
    types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    subjects: Option<Subjects<'a>>,
    relevant_evidence: [RelevantEvidence; 1],
    collected: &'a str,
}

/// A requirement's people, each as a subject (their party) with their status.
struct Subjects<'a> {
    evidence: &'a Evidence,
    people: &'a [PersonEvidence],
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Subject<'a> {
    subject_uuid: Uuid,
    r#type: &'static str,
    title: &'a str,
    props: Vec<Prop<'a>>,
}

impl Serialize for Subjects<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.people.iter().map(|p| {
            let mut props = vec![prop("status", p.status.as_str())];
            if let Some(reason) = nonblank(&p.reason) {
                props.push(prop("reason", reason));
            }
            if let Some(at) = p.last_completed {
                props.push(prop("last-completed", format_ms(at)));
            }
            if let Some(at) = p.deadline {
                props.push(prop("due", format_ms(at)));
            }
            Subject {
                subject_uuid: self.evidence.party_uuid(p.user_id),
                r#type: "party",
                title: &p.email,
                props,
            }
        }))
    }
}

#[derive(Serialize)]
struct RelevantEvidence {
    href: String,
    description: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Finding<'a> {
    uuid: Uuid,
    title: String,
    description: String,
    props: [Prop<'a>; 3],
    target: Target,
    related_observations: [RelatedObservation; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Target {
    r#type: &'static str,
    target_id: String,
    status: TargetStatus,
}

#[derive(Serialize)]
struct TargetStatus {
    state: &'static str,
    reason: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct RelatedObservation {
    observation_uuid: Uuid,
}

#[derive(Serialize)]
struct BackMatter<'a> {
    resources: Vec<Resource<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Resource<'a> {
    uuid: Uuid,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    props: Vec<Prop<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rlinks: Option<[Rlink; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base64: Option<Base64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remarks: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Rlink {
    href: String,
    media_type: &'static str,
    hashes: [Hash; 1],
}

#[derive(Serialize)]
struct Hash {
    algorithm: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Base64 {
    filename: String,
    media_type: &'static str,
    value: String,
}

/// A requirement's records CSV as the document carries it: the SHA-256 of the CSV and
/// the CSV gzip-compressed, written as it is made (never held whole: at 100,000 people
/// it is a quarter of a gigabyte, and a twentieth of that compressed).
struct Records {
    sha256: String,
    gzip: Vec<u8>,
}

/// Forwards to `inner` what is written, hashing it on the way.
struct Hashing<W> {
    hash: Sha256,
    inner: W,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.hash.update(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn records(evidence: &Evidence, r: &RequirementEvidence) -> Records {
    // The fastest level: the CSV repeats each person's columns on every row of theirs,
    // which even it shrinks twenty-fold (a deeper search halved that again at twice the
    // time).
    let gzip = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::fast());
    let mut out = Hashing {
        hash: Sha256::new(),
        inner: gzip,
    };
    // Writes to memory: the only failure would be running out of it, which aborts.
    let written =
        write_csv(evidence, std::slice::from_ref(r), &mut out).and_then(|()| out.inner.finish());
    let gzip = written.expect("writing to memory");
    Records {
        sha256: hex::encode(out.hash.finalize()),
        gzip,
    }
}

/// See [`Evidence::oscal`].
pub(super) fn document(evidence: &Evidence) -> String {
    let e = evidence;
    let doc = e.document_uuid();
    let name = |kind: &str, what: &str| Uuid::new_v5(&doc, format!("{kind}|{what}").as_bytes());
    let period = format!(
        "{} to {}",
        format_date(e.period.from),
        format_date(e.period.to)
    );
    let scope = match e.control {
        Some(c) => format!("{} {}", e.framework.title, c.id),
        None => e.framework.title.to_owned(),
    };
    let collected = format_ms(e.collected_at);

    let plan = name("plan", "requirements");
    let mut resources = vec![Resource {
        uuid: plan,
        title: "Assessment plan: the requirements coachloop evaluated".to_owned(),
        description: Some(
            e.requirements
                .iter()
                .map(|r| {
                    format!(
                        "* {} (`{}`, {} settings): controls {}",
                        r.settings.title,
                        r.settings.kind.as_str(),
                        if r.source == Source::Default {
                            "default"
                        } else {
                            "the account's"
                        },
                        r.controls
                            .iter()
                            .map(|c| c.id)
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        props: vec![prop("framework", e.framework.id)],
        rlinks: None,
        base64: None,
        remarks: None,
    }];

    let mut observations = Vec::new();
    let mut findings = Vec::new();
    let mut reviewed: Vec<ControlId> = Vec::new();
    for r in &e.requirements {
        let kind = r.settings.kind.as_str();
        let records = records(e, r);
        let resource = name("records", kind);
        let mut href = format!(
            "/api/compliance/evidence?framework={}&from={}&to={}&format=csv",
            e.framework.id,
            format_date(e.period.from),
            format_date(e.period.to)
        );
        if let Some(c) = r.controls.first() {
            href.push_str(&format!("&control={}", query_escape(c.id)));
        }
        resources.push(Resource {
            uuid: resource,
            title: format!("Training records: {}, {period}", r.settings.title),
            description: None,
            props: vec![
                prop("requirement-kind", kind),
                prop("collected", collected.as_str()),
            ],
            rlinks: Some([Rlink {
                href,
                media_type: "text/csv",
                hashes: [Hash {
                    algorithm: "SHA-256",
                    value: records.sha256,
                }],
            }]),
            base64: Some(Base64 {
                filename: format!(
                    "{}-{kind}-{}-{}.csv.gz",
                    e.framework.id,
                    format_date(e.period.from),
                    format_date(e.period.to)
                ),
                media_type: "application/gzip",
                value: base64::engine::general_purpose::STANDARD.encode(&records.gzip),
            }),
            remarks: Some(
                "The rlink names the CSV export these records come from, and its hash is \
                 that of the CSV as collected; the embedded copy is that CSV compressed \
                 with gzip.",
            ),
        });

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
            prop("tolerance-days", r.settings.tolerance_days.to_string()),
            prop("new-hire-days", r.settings.new_hire_days.to_string()),
            prop("in-scope", r.people.len().to_string()),
        ];
        for status in Status::ALL {
            props.push(prop(
                format!("count-{}", status.as_str().replace('_', "-")),
                r.count(status).to_string(),
            ));
        }
        if let Source::Account(id) = r.source {
            props.push(prop("requirement-id", id.to_string()));
        }
        observations.push(Observation {
            uuid: observation,
            title: &r.settings.title,
            description: format!(
                "Each person in scope evaluated against \"{}\" at {collected}, with their \
                 training records of {period}. {counts}.",
                r.settings.title
            ),
            props,
            methods: ["EXAMINE", "TEST"],
            types: ["control-objective"],
            subjects: (!r.people.is_empty()).then_some(Subjects {
                evidence: e,
                people: &r.people,
            }),
            relevant_evidence: [RelevantEvidence {
                href: format!("#{resource}"),
                description: format!("Training records of {period} as CSV (gzip)"),
            }],
            collected: &collected,
        });

        for c in &r.controls {
            reviewed.push(ControlId {
                control_id: oscal_control_id(c),
            });
            findings.push(finding(e, c, r, verdict, &counts, observation, &name));
        }
    }
    // Controls that no requirement answers for (none in the catalog today) are still
    // reviewed.
    for c in e.controls() {
        let id = ControlId {
            control_id: oscal_control_id(c),
        };
        if !reviewed.contains(&id) {
            reviewed.push(id);
        }
    }

    let mut metadata_props = vec![
        prop("account", e.account.as_str()),
        prop("framework", e.framework.id),
        prop(
            "framework-enabled",
            if e.enabled { "true" } else { "false" },
        ),
        prop("period-from", format_date(e.period.from)),
        prop("period-to", format_date(e.period.to)),
        prop("collected", collected.as_str()),
    ];
    if let Some(c) = e.control {
        metadata_props.push(prop("control-id", c.id));
    }
    let anyone = e.requirements.iter().any(|r| !r.people.is_empty());
    let document = Document {
        assessment_results: AssessmentResults {
            uuid: doc,
            metadata: Metadata {
                title: format!("coachloop training evidence: {scope}, {period}"),
                last_modified: &collected,
                version: format!("{}+{}", format_date(e.period.to), collected),
                oscal_version: OSCAL_VERSION,
                props: metadata_props,
                parties: anyone.then_some(Parties(e)),
                remarks: e.remark(),
            },
            import_ap: Href {
                href: format!("#{plan}"),
            },
            results: [AssessmentResult {
                uuid: name("result", ""),
                title: format!("Security awareness training: {scope}, {period}"),
                description: format!(
                    "Every person in scope of the requirements behind {scope}, with their \
                     status when collected ({collected}) and their training records dated \
                     by when the training happened in {period}."
                ),
                start: format_ms(e.period.start_ms()),
                end: format_ms(e.period.end_ms() - 1),
                reviewed_controls: ReviewedControls {
                    control_selections: [ControlSelection {
                        include_controls: reviewed,
                    }],
                },
                observations,
                findings,
                remarks: e.remark(),
            }],
            back_matter: BackMatter { resources },
        },
    };
    // Compact: indentation made a third of the document at 100,000 people (`jq .` shows
    // it indented).
    // Sized once: the embedded records and about 700 bytes a person (growing by doubling
    // copied the document over and over).
    let people: usize = e.requirements.iter().map(|r| r.people.len()).sum();
    let embedded: usize = document
        .assessment_results
        .back_matter
        .resources
        .iter()
        .map(|r| r.base64.as_ref().map_or(0, |b| b.value.len()))
        .sum();
    let mut text = Vec::with_capacity(embedded + 700 * people + 16_384);
    serde_json::to_writer(&mut text, &document).expect("a document of strings and numbers");
    text.push(b'\n');
    String::from_utf8(text).expect("serde_json writes UTF-8")
}

fn finding<'a>(
    e: &Evidence,
    c: &'a Control,
    r: &RequirementEvidence,
    verdict: Verdict,
    counts: &str,
    observation: Uuid,
    name: &impl Fn(&str, &str) -> Uuid,
) -> Finding<'a> {
    let (target_type, target_id) = oscal_target(c);
    let satisfied = verdict != Verdict::Fail;
    Finding {
        uuid: name("finding", &format!("{}|{}", c.framework, c.id)),
        title: format!("{} {}: {}", e.framework.title, c.id, c.title),
        description: format!(
            "{} {} asks \"{}\": {}. {counts}.",
            e.framework.title,
            c.id,
            r.settings.title,
            match verdict {
                Verdict::Pass => "everyone in scope is compliant or excepted",
                Verdict::AtRisk => "no one is non-compliant; some are at risk",
                Verdict::Fail => "some are non-compliant",
            }
        ),
        props: [
            prop("control-id", c.id),
            prop("framework", c.framework),
            prop("control-status", verdict.as_str()),
        ],
        target: Target {
            r#type: target_type,
            target_id,
            status: TargetStatus {
                state: if satisfied {
                    "satisfied"
                } else {
                    "not-satisfied"
                },
                reason: if satisfied { "pass" } else { "fail" },
            },
        },
        related_observations: [RelatedObservation {
            observation_uuid: observation,
        }],
    }
}
