-- Which notices a campaign sends and when (JSON of coachloop_core's NoticeSettings);
-- NULL: the defaults.
ALTER TABLE campaigns ADD COLUMN notices TEXT;

-- A campaign's own text for a notice, per language ('' serves every other language).
CREATE TABLE notice_templates (
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    campaign_id  BIGINT NOT NULL REFERENCES campaigns (id),
    notice       TEXT NOT NULL,
    language     TEXT NOT NULL,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    button       TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, campaign_id, notice, language)
);

-- Chat: a webhook in Slack's or Teams' format (`slack`, `teams`; `json` is coachloop's
-- own signed body) is sent the text of the notices its `events` name, for one campaign
-- or, with no campaign, every campaign of the account.
ALTER TABLE webhooks ADD COLUMN format TEXT NOT NULL DEFAULT 'json';
ALTER TABLE webhooks ADD COLUMN campaign_id BIGINT REFERENCES campaigns (id);
