-- The Reporting API: per-token rate limits (off unless set), the account's console
-- administrators (the Reporting API's `admins`), and indexes its filtered lists walk in id
-- order.

ALTER TABLE tokens ADD COLUMN rate_per_second INTEGER;
ALTER TABLE tokens ADD COLUMN rate_per_day INTEGER;

CREATE TABLE admins (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    email       TEXT NOT NULL,
    email_norm  TEXT NOT NULL,
    first_name  TEXT,
    last_name   TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (account_id, email_norm)
);

-- Enrolments of one person, or of one piece of content, in id order.
CREATE INDEX enrollments_user_id ON enrollments (user_id, id);
CREATE INDEX enrollments_content ON enrollments (content_id, id);

-- A daily risk score per group: the mean of its members' scores that day.
CREATE TABLE group_risk_scores (
    account_id  INTEGER NOT NULL,
    group_id    INTEGER NOT NULL,
    day         TEXT NOT NULL,
    score       REAL NOT NULL,
    PRIMARY KEY (account_id, group_id, day)
) WITHOUT ROWID;
