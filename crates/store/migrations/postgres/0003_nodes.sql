-- Several nodes on one database.
--
-- Changes of facts are ordered per account by a transaction-scoped advisory lock; each
-- account counts its committed changes of facts (`fact_version`) and of rules or event
-- types (`rules_version`), and `fact_log` says which people each change touched. A node
-- checks its cache against these under the lock and forgets what another node changed.
ALTER TABLE accounts ADD COLUMN fact_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN rules_version BIGINT NOT NULL DEFAULT 0;
-- An account whose rules version is 0 never had a smart group: its events are stored
-- under a shared lock, unlogged. One with smart groups starts at 1.
UPDATE accounts SET rules_version = 1
WHERE EXISTS (SELECT 1 FROM groups g WHERE g.account_id = accounts.id AND g.group_type = 'smart_group');

CREATE TABLE fact_log (
    account_id  BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    users       BIGINT[] NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (account_id, version)
);

-- The node sending a notice job; while it sends, the job's run_at is its lease's end.
ALTER TABLE jobs ADD COLUMN claimed_by TEXT;

-- The nodes of the installation and their heartbeats.
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    version       TEXT NOT NULL,
    hostname      TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    stopped_at    BIGINT
);

-- Timed work done by one node at a time: held by `holder` until `until`; `done_through`
-- is the end of the last period done (the daily risk record's hour).
CREATE TABLE leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT,
    until         BIGINT NOT NULL DEFAULT 0,
    done_through  BIGINT NOT NULL DEFAULT 0
);
