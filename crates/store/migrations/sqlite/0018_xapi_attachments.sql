-- The content of xAPI attachments sent in multipart/mixed requests, by their SHA-2 hash
-- (statements refer to it by `sha2`; the same content sent twice is kept once).
CREATE TABLE xapi_attachments (
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    sha2         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    content      BLOB NOT NULL,
    stored_at    INTEGER NOT NULL,
    PRIMARY KEY (account_id, sha2)
);
