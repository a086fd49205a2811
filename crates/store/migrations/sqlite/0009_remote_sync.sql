-- Remote sync: Reporting APIs (a KnowBe4 account, or another coachloop) whose people and
-- enrolments compliance evaluates beside the account's own. A connection holds its key
-- sealed (encrypted with the installation's secret key, never shown again), which remote
-- campaigns count for which requirement, when it syncs next, and the sync under way: the
-- node holding it (a lease), and the stage and page to resume from. Each page is applied
-- in one transaction with the progress that follows it.
CREATE TABLE sync_connections (
    id                INTEGER PRIMARY KEY,
    account_id        INTEGER NOT NULL REFERENCES accounts (id),
    name              TEXT NOT NULL,
    -- us, eu, ca, uk, de; NULL: `base_url` was given.
    region            TEXT,
    base_url          TEXT NOT NULL,
    key_sealed        BLOB NOT NULL,
    key_hint          TEXT NOT NULL,
    -- JSON: {"awareness": [remote campaign ids], ...}; {}: everything counts for awareness.
    requirements      TEXT NOT NULL,
    interval_minutes  INTEGER NOT NULL,
    next_sync_at      INTEGER NOT NULL,
    lease_holder      TEXT,
    lease_until       INTEGER,
    -- The sync under way (or interrupted): when it started, where it resumes.
    run_started_at    INTEGER,
    stage             TEXT,
    next_page         INTEGER,
    run_skipped       INTEGER NOT NULL DEFAULT 0,
    last_success_at   INTEGER,
    last_error        TEXT,
    last_error_at     INTEGER,
    failures          INTEGER NOT NULL DEFAULT 0,
    -- As of the last success.
    people            INTEGER NOT NULL DEFAULT 0,
    campaigns         INTEGER NOT NULL DEFAULT 0,
    enrollments       INTEGER NOT NULL DEFAULT 0,
    skipped           INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (account_id, name)
);
CREATE INDEX sync_connections_due ON sync_connections (next_sync_at);

-- Remote people and who they are here: a person of the account with the same email, or
-- one the sync added (`created`, marked with its source).
CREATE TABLE sync_people (
    connection_id  INTEGER NOT NULL REFERENCES sync_connections (id),
    remote_id      INTEGER NOT NULL,
    account_id     INTEGER NOT NULL,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    created        INTEGER NOT NULL,
    synced_at      INTEGER NOT NULL,
    PRIMARY KEY (connection_id, remote_id)
) WITHOUT ROWID;
CREATE INDEX sync_people_user ON sync_people (user_id);

CREATE TABLE sync_campaigns (
    connection_id      INTEGER NOT NULL REFERENCES sync_connections (id),
    remote_id          INTEGER NOT NULL,
    name               TEXT NOT NULL,
    status             TEXT NOT NULL,
    end_date           INTEGER,
    relative_duration  TEXT,
    synced_at          INTEGER NOT NULL,
    PRIMARY KEY (connection_id, remote_id)
) WITHOUT ROWID;

CREATE TABLE sync_enrollments (
    connection_id  INTEGER NOT NULL REFERENCES sync_connections (id),
    remote_id      INTEGER NOT NULL,
    account_id     INTEGER NOT NULL,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    campaign_id    INTEGER,
    campaign_name  TEXT,
    module_name    TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    status         TEXT NOT NULL,
    enrolled_at    INTEGER NOT NULL,
    due_at         INTEGER,
    completed_at   INTEGER,
    synced_at      INTEGER NOT NULL,
    PRIMARY KEY (connection_id, remote_id)
) WITHOUT ROWID;
-- By person only: an account's whole set is read by a scan (a full evaluation), and an
-- index on the account would be chosen over this one for a list of people.
CREATE INDEX sync_enrollments_user ON sync_enrollments (user_id);
