-- The admin console: administrators sign in with a password (an Argon2id PHC string);
-- repeated failures lock an administrator out for a while; a sign-in opens a session,
-- known by the SHA-256 of its cookie's secret, with the token its forms must carry.
ALTER TABLE admins ADD COLUMN password_hash TEXT;
ALTER TABLE admins ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE admins ADD COLUMN locked_until INTEGER;

CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    admin_id    INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    ended_at    INTEGER
);
CREATE INDEX console_sessions_admin ON console_sessions (account_id, admin_id);

-- A person's joins and leaves across groups (the console's person page).
CREATE INDEX group_history_person ON group_history (account_id, user_id, id);

-- Every change an administrator or a token made: who, what, when, and the resource
-- before and after (JSON, secrets left out). Read newest first, filtered.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    at          INTEGER NOT NULL,
    -- 'admin' (console) or 'token'.
    actor_kind  TEXT NOT NULL,
    actor_id    INTEGER NOT NULL,
    -- The admin's email or the token's name, as it was.
    actor       TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    status      INTEGER NOT NULL,
    before      TEXT,
    after       TEXT
);
CREATE INDEX audit_log_account ON audit_log (account_id, id);

-- The people list filtered by department (the console's filter), in id order.
CREATE INDEX users_department ON users (account_id, department, id);
