-- A group's joins and leaves, newest first, for the console's history page.
CREATE INDEX group_history_group ON group_history (group_id, id);
