#!/usr/bin/env python3
"""Seeds the Reporting API benchmark straight into a migrated coachloop SQLite file:
PEOPLE people of the default account and one all-users campaign with CONTENT pieces of
content, so PEOPLE x CONTENT enrolments in mixed states. Reads need the rows, not the
path that wrote them; this takes seconds where the campaign executor and its notices
would take minutes.

    reporting_seed.py DB PEOPLE CONTENT
"""
import json
import random
import sqlite3
import sys
import time

db, people, content_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(5)
now = int(time.time() * 1000)
day = 86_400_000
conn = sqlite3.connect(db)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("PRAGMA synchronous = OFF")
account = conn.execute("SELECT id FROM accounts WHERE name = 'default'").fetchone()[0]

departments = ["Engineering", "Sales", "Finance", "Support", "Legal", "People"]
users = []
identities = []
for i in range(1, people + 1):
    email = f"user{i}@bench.example"
    users.append((account, email, email, f"E{i:06}", f"User{i}", "Bench",
                  departments[i % len(departments)], "active", now - 400 * day, now))
    identities.append((account, email, email, 0))
conn.executemany(
    "INSERT INTO users (account_id, email, email_norm, employee_number, first_name, last_name, "
    "department, status, joined_on, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", users)
conn.execute(
    "INSERT INTO user_identities (account_id, identity, display, user_id, is_alias) "
    "SELECT account_id, email_norm, email, id, 0 FROM users WHERE account_id = ? "
    "AND email LIKE '%@bench.example'", (account,))
user_ids = [row[0] for row in conn.execute(
    "SELECT id FROM users WHERE account_id = ? ORDER BY id", (account,))]

content = conn.execute(
    "SELECT id, kind FROM content WHERE account_id = ? ORDER BY kind, id LIMIT ?",
    (account, content_count)).fetchall()
if len(content) < content_count:
    sys.exit(f"the library holds {len(content)} pieces of content, fewer than {content_count}")
campaign = conn.execute(
    "INSERT INTO campaigns (account_id, name, status, all_users, auto_enroll, allow_multiple, "
    "start_at, relative_duration, created_at, updated_at) "
    "VALUES (?, 'Annual training', 'In Progress', 1, 0, 0, ?, 'P30D', ?, ?) RETURNING id",
    (account, now - 20 * day, now - 20 * day, now)).fetchone()[0]
conn.executemany(
    "INSERT INTO campaign_content (campaign_id, content_id, position) VALUES (?, ?, ?)",
    [(campaign, cid, pos) for pos, (cid, _) in enumerate(content)])

cause = json.dumps({"kind": "campaign_start", "campaign_id": campaign})
statuses = ["Not Started", "In Progress", "Passed", "Completed", "Past Due"]
batch = []
made = 0
for user in user_ids:
    for cid, kind in content:
        status = random.choice(statuses)
        if kind == "policy" and status == "Passed":
            status = "Completed"
        enrolled = now - random.randint(1, 19) * day
        started = enrolled + 3_600_000 if status != "Not Started" else None
        completed = started + 600_000 if status in ("Passed", "Completed") else None
        score = random.randint(80, 100) if status == "Passed" else None
        batch.append((account, campaign, cid, user, status, enrolled, enrolled + 30 * day,
                      started, completed, random.randint(0, 900) if started else 0, score,
                      1 if kind == "policy" and completed else 0, cause))
    if len(batch) >= 50_000:
        conn.executemany(
            "INSERT INTO enrollments (account_id, campaign_id, content_id, user_id, status, "
            "enrolled_at, due_at, started_at, completed_at, time_spent, score, "
            "policy_acknowledged, cause) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
        made += len(batch)
        batch = []
if batch:
    conn.executemany(
        "INSERT INTO enrollments (account_id, campaign_id, content_id, user_id, status, "
        "enrolled_at, due_at, started_at, completed_at, time_spent, score, "
        "policy_acknowledged, cause) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
    made += len(batch)
conn.commit()
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
conn.close()
print(f"seeded {len(user_ids)} people and {made} enrolments")
