-- A digest of each standing's status, reason, deadline, last completion and next change:
-- a full evaluation compares it instead of reading every reason. NULL (rows written
-- before) never matches, so the next evaluation writes the row again.
ALTER TABLE compliance_people ADD COLUMN digest BIGINT;
