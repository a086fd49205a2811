-- A smart group's backfill reads history outside the write lock, then reads again the
-- people changed since: found by this index.
CREATE INDEX users_updated ON users (account_id, updated_at);
