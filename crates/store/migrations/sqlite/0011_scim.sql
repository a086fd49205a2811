-- SCIM 2.0: the name an identity provider knows a person by (`userName`; NULL for people
-- it never named, whose email stands for it), what it shows them as, the manager it
-- named, and when it deleted them (archived, and hidden from SCIM; their records stay).
ALTER TABLE users ADD COLUMN user_name TEXT;
ALTER TABLE users ADD COLUMN user_name_norm TEXT;
ALTER TABLE users ADD COLUMN display_name TEXT;
ALTER TABLE users ADD COLUMN name_formatted TEXT;
ALTER TABLE users ADD COLUMN manager_ref TEXT;
ALTER TABLE users ADD COLUMN scim_deleted_at INTEGER;
-- One person per userName, case-insensitively, across SCIM names and emails alike; also
-- the path of Okta's `userName eq` look-up before every create.
CREATE UNIQUE INDEX users_user_name ON users (account_id, COALESCE(user_name_norm, email_norm));

-- The emails an identity provider gave a person, in its order, as given.
CREATE TABLE user_emails (
    user_id     INTEGER NOT NULL REFERENCES users (id),
    position    INTEGER NOT NULL,
    account_id  INTEGER NOT NULL,
    value       TEXT NOT NULL,
    value_norm  TEXT NOT NULL,
    kind        TEXT,
    is_primary  INTEGER NOT NULL,
    display     TEXT,
    PRIMARY KEY (user_id, position)
) WITHOUT ROWID;
CREATE INDEX user_emails_value ON user_emails (account_id, value_norm);
