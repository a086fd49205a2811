-- Groups (manual, provisioned, smart), their members with a history row per change,
-- the versions of smart-group criteria, scheduled re-evaluations and risk-score history.

CREATE TABLE groups (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    name         TEXT NOT NULL,
    description  TEXT,
    -- console_group (manual), smart_group (criteria), adi_managed_group (provisioned).
    group_type   TEXT NOT NULL,
    provisioning_guid TEXT,
    -- The current criteria version of a smart group (0 for other groups).
    version      INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL DEFAULT 'active',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    archived_at  INTEGER
);
-- One live group per name in an account; an archived name may be reused.
CREATE UNIQUE INDEX groups_live_name ON groups (account_id, name) WHERE status = 'active';
CREATE INDEX groups_account ON groups (account_id, status, id);

-- Every version of a smart group's criteria, kept for the record.
CREATE TABLE group_versions (
    group_id    INTEGER NOT NULL REFERENCES groups (id),
    version     INTEGER NOT NULL,
    criteria    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (group_id, version)
);

CREATE TABLE group_members (
    group_id    INTEGER NOT NULL REFERENCES groups (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    account_id  INTEGER NOT NULL,
    joined_at   INTEGER NOT NULL,
    -- The criteria version that made a smart-group member join (0 when added by hand).
    version     INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_members_user ON group_members (user_id, group_id);

-- One row per join or leave. `at` is the instant the membership changed (for a leave by
-- time, the exact instant the criteria stopped holding); `recorded_at` when it was written.
CREATE TABLE group_history (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL,
    group_id     INTEGER NOT NULL REFERENCES groups (id),
    user_id      INTEGER NOT NULL REFERENCES users (id),
    change       TEXT NOT NULL,
    at           INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    -- JSON: the evidence that made the criteria hold (joins), or what changed (leaves).
    reason       TEXT NOT NULL,
    recorded_at  INTEGER NOT NULL
);
CREATE INDEX group_history_member ON group_history (group_id, user_id, id);

-- When a smart group's answer for a person may next change by time alone. The engine
-- only ever moves an entry earlier outside the executor, so an entry is never late.
CREATE TABLE group_schedule (
    group_id    INTEGER NOT NULL REFERENCES groups (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    account_id  INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_schedule_due ON group_schedule (due_at);
CREATE INDEX group_schedule_user ON group_schedule (user_id, group_id);

-- Events that still weigh on a risk score, found without a scan of all events.
CREATE INDEX events_risk ON events (account_id, risk_expire_date) WHERE risk_level IS NOT NULL;

-- A daily risk score per person (user_id) and per account (user_id 0).
CREATE TABLE risk_scores (
    account_id  INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    day         TEXT NOT NULL,
    score       REAL NOT NULL,
    PRIMARY KEY (account_id, user_id, day)
) WITHOUT ROWID;
