//! The smart-group engine: keeps each smart group's membership equal to its criteria,
//! inside the transaction of whatever changed a person's facts.
//!
//! The engine holds, per account, the active smart groups (parsed, in dependency order)
//! and a cache of the facts of the people it has seen: their attributes, memberships and
//! only those events some rule can still count (see `criteria::prune`). An arriving
//! event re-evaluates only the rules that mention its type, for its person only; a
//! membership change re-evaluates the rules that name that group. Every evaluation also
//! asks the criteria for the next instant the answer could change by time alone, and
//! persists it in `group_schedule`; the executor (`Store::run_due_groups`) acts then.
//!
//! One `tokio::sync::Mutex` guards the engine. Every path that changes facts takes it
//! *before* it begins its write transaction and holds it until the commit, so the cache
//! always equals what is committed; after a failed commit the touched people are
//! forgotten and reloaded on next use.

use crate::Result;
use crate::db::{Backend, ListOf};
use crate::membership::Change;
use crate::notices::Notices;
use crate::scan::{EventRow, Walk, each_event};
use crate::script::Script;
use crate::sql::{Record, Separated};
use crate::wakes::Wakes;
use coachloop_core::criteria::{
    Criteria, EventFact, EventLeaf, Facts, Pruner, SharedText, prune, shared,
};
use coachloop_core::event_id::EventId;
use coachloop_core::user::{DATE_FIELDS, TEXT_FIELDS};
use serde::Serialize;
use serde_json::json;
use sqlx::AnyConnection;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write;
use std::sync::Arc;

/// Rows per multi-row statement when writing changes.
const WRITE_CHUNK: usize = 500;

/// One active smart group.
#[derive(Debug)]
pub(crate) struct Rule {
    pub group: i64,
    pub version: i64,
    pub criteria: Criteria,
    /// Other groups the criteria name.
    pub groups: Vec<i64>,
    /// The criteria's event leaves, copied out so the event path walks no tree.
    pub leaves: Vec<EventLeaf>,
}

impl Rule {
    pub fn new(group: i64, version: i64, criteria: Criteria) -> Self {
        let groups = criteria.groups();
        let leaves = criteria.event_leaves().into_iter().cloned().collect();
        Self {
            group,
            version,
            criteria,
            groups,
            leaves,
        }
    }
}

/// What one person looks like to the criteria, as cached.
#[derive(Debug, Default)]
pub(crate) struct Person {
    pub active: bool,
    pub attributes: Vec<(&'static str, String)>,
    pub events: Vec<EventFact>,
    /// Every group the person belongs to (manual ones too: criteria may name them).
    pub groups: GroupSet,
    /// The persisted `group_schedule` entry per smart group.
    pub dues: GroupDues,
    /// Length of `events` after the last prune; pruning again waits until it doubles.
    pub pruned_len: usize,
}

/// A person's groups, as a sorted list: for the few dozen a person is in, a third of
/// the memory of a hash set (100,000 cached people hold one each).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GroupSet(Vec<i64>);

impl GroupSet {
    pub fn contains(&self, group: &i64) -> bool {
        self.0.binary_search(group).is_ok()
    }

    pub fn insert(&mut self, group: i64) {
        if let Err(at) = self.0.binary_search(&group) {
            self.0.insert(at, group);
        }
    }

    pub fn remove(&mut self, group: &i64) {
        if let Ok(at) = self.0.binary_search(group) {
            self.0.remove(at);
        }
    }
}

impl FromIterator<i64> for GroupSet {
    fn from_iter<I: IntoIterator<Item = i64>>(groups: I) -> Self {
        let mut groups: Vec<i64> = groups.into_iter().collect();
        groups.sort_unstable();
        groups.dedup();
        Self(groups)
    }
}

/// A person's schedule entry per smart group, as a list sorted by group (see [`GroupSet`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GroupDues(Vec<(i64, i64)>);

impl GroupDues {
    fn find(&self, group: i64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&group, |(g, _)| *g)
    }

    pub fn get(&self, group: &i64) -> Option<&i64> {
        self.find(*group).ok().map(|at| &self.0[at].1)
    }

    /// Sets the entry, returning the one it replaced.
    pub fn insert(&mut self, group: i64, due: i64) -> Option<i64> {
        match self.find(group) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, due)),
            Err(at) => {
                self.0.insert(at, (group, due));
                None
            }
        }
    }

    pub fn remove(&mut self, group: &i64) -> Option<i64> {
        self.find(*group).ok().map(|at| self.0.remove(at).1)
    }
}

impl Facts for Person {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    fn events(&self) -> &[EventFact] {
        &self.events
    }
    fn member_of(&self, group: i64) -> bool {
        self.groups.contains(&group)
    }
}

impl Person {
    /// Takes from `fresh` (the same person read for one smart group's criteria) what that
    /// group needs: its events and attributes, and the person's membership and schedule
    /// entry of `group`. The rest of the cached facts are as current as `fresh`.
    fn absorb(&mut self, fresh: Person, group: i64) {
        let known: HashSet<EventId> = self.events.iter().map(|e| e.id).collect();
        self.events
            .extend(fresh.events.into_iter().filter(|e| !known.contains(&e.id)));
        // Both parts were pruned for their rules: the whole is, for all of them. Held at
        // its size, as a load leaves it (grown by doubling, 100,000 lists held twice
        // what they keep).
        self.pruned_len = self.events.len();
        self.events.shrink_to_fit();
        for (name, value) in fresh.attributes {
            if !self.attributes.iter().any(|(n, _)| *n == name) {
                self.attributes.push((name, value));
            }
        }
        if fresh.groups.contains(&group) {
            self.groups.insert(group);
        } else {
            self.groups.remove(&group);
        }
        match fresh.dues.get(&group) {
            Some(due) => self.dues.insert(group, *due),
            None => self.dues.remove(&group),
        };
    }

    /// Adds a fact while the engine loads, keeping the list near the size of what the
    /// rules still need. A person's whole history passes through here, most of it to be
    /// pruned: reserved up front, or grown by doubling, the lists held at once far more
    /// than they keep. So a full list is pruned first (when a quarter of it is new since
    /// the last prune), and grows by a quarter only if that freed too little.
    fn push_loading(&mut self, fact: EventFact, pruner: &mut Pruner) {
        let events = &mut self.events;
        if events.len() == events.capacity() {
            if events.len() >= 8 && events.len() - self.pruned_len >= events.len() / 4 {
                pruner.prune(events);
                self.pruned_len = events.len();
            }
            if events.capacity() - events.len() <= events.len() / 8 {
                events.reserve_exact((events.len() / 4).max(4));
            }
        }
        events.push(fact);
    }
}

/// What an evaluation decided, written by [`Outcome::write`] in the caller's transaction.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub changes: Vec<Change>,
    /// (account, group, user, due): `None` removes the entry.
    pub dues: Vec<(i64, i64, i64, Option<i64>)>,
    /// Enrolments the joins made (set by [`Outcome::write`]).
    pub enrolled: crate::campaigns::Enrolled,
    /// The earliest compliance change the joins and leaves scheduled (set by the event
    /// writer, which rechecks compliance in its own transaction).
    pub compliance_due: Option<i64>,
}

impl Outcome {
    /// Wakes the executors after the commit of this outcome, if it scheduled something
    /// earlier than they sleep towards, and the notice runner if it may have queued.
    pub(crate) fn committed(&self, wakes: &Wakes) {
        wakes.groups_due(self.dues.iter().filter_map(|d| d.3).min());
        wakes.training_due(self.enrolled.earliest_due);
        wakes.training_due(self.compliance_due);
        if !self.changes.is_empty() {
            wakes.jobs_queued();
        }
    }

    pub fn joined(&self) -> usize {
        self.changes.iter().filter(|c| c.joined).count()
    }

    pub fn left(&self) -> usize {
        self.changes.iter().filter(|c| !c.joined).count()
    }

    /// Writes the changes, the enrolments the joins make and the schedule entries, and
    /// queues their notices, in the caller's transaction. `now` is when they are recorded.
    pub async fn write(&mut self, conn: &mut AnyConnection, now: i64) -> Result<()> {
        let mut script = Script::new(conn);
        self.write_into(conn, now, &mut script).await?;
        script.run(conn).await
    }

    /// [`Outcome::write`], but only the reads and the enrolments (whose ids the notices
    /// need) go now: the rest is added to `script`, for the caller to send with its other
    /// writes and its `COMMIT` in one round trip.
    pub async fn write_into(
        &mut self,
        conn: &mut AnyConnection,
        now: i64,
        script: &mut Script<'_>,
    ) -> Result<()> {
        let mut outbox = Notices::default();
        // In key order (a stable sort: one person's changes of a group keep theirs), so
        // a backfill's tens of thousands of rows fill each index in order, page after
        // page, instead of at random (twice as fast on SQLite at 55,000 joins).
        self.changes.sort_by_key(|c| (c.group, c.user));
        let joined: Vec<&Change> = self.changes.iter().filter(|c| c.joined).collect();
        self.enrolled = crate::campaigns::enrol_joins(conn, &joined, now, &mut outbox).await?;
        queue_membership_events(conn, &self.changes, now, &mut outbox).await?;
        let backend = script.backend();
        let rows = backend.rows_per_insert();
        let members: Vec<MemberRecord> = (joined.iter())
            .map(|c| MemberRecord {
                group_id: c.group,
                user_id: c.user,
                account_id: c.account,
                joined_at: c.at,
                version: c.version,
            })
            .collect();
        for chunk in members.chunks(rows) {
            let insert = script.reserve(conn, chunk.len() * 5).await?;
            insert.push_records(backend, "group_members", chunk);
            insert.push(" ON CONFLICT (group_id, user_id) DO NOTHING");
        }
        let leaves: Vec<(i64, i64)> = (self.changes.iter())
            .filter(|c| !c.joined)
            .map(|c| (c.group, c.user))
            .collect();
        delete_pairs(conn, script, "group_members", &leaves).await?;
        let history: Vec<HistoryRecord<'_>> = (self.changes.iter())
            .map(|c| HistoryRecord {
                account_id: c.account,
                group_id: c.group,
                user_id: c.user,
                change: if c.joined { "joined" } else { "left" },
                at: c.at,
                version: c.version,
                reason: &c.reason,
                recorded_at: now,
            })
            .collect();
        for chunk in history.chunks(rows) {
            let insert = script.reserve(conn, chunk.len() * 8).await?;
            insert.push_records(backend, "group_history", chunk);
        }
        outbox.write(conn, script, now).await?;
        // The last entry for a person and group wins (one statement may not upsert a
        // row twice on PostgreSQL).
        let mut dues: HashMap<(i64, i64), (i64, Option<i64>)> = HashMap::new();
        for (account, group, user, due) in &self.dues {
            dues.insert((*group, *user), (*account, *due));
        }
        let mut dues: Vec<_> = dues.into_iter().collect();
        dues.sort_unstable_by_key(|(key, _)| *key);
        let mut set = Vec::new();
        let mut unset = Vec::new();
        for ((group_id, user_id), (account_id, due)) in dues {
            match due {
                Some(due_at) => set.push(ScheduleRecord {
                    account_id,
                    group_id,
                    user_id,
                    due_at,
                }),
                None => unset.push((group_id, user_id)),
            }
        }
        for chunk in set.chunks(rows) {
            let upsert = script.reserve(conn, chunk.len() * 4).await?;
            upsert.push_records(backend, "group_schedule", chunk);
            upsert.push(" ON CONFLICT (group_id, user_id) DO UPDATE SET due_at = excluded.due_at");
        }
        delete_pairs(conn, script, "group_schedule", &unset).await
    }
}

/// A row of `group_members` (see [`QueryBuilder::push_records`]).
#[derive(Serialize)]
struct MemberRecord {
    group_id: i64,
    user_id: i64,
    account_id: i64,
    joined_at: i64,
    version: i64,
}

impl Record for MemberRecord {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("group_id", "bigint"),
        ("user_id", "bigint"),
        ("account_id", "bigint"),
        ("joined_at", "bigint"),
        ("version", "bigint"),
    ];

    fn bind<'args>(&self, row: &mut Separated<'_, 'args>) {
        row.push_bind(self.group_id)
            .push_bind(self.user_id)
            .push_bind(self.account_id)
            .push_bind(self.joined_at)
            .push_bind(self.version);
    }
}

/// A row of `group_history`.
#[derive(Serialize)]
struct HistoryRecord<'a> {
    account_id: i64,
    group_id: i64,
    user_id: i64,
    change: &'static str,
    at: i64,
    version: i64,
    reason: &'a str,
    recorded_at: i64,
}

impl Record for HistoryRecord<'_> {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("account_id", "bigint"),
        ("group_id", "bigint"),
        ("user_id", "bigint"),
        ("change", "text"),
        ("at", "bigint"),
        ("version", "bigint"),
        ("reason", "text"),
        ("recorded_at", "bigint"),
    ];

    fn bind<'args>(&self, row: &mut Separated<'_, 'args>) {
        row.push_bind(self.account_id)
            .push_bind(self.group_id)
            .push_bind(self.user_id)
            .push_bind(self.change)
            .push_bind(self.at)
            .push_bind(self.version)
            .push_bind(self.reason.to_owned())
            .push_bind(self.recorded_at);
    }
}

/// A row of `group_schedule`.
#[derive(Serialize)]
struct ScheduleRecord {
    account_id: i64,
    group_id: i64,
    user_id: i64,
    due_at: i64,
}

impl Record for ScheduleRecord {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("account_id", "bigint"),
        ("group_id", "bigint"),
        ("user_id", "bigint"),
        ("due_at", "bigint"),
    ];

    fn bind<'args>(&self, row: &mut Separated<'_, 'args>) {
        row.push_bind(self.account_id)
            .push_bind(self.group_id)
            .push_bind(self.user_id)
            .push_bind(self.due_at);
    }
}

/// Queues `group.member_joined` and `group.member_left` webhooks for membership changes.
pub(crate) async fn queue_membership_events(
    conn: &mut AnyConnection,
    changes: &[Change],
    now: i64,
    outbox: &mut Notices,
) -> Result<()> {
    let mut by_account: HashMap<(i64, bool), Vec<&Change>> = HashMap::new();
    for c in changes {
        by_account.entry((c.account, c.joined)).or_default().push(c);
    }
    for ((account, joined), changes) in by_account {
        let event = if joined {
            crate::notices::MEMBER_JOINED
        } else {
            crate::notices::MEMBER_LEFT
        };
        // Described only for an account that listens: a backfill joins tens of thousands.
        if !outbox.subscribed(conn, account, event).await? {
            continue;
        }
        let mut facts = Vec::with_capacity(changes.len());
        for (i, c) in changes.into_iter().enumerate() {
            cooperate(i).await;
            facts.push((
                format!("group:{}:user:{}:at:{}", c.group, c.user, c.at),
                json!({
                    "group_id": c.group,
                    "user_id": c.user,
                    "at": coachloop_core::time::format_ms(c.at),
                    "version": c.version,
                    "reason": serde_json::from_str::<serde_json::Value>(&c.reason)
                        .unwrap_or(serde_json::Value::Null),
                }),
            ));
        }
        outbox.event(conn, account, event, &facts, now).await?;
    }
    Ok(())
}

/// Adds deletes of rows of a table keyed by (group_id, user_id) to `script`, one
/// statement per group and chunk, so each is a search of the primary key (a row-value
/// `IN` would scan).
async fn delete_pairs(
    conn: &mut AnyConnection,
    script: &mut Script<'_>,
    table: &str,
    pairs: &[(i64, i64)],
) -> Result<()> {
    let mut by_group: HashMap<i64, Vec<i64>> = HashMap::new();
    for (group, user) in pairs {
        by_group.entry(*group).or_default().push(*user);
    }
    for (group, users) in by_group {
        for chunk in users.chunks(WRITE_CHUNK) {
            let delete = script.reserve(conn, chunk.len() + 1).await?;
            delete.push(format!("DELETE FROM {table} WHERE group_id = "));
            delete.push_bind(group).push(" AND user_id IN (");
            let mut ids = delete.separated(", ");
            for user in chunk {
                ids.push_bind(*user);
            }
            ids.push_unseparated(")");
        }
    }
    Ok(())
}

/// When an evaluation happens: it evaluates at `now`, records changes at `at` (the
/// schedule entry's instant when one fired, else `now`), and treats the schedule so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct When {
    pub now: i64,
    pub at: i64,
    pub schedule: Schedule,
}

impl When {
    /// After a new or changed fact.
    pub fn fact(now: i64) -> Self {
        Self {
            now,
            at: now,
            schedule: Schedule::Earlier,
        }
    }
}

/// How an evaluation treats the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// After a new fact: an entry only ever moves earlier. A later true instant is picked
    /// up when the earlier entry fires and finds nothing to do, which saves a write per
    /// event for the common case (another event of a current member).
    Earlier,
    /// When an entry fired: it becomes exactly the next instant, or goes.
    Exact,
}

/// An interned event type name and the indices of the rules an event of it can affect.
type TypeRules = (SharedText, Arc<[usize]>);

/// The rules and cached people of one account.
#[derive(Debug, Default)]
pub(crate) struct AccountRules {
    /// Active smart groups; a group comes after every smart group its criteria name.
    pub rules: Vec<Rule>,
    /// Per event type name, filled as types are seen: the interned name and the indices
    /// of the rules an event of that type can affect.
    by_type: HashMap<Box<str>, TypeRules>,
    people: HashMap<i64, Person>,
    /// One copy of each event description the cached facts hold.
    descriptions: HashMap<Box<str>, SharedText>,
    /// Whether everyone was loaded at once (see [`AccountRules::preload`]).
    preloaded: bool,
}

impl AccountRules {
    pub fn new(mut rules: Vec<Rule>) -> Self {
        order_by_dependency(&mut rules);
        Self {
            rules,
            by_type: HashMap::new(),
            people: HashMap::new(),
            descriptions: HashMap::new(),
            preloaded: false,
        }
    }

    /// Loads everyone of the account in one pass over its events, instead of one person
    /// at a time on first use: the event path calls it, since a stream of events reaches
    /// most people, and a per-person load reads their events scattered over the table.
    pub async fn preload(
        &mut self,
        conn: &mut AnyConnection,
        account: i64,
        now: i64,
    ) -> Result<()> {
        use futures_util::TryStreamExt;
        use sqlx::Row;
        if self.preloaded || self.rules.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let mut people: HashMap<i64, Person> = HashMap::new();
        // Streamed, as are the memberships and schedule below: a whole read row holds a
        // copy of every column, and 100,000 of them at once were a large share of the
        // memory the load needed only while it ran.
        let sql = format!(
            "SELECT id, status, {} FROM users WHERE account_id = $1",
            attribute_columns()
        );
        let mut rows = sqlx::query(&sql).bind(account).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let mut person = Person {
                active: row.try_get::<String, _>(1)? == "active",
                ..Person::default()
            };
            for (i, name) in attribute_names().enumerate() {
                if let Some(value) = row.try_get::<Option<String>, _>(i + 2)?
                    && !value.is_empty()
                {
                    person.attributes.push((name, value));
                }
            }
            people.insert(row.try_get(0)?, person);
        }
        drop(rows);
        let names: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM event_types WHERE account_id = $1")
                .bind(account)
                .fetch_all(&mut *conn)
                .await?;
        // Only the types some rule names, interned.
        let mut types: HashMap<i64, SharedText> = HashMap::new();
        for (id, name) in names {
            let (name, rules) = self.event_type(&name);
            if !rules.is_empty() {
                types.insert(id, name);
            }
        }
        let mut descriptions = std::mem::take(&mut self.descriptions);
        let leaves = self.leaves();
        let mut pruner = Pruner::new(&leaves, now);
        // Each type with the leaves it may match, so a row is tested against those only.
        let by_type: HashMap<i64, (SharedText, Vec<&EventLeaf>)> = (types.iter())
            .map(|(id, name)| {
                let matching = leaves.iter().filter(|l| l.matches_type(name)).copied();
                (*id, (name.clone(), matching.collect()))
            })
            .collect();
        let mut add = |row: EventRow<'_>| {
            let (Some(person), Some((event_type, type_leaves))) =
                (people.get_mut(&row.user), by_type.get(&row.type_id))
            else {
                return;
            };
            if let Some(fact) = fact_of(&row, event_type, type_leaves, &mut descriptions) {
                person.push_loading(fact, &mut pruner);
            }
        };
        let ids: Vec<i64> = types.keys().copied().collect();
        if leaves.iter().any(|l| l.description.is_some()) {
            // Descriptions live only in the table: one pass over it.
            each_event(conn, Walk::Table(&ids), true, &mut add).await?;
        } else {
            for type_id in ids {
                let walk = Walk::Recent {
                    type_id,
                    since: i64::MIN,
                };
                each_event(conn, walk, false, &mut add).await?;
            }
        }
        let mut members = sqlx::query_as::<_, (i64, i64)>(
            "SELECT user_id, group_id FROM group_members WHERE account_id = $1",
        )
        .bind(account)
        .fetch(&mut *conn);
        while let Some((user, group)) = members.try_next().await? {
            if let Some(person) = people.get_mut(&user) {
                person.groups.insert(group);
            }
        }
        drop(members);
        let mut dues = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT user_id, group_id, due_at FROM group_schedule WHERE account_id = $1",
        )
        .bind(account)
        .fetch(&mut *conn);
        while let Some((user, group, due)) = dues.try_next().await? {
            if let Some(person) = people.get_mut(&user) {
                person.dues.insert(group, due);
            }
        }
        drop(dues);
        for person in people.values_mut() {
            pruner.prune(&mut person.events);
            person.pruned_len = person.events.len();
            // Give back the room left from loading.
            if person.events.capacity() > person.events.len() + person.events.len() / 8 {
                person.events.shrink_to_fit();
            }
        }
        self.descriptions = descriptions;
        tracing::info!(
            account,
            people = people.len(),
            facts = people.values().map(|p| p.events.len()).sum::<usize>(),
            took_ms = started.elapsed().as_millis() as u64,
            "smart-group engine loaded"
        );
        // People cached already (loaded in this transaction) are as current.
        for (user, person) in people {
            self.people.entry(user).or_insert(person);
        }
        self.preloaded = true;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn leaves(&self) -> Vec<&EventLeaf> {
        self.rules.iter().flat_map(|r| &r.leaves).collect()
    }

    /// The interned name of an event type and the rules an event of it can affect.
    pub fn event_type(&mut self, event_type: &str) -> TypeRules {
        if let Some(known) = self.by_type.get(event_type) {
            return known.clone();
        }
        let rules: Arc<[usize]> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.leaves.iter().any(|l| l.matches_type(event_type)))
            .map(|(i, _)| i)
            .collect();
        let known = (shared(event_type), rules);
        self.by_type.insert(event_type.into(), known.clone());
        known
    }

    /// The shared copy of an event description (10 M cached facts hold a handful).
    pub fn description(&mut self, text: Option<&str>) -> Option<SharedText> {
        intern(&mut self.descriptions, text)
    }

    pub fn forget(&mut self, user: i64) {
        self.people.remove(&user);
    }

    /// Forgets every cached person (each is loaded again on first use, alone).
    pub fn forget_everyone(&mut self) {
        self.people = HashMap::new();
    }

    /// The cached person, loaded from the database (in the caller's transaction) if needed,
    /// keeping the events that can count at any instant from `from` on.
    pub async fn person(
        &mut self,
        conn: &mut AnyConnection,
        account: i64,
        user: i64,
        from: i64,
    ) -> Result<&mut Person> {
        self.load_people(conn, account, &[user], from).await?;
        Ok(self.people.get_mut(&user).expect("loaded above"))
    }

    /// Loads into the cache those of `users` it lacks (from the database, in the caller's
    /// transaction), keeping the events that can count at any instant from `now` on: four
    /// reads for all of them, not four per person (on PostgreSQL each read is a round
    /// trip, and a batch of events may reach dozens of people seen for the first time).
    pub async fn load_people(
        &mut self,
        conn: &mut AnyConnection,
        account: i64,
        users: &[i64],
        now: i64,
    ) -> Result<()> {
        use sqlx::Row;
        let missing: BTreeSet<i64> = users
            .iter()
            .copied()
            .filter(|user| !self.people.contains_key(user))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let list = Backend::list(&missing.iter().collect::<Vec<_>>());
        let backend = Backend::of_connection(conn);
        let mut people: HashMap<i64, Person> = (missing.iter())
            .map(|user| (*user, Person::default()))
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT id, status, {} FROM users WHERE account_id = $1 AND {}",
            attribute_columns(),
            backend.in_list("id", 2, ListOf::Integers)
        ))
        .bind(account)
        .bind(&list)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let Some(person) = people.get_mut(&row.try_get::<i64, _>(0)?) else {
                continue;
            };
            person.active = row.try_get::<String, _>(1)? == "active";
            for (i, name) in attribute_names().enumerate() {
                if let Some(value) = row.try_get::<Option<String>, _>(i + 2)?
                    && !value.is_empty()
                {
                    person.attributes.push((name, value));
                }
            }
        }
        let events: Vec<(i64, i64, i64, String, Option<String>, i64)> = sqlx::query_as(&format!(
            "SELECT e.user_id, e.id, e.id_low, t.name, e.description, e.occurred_at \
                 FROM events e JOIN event_types t ON t.id = e.event_type_id \
                 WHERE {}",
            backend.in_list("e.user_id", 1, ListOf::Integers)
        ))
        .bind(&list)
        .fetch_all(&mut *conn)
        .await?;
        let leaves = self.leaves();
        for (user, hi, lo, event_type, description, occurred_ms) in events {
            let fact = EventFact {
                id: EventId { hi, lo },
                event_type: event_type.into(),
                description: description.map(Arc::from),
                occurred_ms,
            };
            if let Some(person) = people.get_mut(&user)
                && leaves.iter().any(|leaf| leaf.matches(&fact))
            {
                person.events.push(fact);
            }
        }
        for person in people.values_mut() {
            prune(&leaves, &mut person.events, now);
            person.pruned_len = person.events.len();
        }
        let members: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT user_id, group_id FROM group_members WHERE {}",
            backend.in_list("user_id", 1, ListOf::Integers)
        ))
        .bind(&list)
        .fetch_all(&mut *conn)
        .await?;
        for (user, group) in members {
            if let Some(person) = people.get_mut(&user) {
                person.groups.insert(group);
            }
        }
        let dues: Vec<(i64, i64, i64)> = sqlx::query_as(&format!(
            "SELECT user_id, group_id, due_at FROM group_schedule WHERE {}",
            backend.in_list("user_id", 1, ListOf::Integers)
        ))
        .bind(&list)
        .fetch_all(&mut *conn)
        .await?;
        for (user, group, due) in dues {
            if let Some(person) = people.get_mut(&user) {
                person.dues.insert(group, due);
            }
        }
        self.people.extend(people);
        Ok(())
    }

    /// Adds a newly stored event to a cached person (the caller loaded them first);
    /// `rules` are those its type can affect (from [`AccountRules::event_type`]).
    pub fn add_event(&mut self, user: i64, fact: EventFact, rules: &[usize], now: i64) {
        let relevant = rules
            .iter()
            .any(|i| self.rules[*i].leaves.iter().any(|leaf| leaf.matches(&fact)));
        if !relevant {
            return;
        }
        let needs_prune = match self.people.get_mut(&user) {
            Some(person) => {
                // Lists are loaded at their exact size: growing one by doubling on its
                // next event would, across everyone, double the cache. An eighth more
                // (at least 4) keeps the copying amortized and the slack small.
                let events = &mut person.events;
                if events.len() == events.capacity() {
                    events.reserve_exact((events.len() / 8).max(4));
                }
                events.push(fact);
                events.len() > 2 * person.pruned_len + 8
            }
            None => false,
        };
        if needs_prune {
            let leaves: Vec<&EventLeaf> = self.rules.iter().flat_map(|r| &r.leaves).collect();
            if let Some(person) = self.people.get_mut(&user) {
                prune(&leaves, &mut person.events, now);
                person.pruned_len = person.events.len();
            }
        }
    }

    /// Re-evaluates `rules` (indices) for a cached person at `now`, recording changes at
    /// `at`, then every rule that names a group whose membership changed.
    pub fn evaluate(
        &mut self,
        account: i64,
        user: i64,
        rules: impl IntoIterator<Item = usize>,
        when: When,
        out: &mut Outcome,
    ) {
        let When { now, at, schedule } = when;
        let Some(person) = self.people.get_mut(&user) else {
            return;
        };
        let mut pending: BTreeSet<usize> = rules.into_iter().collect();
        while let Some(index) = pending.pop_first() {
            let rule = &self.rules[index];
            let holds = person.active && rule.criteria.evaluate(person, now);
            let member = person.groups.contains(&rule.group);
            if holds != member {
                let reason = if holds {
                    serde_json::to_string(&rule.criteria.explain(person, now))
                } else {
                    serde_json::to_string(&leave_reason(person.active))
                }
                .unwrap_or_default();
                // A fired entry may be earlier than the flip itself (it only ever moves
                // earlier), and the executor may run late: find when it really happened.
                let at = if at < now {
                    last_flip(&rule.criteria, person, member, at, now)
                } else {
                    at
                };
                out.changes.push(Change {
                    account,
                    group: rule.group,
                    user,
                    joined: holds,
                    at,
                    version: rule.version,
                    reason,
                });
                if holds {
                    person.groups.insert(rule.group);
                } else {
                    person.groups.remove(&rule.group);
                }
                pending.extend(dependents(&self.rules, rule.group));
            }
            let next = if person.active {
                rule.criteria.next_change(person, now)
            } else {
                None
            };
            let current = person.dues.get(&rule.group).copied();
            let write = match (schedule, next, current) {
                (Schedule::Earlier, Some(t), Some(c)) => t < c,
                (Schedule::Earlier, Some(_), None) => true,
                (Schedule::Earlier, None, _) => false,
                (Schedule::Exact, n, c) => n != c,
            };
            if write {
                out.dues.push((account, rule.group, user, next));
                match next {
                    Some(t) => person.dues.insert(rule.group, t),
                    None => person.dues.remove(&rule.group),
                };
            }
        }
    }

    /// After a hand-made membership change of `group`: the rules naming it.
    pub fn group_changed(&mut self, user: i64, group: i64, joined: bool) -> Vec<usize> {
        if let Some(person) = self.people.get_mut(&user) {
            if joined {
                person.groups.insert(group);
            } else {
                person.groups.remove(&group);
            }
        }
        dependents(&self.rules, group).collect()
    }

    /// Rules whose criteria name `group`.
    pub fn dependents(&self, group: i64) -> impl Iterator<Item = usize> + '_ {
        dependents(&self.rules, group)
    }

    /// Takes people loaded elsewhere (a backfill's population) as the cache.
    pub fn adopt(&mut self, people: HashMap<i64, Person>) {
        self.people = people;
    }

    /// The cached people, for [`AccountRules::rebuilt`].
    pub fn into_people(self) -> HashMap<i64, Person> {
        self.people
    }

    /// The account's engine state after smart group `group` was created, edited or
    /// restored, built beside the old one instead of reloading everyone (a reload reads
    /// every event of the account while ingest waits): `rules` are the account's active
    /// smart groups now, `fresh` everyone the group's backfill read, with the facts its
    /// criteria need and their membership as the backfill left it.
    ///
    /// Cached people take from `fresh` what the group needs; a cached person the backfill
    /// did not read is dropped and loaded on next use. With no earlier rules the backfill's
    /// people are the whole cache. Anyone not cached is loaded alone on first use, never
    /// all at once: a bulk load would hold every event behind it.
    pub async fn rebuilt(
        old: Option<AccountRules>,
        rules: Vec<Rule>,
        group: i64,
        mut fresh: HashMap<i64, Person>,
    ) -> AccountRules {
        let mut next = AccountRules::new(rules);
        match old {
            Some(old) if !old.rules.is_empty() => {
                next.descriptions = old.descriptions;
                next.people = HashMap::with_capacity(old.people.len());
                for (i, (user, mut person)) in old.people.into_iter().enumerate() {
                    if let Some(read) = fresh.remove(&user) {
                        person.absorb(read, group);
                        next.people.insert(user, person);
                    }
                    cooperate(i).await;
                }
            }
            // The group is the account's only one: the backfill's people are exactly
            // what its criteria need.
            _ if next.rules.len() == 1 => next.people = fresh,
            _ => {}
        }
        next.preloaded = true;
        next
    }

    /// The account's engine state without smart group `group` (archived).
    pub fn without(self, group: i64) -> AccountRules {
        let rules = self
            .rules
            .into_iter()
            .filter(|r| r.group != group)
            .collect();
        let mut next = AccountRules::new(rules);
        next.people = self.people;
        next.descriptions = self.descriptions;
        next.preloaded = self.preloaded;
        next
    }

    pub fn people_ids(&self) -> Vec<i64> {
        self.people.keys().copied().collect()
    }

    pub fn rule_index(&self, group: i64) -> Option<usize> {
        self.rules.iter().position(|r| r.group == group)
    }
}

/// Lets other tasks run every so many items of a long loop: a group change walks every
/// person of the account (a second or more at 100,000 people), and a task that does not
/// yield holds its worker thread, with the requests queued behind it, that long.
pub(crate) async fn cooperate(i: usize) {
    if i % 1024 == 1023 {
        tokio::task::yield_now().await;
    }
}

/// The instant in `[from, now]` at which the answer last changed, walking the instants
/// at which it may change from `from` on. Up to `from` the answer was `before`: `from`
/// is a schedule entry's instant, never later than the first possible change.
fn last_flip(criteria: &Criteria, person: &Person, before: bool, from: i64, now: i64) -> i64 {
    let mut answer = before;
    let mut flip = now;
    let mut t = from;
    // Bounded: each step moves to a later instant at which some event enters or leaves.
    for _ in 0..100_000 {
        let holds = person.active && criteria.evaluate(person, t);
        if holds != answer {
            flip = t;
            answer = holds;
        }
        match criteria.next_change(person, t) {
            Some(next) if next <= now => t = next,
            _ => break,
        }
    }
    flip
}

fn leave_reason(active: bool) -> serde_json::Value {
    if active {
        json!([{"kind": "criteria_no_longer_hold"}])
    } else {
        json!([{"kind": "archived"}])
    }
}

/// Rules whose criteria name `group`.
fn dependents(rules: &[Rule], group: i64) -> impl Iterator<Item = usize> + '_ {
    rules
        .iter()
        .enumerate()
        .filter(move |(_, r)| r.groups.contains(&group))
        .map(|(i, _)| i)
}

/// Orders rules so a group comes after the smart groups its criteria name (creation and
/// edits refuse cycles; should one exist anyway, the rest keep their order).
fn order_by_dependency(rules: &mut Vec<Rule>) {
    let mut ordered: Vec<Rule> = Vec::with_capacity(rules.len());
    let mut rest: Vec<Rule> = std::mem::take(rules);
    rest.sort_by_key(|r| r.group);
    while !rest.is_empty() {
        let pending: HashSet<i64> = rest.iter().map(|r| r.group).collect();
        let (ready, blocked): (Vec<Rule>, Vec<Rule>) = rest.into_iter().partition(|r| {
            r.groups
                .iter()
                .all(|g| !pending.contains(g) || *g == r.group)
        });
        if ready.is_empty() {
            ordered.extend(blocked);
            break;
        }
        ordered.extend(ready);
        rest = blocked;
    }
    *rules = ordered;
}

/// Whether adding a rule for `group` naming `names` would make a cycle among `rules`.
pub(crate) fn creates_cycle(rules: &[(i64, Vec<i64>)], group: i64, names: &[i64]) -> bool {
    let edges: HashMap<i64, &Vec<i64>> = rules.iter().map(|(g, n)| (*g, n)).collect();
    let mut stack: Vec<i64> = names.to_vec();
    let mut seen = HashSet::new();
    while let Some(next) = stack.pop() {
        if next == group {
            return true;
        }
        if seen.insert(next)
            && let Some(names) = edges.get(&next)
        {
            stack.extend(names.iter().copied());
        }
    }
    false
}

/// The attribute columns criteria can name, in `TEXT_FIELDS`/`DATE_FIELDS` order.
pub(crate) fn attribute_names() -> impl Iterator<Item = &'static str> {
    std::iter::once("email")
        .chain(TEXT_FIELDS.iter().copied())
        .chain(DATE_FIELDS.iter().copied())
}

fn attribute_columns() -> String {
    attribute_names().collect::<Vec<_>>().join(", ")
}

/// The fact a bulk-read event row makes, if it can match one of its type's `leaves`
/// (the description sharing its one copy in `descriptions`).
pub(crate) fn fact_of(
    row: &EventRow<'_>,
    event_type: &SharedText,
    leaves: &[&EventLeaf],
    descriptions: &mut HashMap<Box<str>, SharedText>,
) -> Option<EventFact> {
    let description = row.description.as_deref();
    if !leaves.iter().any(|l| l.matches_description(description)) {
        return None;
    }
    Some(EventFact {
        id: EventId {
            hi: row.id,
            lo: row.id_low,
        },
        event_type: event_type.clone(),
        description: intern(descriptions, description),
        occurred_ms: row.occurred_ms,
    })
}

/// The one shared copy of `text` in `set`.
pub(crate) fn intern(
    set: &mut HashMap<Box<str>, SharedText>,
    text: Option<&str>,
) -> Option<SharedText> {
    let text = text?;
    if let Some(known) = set.get(text) {
        return Some(known.clone());
    }
    let one = shared(text);
    set.insert(text.into(), one.clone());
    Some(one)
}

/// A person's status and attributes, without events or memberships.
pub(crate) async fn load_attributes(
    conn: &mut AnyConnection,
    account: i64,
    user: i64,
) -> Result<Person> {
    use sqlx::Row;
    let row = sqlx::query(&format!(
        "SELECT status, {} FROM users WHERE account_id = $1 AND id = $2",
        attribute_columns()
    ))
    .bind(account)
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?;
    let mut person = Person::default();
    if let Some(row) = row {
        person.active = row.try_get::<String, _>(0)? == "active";
        for (i, name) in attribute_names().enumerate() {
            if let Some(value) = row.try_get::<Option<String>, _>(i + 1)?
                && !value.is_empty()
            {
                person.attributes.push((name, value));
            }
        }
    }
    Ok(person)
}

/// The engine shared by every path that changes facts.
#[derive(Debug, Default)]
pub struct Engine {
    accounts: HashMap<i64, AccountRules>,
    /// Per account, the committed versions the cache was last checked against (on
    /// PostgreSQL, where other nodes change facts too; see [`Engine::sync`]).
    seen: HashMap<i64, Versions>,
}

/// How many changes of an account's facts and of its rules (smart groups, event types)
/// have committed: `accounts.fact_version` and `accounts.rules_version`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Versions {
    pub facts: i64,
    pub rules: i64,
}

/// A row of [`Engine::versions_sql`]: account, fact and rules versions, and a logged
/// change since the last check (its version and whom it touched), if any.
pub(crate) type VersionRow = (i64, i64, i64, Option<i64>, Option<String>);

/// What [`Engine::check_versions`] found another node changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Synced {
    /// The committed versions, which the cache now reflects.
    pub versions: Versions,
    /// Smart groups or event types changed: the account's rules were dropped (a
    /// writer's cache of event type names is stale too).
    pub rules_changed: bool,
}

impl Engine {
    /// The account's rules, loaded on first use.
    pub(crate) async fn account(
        &mut self,
        conn: &mut AnyConnection,
        account: i64,
    ) -> Result<&mut AccountRules> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.accounts.entry(account) {
            slot.insert(AccountRules::new(load_rules(conn, account).await?));
        }
        Ok(self.accounts.get_mut(&account).expect("inserted above"))
    }

    /// An account's rules, if loaded already.
    pub(crate) fn loaded(&mut self, account: i64) -> Option<&mut AccountRules> {
        self.accounts.get_mut(&account)
    }

    /// Takes an account's state out, to build the next one beside it (see
    /// [`AccountRules::rebuilt`]); put back with [`Engine::put`] once committed.
    pub(crate) fn take(&mut self, account: i64) -> Option<AccountRules> {
        self.accounts.remove(&account)
    }

    pub(crate) fn put(&mut self, account: i64, rules: AccountRules) {
        self.accounts.insert(account, rules);
    }

    /// The read of the versions of `accounts` (PostgreSQL), with the log of the changes
    /// made since this node last checked each: one statement of literals, so it can go in
    /// the round trip that takes the accounts' locks (as the statement after them, so it
    /// sees every change committed before they were granted). Rows for
    /// [`Engine::check_versions`].
    pub(crate) fn versions_sql(&self, accounts: &[i64]) -> String {
        let mut since = String::new();
        let mut list = String::new();
        for account in accounts {
            let seen = self.seen.get(account).map_or(i64::MAX, |v| v.facts);
            let _ = write!(since, " WHEN {account} THEN {seen}");
            if !list.is_empty() {
                list.push(',');
            }
            let _ = write!(list, "{account}");
        }
        format!(
            "SELECT a.id, a.fact_version, a.rules_version, l.version, \
             array_to_string(l.users, ',') FROM accounts a LEFT JOIN fact_log l \
             ON l.account_id = a.id AND l.version > (CASE a.id{since} END) \
             WHERE a.id IN ({list}) ORDER BY a.id, l.version"
        )
    }

    /// Checks what the cache holds of `account` against what is committed (`rows`, the
    /// account's rows of [`Engine::versions_sql`], read under the account's lock). People
    /// another node changed since the last check are forgotten (the log says whom each
    /// change touched; should the log no longer reach back that far, everyone is);
    /// changed rules drop the account's state. Either is loaded again on use.
    pub(crate) fn check_versions(&mut self, account: i64, rows: &[VersionRow]) -> Synced {
        let seen = self.seen.get(&account).copied();
        let Some(&(_, facts, rules, _, _)) = rows.first() else {
            return Synced::default();
        };
        let versions = Versions { facts, rules };
        let mut rules_changed = false;
        match seen {
            // Nothing cached was checked yet: trust none of it.
            None => {
                self.accounts.remove(&account);
            }
            Some(seen) if seen.rules != rules => {
                self.accounts.remove(&account);
                rules_changed = true;
            }
            Some(seen) if seen.facts != facts => {
                let logged: Vec<i64> = rows.iter().filter_map(|r| r.3).collect();
                let whole = logged.len() as i64 == facts - seen.facts
                    && logged.first() == Some(&(seen.facts + 1));
                if let Some(state) = self.accounts.get_mut(&account) {
                    if whole {
                        let users = rows.iter().filter_map(|r| r.4.as_deref());
                        for user in users.flat_map(|list| list.split(',')) {
                            if let Ok(user) = user.parse() {
                                state.forget(user);
                            }
                        }
                    } else {
                        state.forget_everyone();
                    }
                }
            }
            Some(_) => {}
        }
        self.seen.insert(account, versions);
        Synced {
            versions,
            rules_changed,
        }
    }

    /// The versions a committed change left `account` at (the cache reflects them).
    pub(crate) fn saw(&mut self, account: i64, versions: Versions) {
        self.seen.insert(account, versions);
    }

    /// The versions the cache of `account` was last checked against.
    pub(crate) fn seen(&self, account: i64) -> Option<Versions> {
        self.seen.get(&account).copied()
    }

    pub(crate) fn forget(&mut self, account: i64, user: i64) {
        if let Some(rules) = self.accounts.get_mut(&account) {
            rules.forget(user);
        }
    }

    /// How much the cache holds, over every account.
    pub fn size(&self) -> CacheSize {
        let people = self.accounts.values().flat_map(|a| a.people.values());
        people.fold(CacheSize::default(), |size, person| CacheSize {
            people: size.people + 1,
            facts: size.facts + person.events.len(),
        })
    }
}

/// The people the engine holds in memory and the event facts it keeps of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheSize {
    pub people: usize,
    pub facts: usize,
}

pub(crate) async fn load_rules(conn: &mut AnyConnection, account: i64) -> Result<Vec<Rule>> {
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT g.id, g.version, v.criteria FROM groups g \
         JOIN group_versions v ON v.group_id = g.id AND v.version = g.version \
         WHERE g.account_id = $1 AND g.group_type = 'smart_group' AND g.status = 'active'",
    )
    .bind(account)
    .fetch_all(&mut *conn)
    .await?;
    let mut rules = Vec::with_capacity(rows.len());
    for (group, version, text) in rows {
        let parsed = serde_json::from_str(&text)
            .ok()
            .and_then(|value| Criteria::parse(&value).ok());
        match parsed {
            Some(criteria) => rules.push(Rule::new(group, version, criteria)),
            // Stored criteria were valid when saved; a later, stricter parser must not
            // stop every other group from working.
            None => tracing::error!(group, "stored criteria no longer parse; group skipped"),
        }
    }
    Ok(rules)
}
