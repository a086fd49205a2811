-- Accounts, tokens, people and the User Event API.
-- Instants are integer epoch milliseconds; dates are YYYY-MM-DD text; JSON is text.

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts (id),
    name          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL UNIQUE,
    scopes        TEXT NOT NULL,
    expires_at    INTEGER,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
-- A label names one live token per account; a revoked label may be reused.
CREATE UNIQUE INDEX tokens_live_name ON tokens (account_id, name) WHERE revoked_at IS NULL;

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY,
    account_id           INTEGER NOT NULL REFERENCES accounts (id),
    email                TEXT NOT NULL,
    email_norm           TEXT NOT NULL,
    employee_number      TEXT,
    first_name           TEXT,
    last_name            TEXT,
    job_title            TEXT,
    phone_number         TEXT,
    extension            TEXT,
    mobile_phone_number  TEXT,
    location             TEXT,
    division             TEXT,
    department           TEXT,
    organization         TEXT,
    manager_name         TEXT,
    manager_email        TEXT,
    language             TEXT,
    comment              TEXT,
    employee_start_date  TEXT,
    custom_field_1       TEXT,
    custom_field_2       TEXT,
    custom_field_3       TEXT,
    custom_field_4       TEXT,
    custom_date_1        TEXT,
    custom_date_2        TEXT,
    provisioning_managed INTEGER NOT NULL DEFAULT 0,
    provisioning_guid    TEXT,
    status               TEXT NOT NULL DEFAULT 'active',
    joined_on            INTEGER NOT NULL,
    last_sign_in         INTEGER,
    archived_at          INTEGER,
    updated_at           INTEGER NOT NULL,
    UNIQUE (account_id, email_norm)
);
CREATE INDEX users_account_status ON users (account_id, status, id);

-- Every name a person is known by: the email (is_alias = 0) and the aliases.
CREATE TABLE user_identities (
    account_id  INTEGER NOT NULL,
    identity    TEXT NOT NULL,
    display     TEXT NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_alias    INTEGER NOT NULL,
    PRIMARY KEY (account_id, identity)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

CREATE TABLE event_types (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    name         TEXT NOT NULL,
    description  TEXT,
    built_in     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

-- The hot table. Its ids (account, type, user) are resolved by the writer inside the
-- transaction that inserts the row, so it declares no foreign keys: three parent
-- look-ups per row would cost more than the whole insert. The public id is a UUIDv7:
-- `id` holds its upper 64 bits (time, version, counter; increasing), `id_low` the rest.
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    id_low           INTEGER NOT NULL,
    account_id       INTEGER NOT NULL,
    event_type_id    INTEGER NOT NULL,
    user_id          INTEGER,
    target_user      TEXT NOT NULL,
    -- The match key of target_user, kept while the event is unmatched (NULL once a
    -- person was known when it arrived).
    target_norm      TEXT,
    external_id      TEXT,
    source           TEXT,
    description      TEXT,
    occurred_at      INTEGER NOT NULL,
    risk_level       INTEGER,
    risk_decay_mode  INTEGER,
    risk_expire_date INTEGER,
    metadata         TEXT,
    created_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_external_id ON events (account_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX events_account_time ON events (account_id, occurred_at);
CREATE INDEX events_user_time ON events (user_id, occurred_at);
CREATE INDEX events_type_time ON events (event_type_id, occurred_at);
-- Only unmatched events: found again when a user or alias appears.
CREATE INDEX events_unmatched ON events (account_id, target_norm) WHERE user_id IS NULL;

-- One row per accepted POST /events: what GET /statuses reports.
CREATE TABLE event_requests (
    id            INTEGER PRIMARY KEY,
    uuid          TEXT NOT NULL UNIQUE,
    account_id    INTEGER NOT NULL REFERENCES accounts (id),
    token_name    TEXT NOT NULL,
    integration   TEXT,
    -- The ids of the events the request stored or found, in submission order:
    -- 16 bytes each (the UUID's bytes), concatenated.
    events        BLOB NOT NULL,
    failures      TEXT NOT NULL,
    processed_at  INTEGER NOT NULL
);
CREATE INDEX event_requests_account ON event_requests (account_id, id);
