-- People search (`q`): one lower-case text of email and names, kept in an index so a
-- search reads the index's short entries instead of every row (and "kim lee" matches).
CREATE INDEX users_search ON users (account_id,
    (email_norm || ' ' || lower(coalesce(first_name, '')) || ' ' || lower(coalesce(last_name, ''))));
