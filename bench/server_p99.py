#!/usr/bin/env python3
"""The server's own p99 of one route between two scrapes of /metrics.

    server_p99.py BEFORE AFTER [ROUTE]

BEFORE and AFTER are saved /metrics texts; ROUTE defaults to /events (POST). Prints the
upper bound of the histogram bucket that holds the 99th percentile, in ms (the buckets
double, so the figure is within a factor of two above the true one). The server measures
from reading the request to answering it: time a request waited in the socket for a busy
worker is not in it, which the client's figure (wrk's) includes.
"""
import re
import sys


def buckets(path, route):
    pattern = re.compile(
        r'^coachloop_http_request_duration_seconds_bucket\{(?P<labels>[^}]*)\} (?P<n>\S+)')
    found = {}
    for line in open(path):
        m = pattern.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group('labels')))
        if labels.get('route') == route and labels.get('method') == 'POST':
            found[float(labels['le'])] = float(m.group('n'))
    return found


route = sys.argv[3] if len(sys.argv) > 3 else '/events'
before, after = buckets(sys.argv[1], route), buckets(sys.argv[2], route)
delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
total = delta[-1][1] if delta else 0
if total == 0:
    print('n/a')
else:
    bound = next(le for le, n in delta if n >= 0.99 * total)
    print('inf' if bound == float('inf') else f'{bound * 1000:g}ms')
