-- Compliance: frameworks an account enabled, what it requires of people (one row per kind
-- of requirement, with the counts of its people by status), each person's status against
-- each requirement (kept current by the transactions that change its inputs, and at the
-- instant `changes_at` by the compliance executor), exceptions, and each control's status
-- history.
CREATE TABLE compliance_frameworks (
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    framework    TEXT NOT NULL,
    enabled_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, framework)
) WITHOUT ROWID;

CREATE TABLE compliance_requirements (
    id               INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts (id),
    -- awareness, phishing, policy, event_triggered, role_based.
    kind             TEXT NOT NULL,
    title            TEXT NOT NULL,
    -- JSON arrays of ids: what counts (both empty: the kind's default).
    content          TEXT NOT NULL,
    campaigns        TEXT NOT NULL,
    -- JSON: {"kind":"rolling","months":12}, {"kind":"fixed","month":1,"day":31}, {"kind":"once"}.
    recurrence       TEXT NOT NULL,
    new_hire_days    INTEGER NOT NULL,
    -- NULL: every active person; else the members of this group.
    scope_group      INTEGER,
    tolerance_days   INTEGER NOT NULL,
    due_soon_days    INTEGER NOT NULL,
    completion_days  INTEGER NOT NULL,
    -- pass, at_risk, fail; and the people behind it.
    status           TEXT NOT NULL,
    compliant        INTEGER NOT NULL DEFAULT 0,
    at_risk          INTEGER NOT NULL DEFAULT 0,
    non_compliant    INTEGER NOT NULL DEFAULT 0,
    excepted         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX compliance_requirements_kind ON compliance_requirements (account_id, kind);

CREATE TABLE compliance_people (
    requirement_id   INTEGER NOT NULL REFERENCES compliance_requirements (id),
    user_id          INTEGER NOT NULL REFERENCES users (id),
    account_id       INTEGER NOT NULL,
    -- compliant, at_risk, non_compliant, excepted.
    status           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    deadline         INTEGER,
    last_completed   INTEGER,
    -- The next instant the status changes by itself.
    changes_at       INTEGER,
    -- Since when the person has had this status.
    since            INTEGER NOT NULL,
    PRIMARY KEY (requirement_id, user_id)
) WITHOUT ROWID;
CREATE INDEX compliance_people_status ON compliance_people (requirement_id, status, user_id);
CREATE INDEX compliance_people_user ON compliance_people (user_id);
CREATE INDEX compliance_people_changes ON compliance_people (changes_at) WHERE changes_at IS NOT NULL;

CREATE TABLE compliance_exceptions (
    id               INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts (id),
    requirement_id   INTEGER NOT NULL REFERENCES compliance_requirements (id),
    user_id          INTEGER NOT NULL REFERENCES users (id),
    reason           TEXT NOT NULL,
    granted_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    revoked_at       INTEGER
);
CREATE INDEX compliance_exceptions_person ON compliance_exceptions (requirement_id, user_id);
CREATE INDEX compliance_exceptions_account ON compliance_exceptions (account_id, id);

CREATE TABLE compliance_history (
    id               INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts (id),
    framework        TEXT NOT NULL,
    control          TEXT NOT NULL,
    -- pass, at_risk, fail.
    status           TEXT NOT NULL,
    compliant        INTEGER NOT NULL,
    at_risk          INTEGER NOT NULL,
    non_compliant    INTEGER NOT NULL,
    excepted         INTEGER NOT NULL,
    at               INTEGER NOT NULL
);
CREATE INDEX compliance_history_control ON compliance_history (account_id, framework, control, id);
