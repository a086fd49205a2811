-- What a sender's token last did, for the integration's status: when an event it sent
-- was last stored, and the last request it sent that was refused (in words, and when).
ALTER TABLE tokens ADD COLUMN last_event_at BIGINT;
ALTER TABLE tokens ADD COLUMN last_error TEXT;
ALTER TABLE tokens ADD COLUMN last_error_at BIGINT;
