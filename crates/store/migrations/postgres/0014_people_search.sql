-- People search (`q`): one lower-case text of email and names, found through a trigram
-- index when pg_trgm can be installed (a trusted extension: the database's owner may).
-- Without it the search still works, by reading every row of the account.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%); people search reads every row', SQLERRM;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX users_search ON users USING gin (
            (email_norm || ' ' || lower(coalesce(first_name, '')) || ' ' || lower(coalesce(last_name, '')))
            gin_trgm_ops);
    END IF;
END $$;
