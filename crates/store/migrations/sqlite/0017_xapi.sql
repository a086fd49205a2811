-- xAPI: the statements an LMS sends, kept append-only (voiding marks one voided), with
-- what each did in coachloop; the keys the `agent` and `activity` filters match; the
-- activities an admin mapped to content; and LRS credentials (a token with a key, for
-- HTTP Basic auth).
ALTER TABLE tokens ADD COLUMN lrs_key TEXT;
CREATE UNIQUE INDEX tokens_lrs_key ON tokens (lrs_key) WHERE lrs_key IS NOT NULL;

CREATE TABLE xapi_statements (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts (id),
    statement_id   TEXT NOT NULL,
    -- The statement as stored and returned (`exact`), and a digest of it as sent, which
    -- tells a resend (the same) from a conflict (the same id, other content).
    body           TEXT NOT NULL,
    digest         TEXT NOT NULL,
    stored_at      INTEGER NOT NULL,
    verb           TEXT NOT NULL,
    registration   TEXT,
    voided         INTEGER NOT NULL DEFAULT 0,
    -- A voiding statement: the id of the statement it voids.
    voids          TEXT,
    -- A statement about another (its object a StatementRef): that one's id. The filters
    -- of a list return it when they match the statement it refers to.
    refers_to      TEXT,
    -- What it did: `applied` (moved an enrolment), `kept` (a verb that moves nothing, or
    -- nothing to move), `unmapped` (its person or activity matches nothing), `refused`
    -- (the enrolment's rules refused it); `note` says why in words.
    standing       TEXT NOT NULL,
    note           TEXT,
    -- The actor's email (a person is found by it), the actor's and an Agent object's
    -- identifier keys and the Activity object's id: what the `agent` and `activity`
    -- filters match (the `related_*` ones match `xapi_statement_refs` too).
    actor          TEXT,
    actor_key      TEXT,
    object_agent   TEXT,
    activity       TEXT,
    user_id        INTEGER,
    enrollment_id  INTEGER,
    -- It finished its enrolment (voiding it may take the completion back).
    finished       INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX xapi_statements_id ON xapi_statements (account_id, statement_id);
CREATE INDEX xapi_statements_account ON xapi_statements (account_id, id);
CREATE INDEX xapi_statements_verb ON xapi_statements (account_id, verb, id);
CREATE INDEX xapi_statements_registration ON xapi_statements (account_id, registration, id)
    WHERE registration IS NOT NULL;
CREATE INDEX xapi_statements_actor ON xapi_statements (account_id, actor_key, id);
CREATE INDEX xapi_statements_object_agent ON xapi_statements (account_id, object_agent, id)
    WHERE object_agent IS NOT NULL;
CREATE INDEX xapi_statements_activity ON xapi_statements (account_id, activity, id)
    WHERE activity IS NOT NULL;
CREATE INDEX xapi_statements_unmapped ON xapi_statements (account_id, activity, id)
    WHERE standing = 'unmapped';
CREATE INDEX xapi_statements_refers_to ON xapi_statements (account_id, refers_to)
    WHERE refers_to IS NOT NULL;
CREATE INDEX xapi_statements_finished ON xapi_statements (enrollment_id) WHERE finished;

CREATE TABLE xapi_statement_refs (
    account_id  INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    seq         INTEGER NOT NULL,  -- xapi_statements.id
    PRIMARY KEY (account_id, kind, key, seq)
) WITHOUT ROWID;

CREATE TABLE xapi_activities (
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    activity    TEXT NOT NULL,
    content_id  INTEGER NOT NULL REFERENCES content (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, activity)
);
