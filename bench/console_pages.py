#!/usr/bin/env python3
"""Times console pages over one kept-alive connection: signs in through the form, then
asks each page WARMUP times untimed (env WARMUP, default 3) and ROUNDS times timed, and prints p50/p95 per page
(client-side: the whole request and answer on loopback). With UNTIL_READ set it only
asks the first path until it no longer reloads itself (the dashboard reading its
figures) and prints how long that took.

    console_pages.py BASE EMAIL PASSWORD ROUNDS PATH...
"""
import http.client
import os
import re
import sys
import time
import urllib.parse

base, email, password, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
paths = sys.argv[5:]
host = urllib.parse.urlparse(base).netloc
conn = http.client.HTTPConnection(host, timeout=120)
cookies = {}


def ask(method, path, body=None):
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    text = response.read().decode()
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, value = header.split(";")[0].partition("=")
        if value:
            cookies[name] = value
        else:
            cookies.pop(name, None)
    return response.status, text


status, form = ask("GET", "/console/sign-in")
token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
status, _ = ask("POST", "/console/sign-in", urllib.parse.urlencode(
    {"csrf": token, "account": "default", "email": email, "password": password,
     "next": "/console/"}))
assert status == 303, f"sign-in answered {status}"

if os.environ.get("UNTIL_READ"):
    # The dashboard says "Reading…" (and reloads itself) until its figures are read:
    # wait for them, so that their read is not timed as part of other pages.
    start = time.perf_counter()
    while 'http-equiv="refresh"' in ask("GET", paths[0])[1]:
        time.sleep(0.2)
    print(f"{paths[0]} shows its figures after {time.perf_counter() - start:.1f} s")
    sys.exit(0)

print(f"{'page':<44} {'p50 ms':>8} {'p95 ms':>8} {'status':>6}")
for path in paths:
    for _ in range(int(os.environ.get("WARMUP", "3"))):
        ask("GET", path)
    took = []
    for _ in range(rounds):
        start = time.perf_counter()
        status, _ = ask("GET", path)
        took.append((time.perf_counter() - start) * 1000)
    took.sort()
    p50 = took[len(took) // 2]
    p95 = took[min(len(took) - 1, int(len(took) * 0.95))]
    print(f"{path:<44} {p50:8.1f} {p95:8.1f} {status:>6}", flush=True)
