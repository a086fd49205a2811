-- Training: content (the built-in library, copied into every account, and admins' own),
-- campaigns over groups, enrolments with what caused them, and the scheduled steps of
-- campaigns and enrolments.

CREATE TABLE content (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts (id),
    -- module or policy.
    kind          TEXT NOT NULL,
    slug          TEXT NOT NULL,
    -- 1: from the library shipped in the binary (refreshed at start-up), 0: an admin's.
    builtin       INTEGER NOT NULL,
    title         TEXT NOT NULL,
    summary       TEXT NOT NULL,
    -- A module's reading time; a policy's minimum reading time before acknowledgement.
    minutes       INTEGER NOT NULL,
    pass_mark     INTEGER,
    -- JSON array of {question, choices, answer, explanation}.
    quiz          TEXT NOT NULL,
    version       TEXT,
    -- Markdown.
    body          TEXT NOT NULL,
    published_at  INTEGER NOT NULL,
    retired_at    INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX content_slug ON content (account_id, slug);

CREATE TABLE campaigns (
    id                  INTEGER PRIMARY KEY,
    account_id          INTEGER NOT NULL REFERENCES accounts (id),
    name                TEXT NOT NULL,
    -- Created, In Progress, Completed, Closed.
    status              TEXT NOT NULL,
    -- 1: targets every active person (the Reporting API's group 0).
    all_users           INTEGER NOT NULL,
    auto_enroll         INTEGER NOT NULL,
    allow_multiple      INTEGER NOT NULL,
    -- ISO-8601 duration: no new enrolment within it of finishing the same content.
    cooldown            TEXT,
    start_at            INTEGER NOT NULL,
    -- Exactly one of: a specific end (also every enrolment's due time) or a duration
    -- from each enrolment (ISO-8601).
    end_at              INTEGER,
    relative_duration   TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX campaigns_account ON campaigns (account_id, id);
CREATE INDEX campaigns_pending ON campaigns (start_at) WHERE status = 'Created';

CREATE TABLE campaign_content (
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    content_id   INTEGER NOT NULL REFERENCES content (id),
    position     INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, content_id)
) WITHOUT ROWID;

CREATE TABLE campaign_groups (
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id),
    group_id     INTEGER NOT NULL REFERENCES groups (id),
    PRIMARY KEY (campaign_id, group_id)
) WITHOUT ROWID;
CREATE INDEX campaign_groups_group ON campaign_groups (group_id, campaign_id);

CREATE TABLE enrollments (
    id                   INTEGER PRIMARY KEY,
    account_id           INTEGER NOT NULL,
    campaign_id          INTEGER NOT NULL REFERENCES campaigns (id),
    content_id           INTEGER NOT NULL REFERENCES content (id),
    user_id              INTEGER NOT NULL REFERENCES users (id),
    -- Not Started, In Progress, Passed, Completed, Past Due.
    status               TEXT NOT NULL,
    enrolled_at          INTEGER NOT NULL,
    due_at               INTEGER,
    started_at           INTEGER,
    completed_at         INTEGER,
    past_due_at          INTEGER,
    -- Seconds.
    time_spent           INTEGER NOT NULL DEFAULT 0,
    score                INTEGER,
    attempts             INTEGER NOT NULL DEFAULT 0,
    policy_acknowledged  INTEGER NOT NULL DEFAULT 0,
    -- JSON: what enrolled the person (a group join with its evidence, a campaign start,
    -- an admin).
    cause                TEXT NOT NULL
);
CREATE INDEX enrollments_account ON enrollments (account_id, id);
CREATE INDEX enrollments_campaign ON enrollments (campaign_id, id);
CREATE INDEX enrollments_person ON enrollments (user_id, campaign_id, content_id);
-- Open enrolments by due time, for the past-due executor.
CREATE INDEX enrollments_due ON enrollments (due_at)
    WHERE due_at IS NOT NULL AND status IN ('Not Started', 'In Progress');

-- Keys the server signs with (learners' magic links and sessions); made on first use.
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Outbound webhooks: each receives the kinds of fact it names, signed with its secret.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    -- JSON array of event names, e.g. ["enrollment.created"].
    events      TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);
CREATE INDEX webhooks_account ON webhooks (account_id, id);

-- The durable notice queue. A job is written in the transaction of the fact it tells,
-- keyed by that fact (`dedupe`), so the same fact is never queued twice.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL,
    -- email or webhook.
    kind        TEXT NOT NULL,
    dedupe      TEXT NOT NULL UNIQUE,
    -- JSON: what to send.
    payload     TEXT NOT NULL,
    run_at      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    -- pending, done, failed (gave up after the last retry), skipped (nothing to send).
    status      TEXT NOT NULL DEFAULT 'pending',
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    done_at     INTEGER
);
CREATE INDEX jobs_due ON jobs (kind, run_at) WHERE status = 'pending';
CREATE INDEX jobs_account ON jobs (account_id, id);

-- Every attempt to deliver a job.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs (id),
    account_id   INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    -- The HTTP status of a webhook or the SMTP reply code, when there was one.
    status_code  INTEGER,
    error        TEXT,
    took_ms      INTEGER NOT NULL
);
CREATE INDEX deliveries_job ON deliveries (job_id, id);

-- Smart groups read events by type and time (backfill, preview, the engine's load):
-- with the person and the low id half in the index (the row key is in every index),
-- those reads never touch the table unless a criterion tests descriptions.
DROP INDEX events_type_time;
CREATE INDEX events_type_time ON events (event_type_id, occurred_at, user_id, id_low);
