#!/usr/bin/env python3
"""Seeds the copy benchmark's events straight into a coachloop SQLite file whose people
were imported (`coachloop users import`, as bench/groups.sh does): EVENTS events shaped
as bench/groups_seed.lua sends them (a random person, a random catalog type with the same
weights, one of three descriptions, an instant of the last 12 months, risk level 1-9).
A copy benchmark needs the rows, not the 20 minutes the HTTP seed takes at 10 M events.

    copy_seed.py DB EVENTS
"""
import sqlite3
import sys
import time

db, events = sys.argv[1], int(sys.argv[2])
now = int(time.time() * 1000)
year = 365 * 86_400_000
# bench/groups_seed.lua's list: some types twice, so they come twice as often.
types = [
    "dashlane_user_typed_compromised_password", "dashlane_user_typed_compromised_password",
    "dashlane_user_entered_credential_phishing_website_ai",
    "dashlane_user_dismissed_vault_phishing_alert", "dashlane_user_dismissed_vault_phishing_alert",
    "dashlane_user_received_vault_phishing_alert", "dashlane_user_received_vault_phishing_alert",
    "dashlane_user_entered_password_risky_site", "dashlane_user_typed_weak_password",
    "dashlane_user_typed_weak_password", "dashlane_user_dismissed_ai_phishing_alert",
    "dashlane_user_dismissed_ai_phishing_alert", "dashlane_user_changed_at_risk_password",
    "dashlane_user_received_credential_risk_alert",
]

conn = sqlite3.connect(db)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("PRAGMA synchronous = OFF")
conn.execute("PRAGMA cache_size = -262144")
conn.execute("PRAGMA temp_store = memory")
account = conn.execute("SELECT id FROM accounts WHERE name = 'default'").fetchone()[0]
conn.execute("CREATE TEMP TABLE seed_types (k INTEGER PRIMARY KEY, type_id INTEGER NOT NULL)")
for k, name in enumerate(types):
    conn.execute(
        "INSERT INTO seed_types SELECT ?, id FROM event_types WHERE account_id = ? AND name = ?",
        (k, account, name))
conn.execute(
    "CREATE TEMP TABLE seed_people (k INTEGER PRIMARY KEY, user_id INTEGER, email TEXT)")
conn.execute(
    "INSERT INTO seed_people (user_id, email) SELECT id, email FROM users "
    "WHERE account_id = ? ORDER BY id", (account,))
people = conn.execute("SELECT COUNT(*) FROM seed_people").fetchone()[0]
if people == 0:
    sys.exit("no people to send events for: import them first")

started = time.time()
# Ids as the writer makes them: the upper half of a UUIDv7 (48 bits of milliseconds,
# version 7, 12 more bits), increasing; the lower half random. (`r` is materialized and
# read first, so each row's random numbers are drawn once and pick one type and person.)
step = 1_000_000
for first in range(0, events, step):
    last = min(first + step, events)
    conn.execute(
        """
        WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?),
        r(i, a, b, c, d, e) AS MATERIALIZED (
            SELECT i, abs(random()), abs(random()), abs(random()), abs(random()), random()
            FROM n)
        INSERT INTO events (id, id_low, account_id, event_type_id, user_id, target_user,
            target_norm, external_id, source, description, occurred_at, risk_level,
            risk_decay_mode, risk_expire_date, metadata, created_at)
        SELECT ((? + r.i / 4096) << 16) | 28672 | (r.i % 4096), r.e, ?, t.type_id,
            p.user_id, p.email, NULL, NULL, NULL,
            CASE r.c % 3 WHEN 0 THEN 'logged in to Dashlane'
                WHEN 1 THEN 'not logged in to Dashlane' ELSE 'no Dashlane account' END,
            ? - r.d % ?, 1 + r.c % 9, NULL, NULL, NULL, ?
        FROM r CROSS JOIN seed_types AS t CROSS JOIN seed_people AS p
        WHERE t.k = r.a % ? AND p.k = 1 + r.b % ?
        """,
        (first, last, now - events // 4096 - 1, account, now, year, now, len(types), people))
    conn.commit()
    print(f"   {last:,} events", file=sys.stderr)
print(f"seeded {events:,} events for {people:,} people in {time.time() - started:.0f} s")
