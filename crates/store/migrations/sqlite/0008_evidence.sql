-- Evidence snapshots: every compliance evidence export, kept append-only. Each holds the
-- document as exported (`body`), its SHA-256, and a chain: `chain_sha256` is the SHA-256
-- of the previous snapshot's `chain_sha256` (kept as `previous_sha256`, NULL for an
-- account's first), this snapshot's record and `sha256`, so changing any snapshot, or
-- removing or reordering one, breaks every link after it (`coachloop compliance verify`).
CREATE TABLE evidence_snapshots (
    id               INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts (id),
    framework        TEXT NOT NULL,
    -- NULL: every control of the framework.
    control          TEXT,
    -- csv, json, oscal.
    format           TEXT NOT NULL,
    -- The effective period, YYYY-MM-DD, both days included.
    period_from      TEXT NOT NULL,
    period_to        TEXT NOT NULL,
    collected_at     INTEGER NOT NULL,
    body             TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    previous_sha256  TEXT,
    chain_sha256     TEXT NOT NULL
);
CREATE INDEX evidence_snapshots_account ON evidence_snapshots (account_id, id);
