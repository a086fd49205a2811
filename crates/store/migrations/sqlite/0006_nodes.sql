-- The tables and columns several nodes on PostgreSQL need, kept here too so both engines
-- have one schema (`coachloop db copy` compares them). SQLite serves one node: its
-- writer lock orders every change, so the versions stay 0 and `fact_log` is not kept.
ALTER TABLE accounts ADD COLUMN fact_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN rules_version INTEGER NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD COLUMN claimed_by TEXT;

CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    version       TEXT NOT NULL,
    hostname      TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    stopped_at    INTEGER
);

CREATE TABLE leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT,
    until         INTEGER NOT NULL DEFAULT 0,
    done_through  INTEGER NOT NULL DEFAULT 0
);
