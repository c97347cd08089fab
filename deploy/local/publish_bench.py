#!/usr/bin/python3
"""A plain client of RabbitMQ's management HTTP publish endpoint, for comparison with the relay's HTTP publisher.

Declares a durable queue of its own, publishes COUNT persistent messages of the relay's size through
POST /api/exchanges/{vhost}/amq.default/publish with CONCURRENCY threads, each on one keep-alive connection,
prints messages per second, and deletes the queue. Usage: publish_bench.py URL USER PASSWORD [COUNT] [CONCURRENCY]
"""
import base64, http.client, json, sys, threading, time, urllib.parse

url, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
count = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 8
parsed = urllib.parse.urlparse(url)
auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
headers = {"Authorization": auth, "Content-Type": "application/json"}
queue = "bench.publish"

def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data

setup = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
call(setup, "PUT", f"/api/queues/%2F/{queue}", {"durable": True})
payload = json.dumps({"notification_id": "00000000-0000-0000-0000-000000000000", "user_id": "00000000-0000-0000-0000-000000000000",
                      "template_code": "bench_email", "variables": {"name": "Reader", "n": "1"}, "request_id": "bench-x",
                      "priority": 0, "metadata": None, "attempt": 0, "job_id": 1})
next_index = [0]
lock = threading.Lock()
errors = [0]

def worker():
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    while True:
        with lock:
            if next_index[0] >= count:
                return
            next_index[0] += 1
        status, data = call(conn, "POST", "/api/exchanges/%2F/amq.default/publish", {
            "routing_key": queue, "payload": payload, "payload_encoding": "string",
            "properties": {"delivery_mode": 2, "content_type": "application/json", "message_id": "1", "correlation_id": "c",
                           "priority": 0, "headers": {"x-correlation-id": "c"}}})
        if status != 200 or not json.loads(data).get("routed"):
            with lock:
                errors[0] += 1

start = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(concurrency)]
for thread in threads: thread.start()
for thread in threads: thread.join()
elapsed = time.monotonic() - start
call(setup, "DELETE", f"/api/queues/%2F/{queue}")
print(f"plain HTTP publish: {count} messages in {elapsed:.2f} s = {count / elapsed:.0f} msg/s, concurrency {concurrency}, errors {errors[0]}")
