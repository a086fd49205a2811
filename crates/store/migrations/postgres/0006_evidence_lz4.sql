-- Evidence bodies are large (an OSCAL export at 100,000 people is about 90 MB) and kept
-- for good: PostgreSQL compresses them as it stores them, and pglz took longer over one
-- such body than everything else the export did. lz4 where the server was built with it;
-- where it was not, bodies keep the default.
DO $$
BEGIN
    ALTER TABLE evidence_snapshots ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;
