-- A person's emails by account and person: the read of every SCIM user. Without it, until
-- the table's statistics catch up with a bulk provisioning, the planner combined the
-- (account_id, value_norm) index (every email of the account) with the primary key, and
-- each read grew with the number of people.
CREATE INDEX user_emails_user ON user_emails (account_id, user_id);
