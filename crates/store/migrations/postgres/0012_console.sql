-- The admin console: administrators sign in with a password (an Argon2id PHC string);
-- repeated failures lock an administrator out for a while; a sign-in opens a session,
-- known by the SHA-256 of its cookie's secret, with the token its forms must carry.
ALTER TABLE admins ADD COLUMN password_hash TEXT;
ALTER TABLE admins ADD COLUMN failed_sign_ins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE admins ADD COLUMN locked_until BIGINT;

CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    admin_id    BIGINT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX console_sessions_admin ON console_sessions (account_id, admin_id);

-- A person's joins and leaves across groups (the console's person page).
CREATE INDEX group_history_person ON group_history (account_id, user_id, id);
