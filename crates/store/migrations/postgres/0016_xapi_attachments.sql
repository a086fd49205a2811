-- The content of xAPI attachments sent in multipart/mixed requests, by their SHA-2 hash
-- (statements refer to it by `sha2`; the same content sent twice is kept once).
CREATE TABLE xapi_attachments (
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    sha2         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    content      BYTEA NOT NULL,
    stored_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, sha2)
);
