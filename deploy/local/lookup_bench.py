#!/usr/bin/python3
"""Contact lookups of the user service while users sign up.

The gateway and the workers ask the user service for a recipient's contact data (served from Redis once cached).
Sign-ups hash passwords with bcrypt, which keeps a thread busy for tens of milliseconds. This measures the contact
lookups' latency alone for DURATION seconds and then with SIGNUPS clients creating users at the same time, so a
lookup that waits behind password hashing shows up in its p99.

    deploy/local/lookup_bench.py [DURATION] [SIGNUPS]      (defaults 10 and 8; loopback only, stops by itself)

Reads NOTIFY_LOCAL_DIR (default .local/dev) for the service key; the user service at NOTIFY_USERS_URL
(default http://127.0.0.1:8001).
"""

import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid

LOOKUP_CLIENTS = 4
USERS = 50


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Client:
    def __init__(self, url, key):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.connection.request(method, path, body=data, headers=self.headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (http.client.HTTPException, OSError):
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            raise


def create_user(client):
    status, body = client.call(
        "POST",
        "/api/v1/users/",
        {"name": "Bench", "email": "bench.%s@example.com" % uuid.uuid4().hex[:12], "password": "correct horse battery"},
    )
    if status != 201:
        raise RuntimeError("create user: %d %s" % (status, body[:200]))
    return json.loads(body)["data"]["user_id"]


def phase(url, key, ids, duration, signups):
    stop = time.monotonic() + duration
    latencies, errors, created = [], [0], [0]
    lock = threading.Lock()

    def lookups(offset):
        client, index, mine = Client(url, key), offset, []
        while time.monotonic() < stop:
            started = time.monotonic()
            try:
                status, _ = client.call("GET", "/api/v1/users/%s/contact/" % ids[index % len(ids)])
                ok = status == 200
            except Exception:
                ok = False
            if ok:
                mine.append(time.monotonic() - started)
            else:
                with lock:
                    errors[0] += 1
            index += 1
        with lock:
            latencies.extend(mine)

    def signup():
        client = Client(url, key)
        while time.monotonic() < stop:
            try:
                create_user(client)
                with lock:
                    created[0] += 1
            except Exception:
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=lookups, args=(n * 7,)) for n in range(LOOKUP_CLIENTS)]
    threads += [threading.Thread(target=signup) for _ in range(signups)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ms = [1000 * value for value in latencies]
    print(
        "%-22s lookups %6d (%5.0f/s)  p50 %6.1f ms  p99 %7.1f ms  max %7.1f ms  sign-ups %4d (%4.1f/s)  errors %d"
        % (
            "with %d sign-up clients" % signups if signups else "alone",
            len(ms), len(ms) / duration, percentile(ms, 50), percentile(ms, 99), max(ms or [0]),
            created[0], created[0] / duration, errors[0],
        ),
        flush=True,
    )


def main():
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    signups = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    directory = os.environ.get("NOTIFY_LOCAL_DIR", os.path.join(os.getcwd(), ".local/dev"))
    with open(os.path.join(directory, "service-key")) as handle:
        key = handle.read().strip()
    url = os.environ.get("NOTIFY_USERS_URL", "http://127.0.0.1:8001")
    setup = Client(url, key)
    ids = [create_user(setup) for _ in range(USERS)]
    for user in ids:  # fill the cache
        setup.call("GET", "/api/v1/users/%s/contact/" % user)
    phase(url, key, ids, duration, 0)
    phase(url, key, ids, duration, signups)


if __name__ == "__main__":
    main()
