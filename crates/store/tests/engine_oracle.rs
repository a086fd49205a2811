//! The smart-group engine against a brute-force oracle.
//!
//! Random criteria (event leaves over a few types with counts and windows, combined with
//! all/any/not, department leaves, membership of the first group) and a random sequence
//! of steps: events (past, present or slightly future dated, for known people and for
//! one not yet created), deletions, department and status changes, clock moves followed
//! by `run_due_groups`, restarts (same file, fresh engine), a new person, a group created midway (backfill) and new criteria
//! for a group. After every step each group's members must equal what evaluating the
//! criteria at `now` over *all* the person's events (as the test tracked them) gives,
//! archived people never being members.

mod group_support;

use coachloop_core::criteria::{Criteria, EventFact, Facts};
use coachloop_core::event_id::EventId;
use coachloop_core::ids::{GroupId, UserId};
use coachloop_core::time::format_ms;
use group_support::{DAY, HOUR, Harness, MINUTE, t0};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// Types criteria name: three exact ones and a prefix matching all three.
const LEAF_TYPES: [&str; 4] = ["t_a", "t_b", "t_c", "t_*"];
/// Types events have: `x_other` is named by no criteria.
const EVENT_TYPES: [&str; 4] = ["t_a", "t_b", "t_c", "x_other"];
const DEPARTMENTS: [&str; 2] = ["IT", "Sales"];
const EMAILS: [&str; 4] = [
    "ana@acme.example",
    "bob@acme.example",
    "cy@acme.example",
    // Created midway (if at all): events may name her before she exists.
    "dee@acme.example",
];
const INITIAL_USERS: usize = 3;

// ---- criteria -----------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Win {
    Any,
    Rolling(&'static str),
    /// `[t0 + from_h hours, t0 + (from_h + len_h) hours]`.
    Between {
        from_h: i64,
        len_h: i64,
    },
}

#[derive(Debug, Clone)]
enum Spec {
    All(Vec<Spec>),
    Any(Vec<Spec>),
    Not(Box<Spec>),
    Event {
        ty: usize,
        at_least: bool,
        n: u32,
        window: Win,
    },
    Dept(&'static str),
    /// Membership of the first group (a department leaf in the first group itself).
    MemberOfFirst,
}

impl Spec {
    fn json(&self, first: Option<i64>) -> Value {
        match self {
            Spec::All(c) => json!({"all": c.iter().map(|c| c.json(first)).collect::<Vec<_>>()}),
            Spec::Any(c) => json!({"any": c.iter().map(|c| c.json(first)).collect::<Vec<_>>()}),
            Spec::Not(c) => json!({"not": c.json(first)}),
            Spec::Event {
                ty,
                at_least,
                n,
                window,
            } => {
                let count = if *at_least {
                    json!({"at_least": n})
                } else {
                    json!({"at_most": n})
                };
                let within = match window {
                    Win::Any => json!("any"),
                    Win::Rolling(p) => json!(p),
                    Win::Between { from_h, len_h } => json!({
                        "from": format_ms(t0() + from_h * HOUR),
                        "to": format_ms(t0() + (from_h + len_h) * HOUR),
                    }),
                };
                json!({"event": {"type": LEAF_TYPES[*ty], "count": count, "within": within}})
            }
            Spec::Dept(d) => json!({"user": {"attribute": "department", "equals": d}}),
            Spec::MemberOfFirst => match first {
                Some(id) => json!({"group": {"member_of": id}}),
                None => json!({"user": {"attribute": "department", "in": DEPARTMENTS}}),
            },
        }
    }
}

fn window_strategy() -> impl Strategy<Value = Win> {
    prop_oneof![
        1 => Just(Win::Any),
        4 => prop_oneof![Just("PT1H"), Just("P1D"), Just("P3D")].prop_map(Win::Rolling),
        2 => ((-16i64..24), (0i64..12)).prop_map(|(f, l)| Win::Between {
            from_h: f * 6,
            len_h: l * 6,
        }),
    ]
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    let leaf = prop_oneof![
        6 => (0usize..4, prop::bool::weighted(0.7), 0u32..4, window_strategy()).prop_map(
            |(ty, at_least, n, window)| Spec::Event { ty, at_least, n, window }
        ),
        1 => prop_oneof![Just("IT"), Just("Sales")].prop_map(Spec::Dept),
        1 => Just(Spec::MemberOfFirst),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Spec::All),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Spec::Any),
            inner.prop_map(|c| Spec::Not(Box::new(c))),
        ]
    })
}

// ---- steps --------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    /// An event of `EMAILS[user]` that occurred `offset` after now (15-minute grid).
    Event { user: usize, ty: usize, offset: i64 },
    /// Deletes the `pick`-th (mod count) stored event.
    Delete { pick: usize },
    Dept {
        user: usize,
        dept: Option<&'static str>,
    },
    /// Archives an active person, restores an archived one.
    ToggleStatus { user: usize },
    /// Moves the clock by `ms`, then runs what is due.
    Advance { ms: i64 },
    /// Moves the clock to the earliest schedule entry + `delta` ms, then runs what is due.
    ToDue { delta: i64 },
    /// Stops the writer, closes the store and opens the same file again.
    Restart,
    /// Creates the fourth person.
    AddUser { dept: Option<&'static str> },
    /// Creates a smart group (backfill).
    CreateGroup(Spec),
    /// New criteria for the `group`-th (mod count) group.
    UpdateGroup { group: usize, spec: Spec },
}

fn dept_strategy() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![Just(None), Just(Some("IT")), Just(Some("Sales"))]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let advance = prop_oneof![
        3 => (1i64..=12).prop_map(|q| q * 15 * MINUTE),
        2 => (1i64..=24).prop_map(|h| h * HOUR),
        1 => (1i64..=3).prop_map(|d| d * DAY),
        1 => 1i64..(2 * HOUR),
    ];
    prop_oneof![
        12 => (prop_oneof![3 => Just(0usize), 2 => Just(1usize), 1 => 2usize..4], 0usize..4, prop_oneof![
                3 => Just(0i64),
                4 => (-384i64..8).prop_map(|q| q * 15 * MINUTE),
                1 => -(4 * DAY)..(2 * HOUR),
            ])
            .prop_map(|(user, ty, offset)| Step::Event { user, ty, offset }),
        2 => any::<usize>().prop_map(|pick| Step::Delete { pick }),
        2 => (0usize..4, dept_strategy()).prop_map(|(user, dept)| Step::Dept { user, dept }),
        1 => (0usize..4).prop_map(|user| Step::ToggleStatus { user }),
        5 => advance.prop_map(|ms| Step::Advance { ms }),
        3 => (-1i64..=1).prop_map(|delta| Step::ToDue { delta }),
        1 => dept_strategy().prop_map(|dept| Step::AddUser { dept }),
        1 => Just(Step::Restart),
        1 => spec_strategy().prop_map(Step::CreateGroup),
        1 => (any::<usize>(), spec_strategy()).prop_map(|(group, spec)| Step::UpdateGroup { group, spec }),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    departments: Vec<Option<&'static str>>,
    groups: Vec<Spec>,
    steps: Vec<Step>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(dept_strategy(), INITIAL_USERS),
        prop::collection::vec(spec_strategy(), 1..=2),
        prop::collection::vec(step_strategy(), 8..48),
    )
        .prop_map(|(departments, groups, steps)| Case {
            departments,
            groups,
            steps,
        })
}

// ---- the oracle ---------------------------------------------------------------------

struct OracleUser {
    id: UserId,
    email: &'static str,
    department: Option<&'static str>,
    active: bool,
}

struct OracleEvent {
    id: EventId,
    email: &'static str,
    event_type: &'static str,
    occurred: i64,
}

struct OracleGroup {
    id: GroupId,
    criteria: Criteria,
    /// Names another group: its history instants depend on that group's too.
    dependent: bool,
}

struct PersonFacts {
    email: &'static str,
    department: Option<&'static str>,
    events: Vec<EventFact>,
    groups: Vec<i64>,
}

impl Facts for PersonFacts {
    fn attribute(&self, name: &str) -> Option<&str> {
        match name {
            "email" => Some(self.email),
            "department" => self.department,
            _ => None,
        }
    }
    fn events(&self) -> &[EventFact] {
        &self.events
    }
    fn member_of(&self, group: i64) -> bool {
        self.groups.contains(&group)
    }
}

#[derive(Default)]
struct Oracle {
    users: Vec<OracleUser>,
    events: Vec<OracleEvent>,
    groups: Vec<OracleGroup>,
}

impl Oracle {
    fn facts(&self, user: &OracleUser) -> PersonFacts {
        PersonFacts {
            email: user.email,
            department: user.department,
            events: self
                .events
                .iter()
                .filter(|e| e.email == user.email)
                .map(|e| EventFact {
                    id: e.id,
                    event_type: coachloop_core::criteria::shared(e.event_type),
                    description: None,
                    occurred_ms: e.occurred,
                })
                .collect(),
            groups: Vec::new(),
        }
    }

    /// Members of every group at `now`, in group order; a group comes after the groups
    /// it names (only the first is ever named).
    fn members(&self, now: i64) -> Vec<Vec<i64>> {
        let mut out: Vec<Vec<i64>> = Vec::new();
        for group in &self.groups {
            let mut members = Vec::new();
            for user in &self.users {
                let mut facts = self.facts(user);
                facts.groups = self
                    .groups
                    .iter()
                    .zip(&out)
                    .filter(|(_, m)| m.contains(&user.id.0))
                    .map(|(g, _)| g.id.0)
                    .collect();
                if user.active && group.criteria.evaluate(&facts, now) {
                    members.push(user.id.0);
                }
            }
            members.sort_unstable();
            out.push(members);
        }
        out
    }

    /// The instant in `(from, to]` since which the answer for `user` in `group` (not
    /// dependent) has been what it is at `to`, if it changed in that span.
    fn last_flip(&self, group: &OracleGroup, user: &OracleUser, from: i64, to: i64) -> Option<i64> {
        if !user.active {
            return None;
        }
        let facts = self.facts(user);
        let mut answer = group.criteria.evaluate(&facts, from);
        let mut t = from;
        let mut last = None;
        while let Some(next) = group.criteria.next_change(&facts, t).filter(|n| *n <= to) {
            let now = group.criteria.evaluate(&facts, next);
            if now != answer {
                last = Some(next);
                answer = now;
            }
            t = next;
        }
        last
    }
}

// ---- running a case -----------------------------------------------------------------

struct Run {
    h: Harness,
    oracle: Oracle,
    log: Vec<String>,
    /// The largest history id seen per group.
    seen_history: Vec<i64>,
    check_history_at: bool,
}

impl Run {
    fn fail(&self, message: String) -> TestCaseError {
        TestCaseError::fail(format!(
            "{message}\nsteps (now, what):\n  {}",
            self.log.join("\n  ")
        ))
    }

    async fn create_group(&mut self, spec: &Spec) -> Result<(), TestCaseError> {
        let first = self.oracle.groups.first().map(|g| g.id.0);
        let value = spec.json(first);
        let name = format!("g{}", self.oracle.groups.len());
        let group = self
            .h
            .smart_group(self.h.account, &name, value.clone())
            .await;
        let criteria = Criteria::parse(&value).map_err(|e| self.fail(e.to_string()))?;
        self.log.push(format!("create group {} = {value}", group.0));
        self.oracle.groups.push(OracleGroup {
            id: group,
            dependent: !criteria.groups().is_empty(),
            criteria,
        });
        self.seen_history.push(0);
        Ok(())
    }

    async fn check(&mut self, after_run_from: Option<i64>) -> Result<(), TestCaseError> {
        let now = self.h.now();
        let expected = self.oracle.members(now);
        for (i, group) in self.oracle.groups.iter().enumerate() {
            let actual = self.h.members(self.h.account, group.id).await;
            if actual != expected[i] {
                return Err(self.fail(format!(
                    "group {} at {} ({now}): members {actual:?}, oracle {:?}",
                    group.id.0,
                    format_ms(now),
                    expected[i]
                )));
            }
        }
        // New history rows.
        for i in 0..self.oracle.groups.len() {
            let group = &self.oracle.groups[i];
            let rows: Vec<_> = self
                .h
                .history(self.h.account, group.id)
                .await
                .into_iter()
                .filter(|r| r.id > self.seen_history[i])
                .collect();
            for row in &rows {
                if row.at > now || row.recorded_at != now {
                    return Err(self.fail(format!("history row of the future: {row:?}")));
                }
                if let (true, Some(from), false) =
                    (self.check_history_at, after_run_from, group.dependent)
                {
                    let user = self
                        .oracle
                        .users
                        .iter()
                        .find(|u| u.id == row.user_id)
                        .expect("a known user");
                    let flip = self.oracle.last_flip(group, user, from, now);
                    if flip != Some(row.at) {
                        return Err(self.fail(format!(
                            "group {} user {}: {} recorded at {} ({}), the criteria flipped \
                             last at {:?}",
                            group.id.0,
                            row.user_id,
                            row.change,
                            format_ms(row.at),
                            row.at,
                            flip.map(format_ms)
                        )));
                    }
                }
            }
            if let Some(last) = rows.iter().map(|r| r.id).max() {
                self.seen_history[i] = last;
            }
        }
        Ok(())
    }

    async fn step(&mut self, step: &Step) -> Result<Option<i64>, TestCaseError> {
        let a = self.h.account;
        let now = self.h.now();
        let mut ran_from = None;
        match step {
            Step::Event { user, ty, offset } => {
                let email = EMAILS[*user];
                let event_type = EVENT_TYPES[*ty];
                let occurred = now + offset;
                let id = self.h.event(a, email, event_type, occurred).await;
                self.log.push(format!(
                    "{}: event {event_type} of {email} occurred {}",
                    format_ms(now),
                    format_ms(occurred)
                ));
                self.oracle.events.push(OracleEvent {
                    id,
                    email,
                    event_type,
                    occurred,
                });
            }
            Step::Delete { pick } => {
                if self.oracle.events.is_empty() {
                    return Ok(None);
                }
                let event = self.oracle.events.remove(pick % self.oracle.events.len());
                self.h.store.delete_event(a, event.id).await.unwrap();
                self.log.push(format!(
                    "{}: delete {} of {} occurred {}",
                    format_ms(now),
                    event.event_type,
                    event.email,
                    format_ms(event.occurred)
                ));
            }
            Step::Dept { user, dept } => {
                let Some(u) = self.oracle.users.get_mut(*user) else {
                    return Ok(None);
                };
                u.department = *dept;
                let id = u.id;
                self.h.set_user(a, id, json!({"department": dept})).await;
                self.log.push(format!(
                    "{}: department of {} = {dept:?}",
                    format_ms(now),
                    id.0
                ));
            }
            Step::ToggleStatus { user } => {
                let Some(u) = self.oracle.users.get_mut(*user) else {
                    return Ok(None);
                };
                u.active = !u.active;
                let (id, status) = (u.id, if u.active { "active" } else { "archived" });
                self.h.set_user(a, id, json!({"status": status})).await;
                self.log
                    .push(format!("{}: status of {} = {status}", format_ms(now), id.0));
            }
            Step::Advance { ms } => {
                self.h.advance(*ms);
                let handled = self.h.run_due().await;
                self.log.push(format!(
                    "{}: advance {ms} ms to {}, run due ({handled})",
                    format_ms(now),
                    format_ms(self.h.now())
                ));
                ran_from = Some(now);
            }
            Step::ToDue { delta } => {
                let Some(due) = self.h.store.next_due_group().await.unwrap() else {
                    return Ok(None);
                };
                let to = (due + delta).max(now);
                self.h.set_now(to);
                let handled = self.h.run_due().await;
                self.log.push(format!(
                    "{}: to due {} {delta:+} ms, run due ({handled})",
                    format_ms(now),
                    format_ms(due)
                ));
                ran_from = Some(now);
            }
            Step::Restart => {
                self.h.restart_at(now).await;
                self.log.push(format!("{}: restart", format_ms(now)));
            }
            Step::AddUser { dept } => {
                if self.oracle.users.len() == EMAILS.len() {
                    return Ok(None);
                }
                let email = EMAILS[self.oracle.users.len()];
                let id = self.h.user(a, email, *dept).await;
                self.log.push(format!(
                    "{}: add {email} ({}) {dept:?}",
                    format_ms(now),
                    id.0
                ));
                self.oracle.users.push(OracleUser {
                    id,
                    email,
                    department: *dept,
                    active: true,
                });
            }
            Step::CreateGroup(spec) => {
                if self.oracle.groups.len() >= 3 {
                    return Ok(None);
                }
                self.create_group(spec).await?;
            }
            Step::UpdateGroup { group, spec } => {
                let index = group % self.oracle.groups.len();
                let first = (index > 0).then(|| self.oracle.groups[0].id.0);
                let value = spec.json(first);
                let id = self.oracle.groups[index].id;
                self.h.set_criteria(a, id, value.clone()).await;
                let criteria = Criteria::parse(&value).map_err(|e| self.fail(e.to_string()))?;
                self.log.push(format!(
                    "{}: group {} criteria = {value}",
                    format_ms(now),
                    id.0
                ));
                let g = &mut self.oracle.groups[index];
                g.dependent = !criteria.groups().is_empty();
                g.criteria = criteria;
            }
        }
        Ok(ran_from.or(Some(i64::MIN)))
    }
}

async fn run_case(case: Case, check_history_at: bool) -> Result<(), TestCaseError> {
    let h = Harness::start(t0()).await;
    let mut run = Run {
        h,
        oracle: Oracle::default(),
        log: Vec::new(),
        seen_history: Vec::new(),
        check_history_at,
    };
    for (email, dept) in EMAILS.iter().zip(&case.departments) {
        let id = run.h.user(run.h.account, email, *dept).await;
        run.log.push(format!("add {email} ({}) {dept:?}", id.0));
        run.oracle.users.push(OracleUser {
            id,
            email,
            department: *dept,
            active: true,
        });
    }
    for spec in &case.groups {
        run.create_group(spec).await?;
    }
    run.check(None).await?;
    for step in &case.steps {
        let Some(ran) = run.step(step).await? else {
            continue;
        };
        run.check((ran != i64::MIN).then_some(ran)).await?;
    }
    run.h.stop().await;
    Ok(())
}

fn run_property(cases: u32, check_history_at: bool) {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case_strategy(), |case| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_case(case, check_history_at))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Cases: `ORACLE_CASES` (default 48).
fn cases() -> u32 {
    std::env::var("ORACLE_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48)
}

/// After every step, each group's members are exactly the oracle's.
#[test]
fn members_always_equal_the_oracle() {
    run_property(cases(), false);
}

/// Also: every join or leave the executor records is at the instant the criteria last
/// flipped (for groups that name no other group).
#[test]
fn executor_records_changes_at_the_flip_instant() {
    run_property(cases(), true);
}

fn on_runtime(future: impl std::future::Future<Output = Result<(), TestCaseError>>) {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future);
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn rolling(ty: usize, period: &'static str) -> Spec {
    Spec::Event {
        ty,
        at_least: true,
        n: 1,
        window: Win::Rolling(period),
    }
}

/// `any` of an hour and a day, the executor running after both: the leave must be
/// recorded when the day ends (the case the history check exists for).
#[test]
fn history_check_catches_a_leave_recorded_at_a_leaf_change() {
    let case = Case {
        departments: vec![None; INITIAL_USERS],
        groups: vec![Spec::Any(vec![rolling(0, "PT1H"), rolling(1, "P1D")])],
        steps: vec![
            Step::Event {
                user: 0,
                ty: 0,
                offset: 0,
            },
            Step::Event {
                user: 0,
                ty: 1,
                offset: 0,
            },
            Step::Advance { ms: 2 * DAY },
        ],
    };
    on_runtime(run_case(case, true));
}

/// Found by CI: three events (one dated in the future), an attribute change, the clock
/// past the future event, then to the leave instant of the oldest event. The person must
/// leave exactly when that event is P3D old.
#[test]
fn leave_after_an_attribute_change_and_a_future_event() {
    let c3 = Spec::Event {
        ty: 2,
        at_least: true,
        n: 3,
        window: Win::Rolling("P3D"),
    };
    let any_c = Spec::Event {
        ty: 2,
        at_least: true,
        n: 1,
        window: Win::Any,
    };
    let event = |offset| Step::Event {
        user: 0,
        ty: 2,
        offset,
    };
    let case = Case {
        departments: vec![None; INITIAL_USERS],
        groups: vec![Spec::Any(vec![c3]), any_c],
        steps: vec![
            event(90 * MINUTE + 1),
            event(0),
            Step::Advance { ms: 45 * MINUTE },
            event(0),
            Step::Dept {
                user: 0,
                dept: None,
            },
            Step::Advance { ms: HOUR },
            Step::ToDue { delta: 0 },
            Step::Event {
                user: 0,
                ty: 0,
                offset: 0,
            },
        ],
    };
    on_runtime(run_case(case, true));
}
