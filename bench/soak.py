#!/usr/bin/env python3
"""The soak driver of bench/soak.sh (standard library only): places ORDERS storefront orders
through a running `oms up`, end to end (a webhook sink counts `order.routed`), and every EVERY
orders samples the host's resident memory (/proc/<pid>/status VmRSS) and the store's size (the
SQLite files under the state dir after a WAL checkpoint: live bytes = (page_count - freelist) *
page_size), with the key count per prefix. Intake is closed-loop: it pauses while more than
BACKLOG orders are accepted but not yet routed, so the pipeline, not a queue backlog, sets the
pace. Prints a table (Markdown) at the end.
"""
import argparse
import http.client
import json
import os
import sqlite3
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKUS = 50


def order_body(sku):
    return json.dumps({
        "channel": "web", "customer": {"email": "soak@example.com", "name": "Soak"},
        "currency": "USD",
        "lines": [{"sku": sku, "quantity": 1, "unit_price": "10.00"}],
        "shipping": {"method": "standard", "amount": "5.00", "address": {
            "country": "US", "postal_code": "90012", "line1": "1 Main St",
            "city": "Los Angeles", "coordinates": {"lat": 34.05, "lon": -118.24}}},
        "tax": "0.80",
        "totals": {"subtotal": "10.00", "discount": "0.00", "shipping": "5.00", "tax": "0.80",
                   "grand_total": "15.80"},
        "payment": {"reference": "pi_soak", "status": "captured", "amount": "15.80"},
    })


class Sink:
    """Counts order.routed deliveries (by webhook-id, so a redelivery counts once)."""

    def __init__(self):
        self.ids = set()
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                try:
                    if json.loads(body).get("type") == "order.routed":
                        with sink.lock:
                            sink.ids.add(self.headers.get("webhook-id"))
                except ValueError:
                    pass
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self):
        return "http://127.0.0.1:%d/hook" % self.server.server_address[1]

    def routed(self):
        with self.lock:
            return len(self.ids)


def call(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def seed(host, port, token, sink_url):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    auth = {"authorization": "Bearer " + token, "content-type": "application/json"}
    with open(os.path.join(ROOT, "tests/fixtures/locations.json")) as f:
        st, body = call(conn, "PUT", "/v1/admin/locations", f.read(), auth)
        assert st < 300, (st, body)
    for i in range(SKUS):
        sku = "SOAK-%d" % i
        st, body = call(conn, "PUT", "/v1/admin/catalog/" + sku, json.dumps({"USD": "10.00"}), auth)
        assert st < 300, (st, body)
        for loc in ("wh-east", "wh-west"):
            st, body = call(conn, "PUT", "/v1/admin/stock/%s/%s" % (sku, loc),
                            json.dumps({"on_hand": 10_000_000}), auth)
            assert st < 300, (st, body)
    st, body = call(conn, "POST", "/v1/webhooks",
                    json.dumps({"url": sink_url, "events": ["order.routed"]}), auth)
    assert st < 300, (st, body)


def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def purge_tags(host, port, token):
    """The host's `oms_http_cache_purge_tags` gauge (tags its purge log remembers), or -1."""
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        st, body = call(conn, "GET", "/metrics", None, {"authorization": "Bearer " + token})
        conn.close()
        for line in body.decode().splitlines():
            if line.startswith("oms_http_cache_purge_tags "):
                return int(float(line.split()[1]))
    except (OSError, ValueError):
        pass
    return -1


def store_sample(state):
    """Live bytes of every SQLite file in the state dir (after a checkpoint), file bytes, and
    the key count per prefix of the key-value store."""
    live, files, prefixes = 0, 0, {}
    for name in sorted(os.listdir(state)):
        path = os.path.join(state, name)
        if not name.endswith(".db"):
            continue
        db = sqlite3.connect(path, timeout=30)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            size = db.execute("PRAGMA page_size").fetchone()[0]
            live += (pages - free) * size
            if name == "kv.db":
                # A key's prefix is what precedes its first ':'; keys without one (the
                # owed-work index: "{order}/{marker}") are counted under their store's name.
                for store, prefix, n in db.execute(
                        "SELECT store, CASE WHEN instr(key, ':') > 0"
                        " THEN substr(key, 1, instr(key, ':') - 1) ELSE '' END AS p, count(*)"
                        " FROM kv GROUP BY store, p"):
                    label = prefix or "(%s store)" % store
                    if store != "default" and prefix:
                        label = "%s/%s" % (store, prefix)
                    prefixes[label] = prefixes.get(label, 0) + n
        finally:
            db.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                files += os.path.getsize(path + suffix)
    return live, files, prefixes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--state", required=True, help="oms up --state-dir")
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--every", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--backlog", type=int, default=1000)
    ap.add_argument("--drain-seconds", type=int, default=300)
    a = ap.parse_args()
    host, port = a.base.replace("http://", "").split(":")
    port = int(port)

    sink = Sink()
    seed(host, port, a.token, sink.url())
    placed = [0]
    failed = [0]
    lock = threading.Lock()
    stop = threading.Event()
    samples = []
    start = time.time()

    def take(label):
        live, files, prefixes = store_sample(a.state)
        s = {"label": label, "placed": placed[0], "routed": sink.routed(), "t": time.time() - start,
             "rss_kib": rss_kib(a.pid), "anon_kib": rss_kib(a.pid, "RssAnon"),
             "purge_tags": purge_tags(host, port, a.token),
             "live": live, "files": files, "prefixes": prefixes}
        samples.append(s)
        print("sample %s: placed %d routed %d rss %.1f MiB (anonymous %.1f) purge-log tags %d"
              " store %.1f MiB keys %s" % (
                  label, s["placed"], s["routed"], s["rss_kib"] / 1024, s["anon_kib"] / 1024,
                  s["purge_tags"], live / 2**20, json.dumps(prefixes, sort_keys=True)), flush=True)

    take("start")
    next_sample = [a.every]

    def worker(w):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while not stop.is_set():
            with lock:
                if placed[0] >= a.orders:
                    return
                n = placed[0]
                placed[0] += 1
            while n - sink.routed() > a.backlog and not stop.is_set():
                time.sleep(0.01)
            body = order_body("SOAK-%d" % (n % SKUS))
            key = "soak-%s" % uuid.uuid4()
            for _ in range(5):
                try:
                    st, _ = call(conn, "POST", "/v1/orders", body,
                                 {"idempotency-key": key, "content-type": "application/json"})
                    if st == 202:
                        break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                time.sleep(0.05)
            else:
                with lock:
                    failed[0] += 1

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(a.clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        if placed[0] >= next_sample[0]:
            take(str(next_sample[0]))
            next_sample[0] += a.every
    deadline = time.time() + a.drain_seconds
    while sink.routed() < a.orders - failed[0] and time.time() < deadline:
        time.sleep(1)
    take("drained")
    # One more minute: the cron sweeper prunes what the shortened window let expire.
    time.sleep(int(os.environ.get("SOAK_SETTLE_SECONDS", "75")))
    take("settled")

    print()
    print("| orders placed | routed | elapsed s | host RSS MiB | of it anonymous MiB | purge-log tags | store live MiB | store files MiB | bytes/order (live) | idempotency keys | pruning index docs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for s in samples:
        per = s["live"] / s["placed"] if s["placed"] else 0
        print("| %s | %d | %.0f | %.1f | %.1f | %d | %.1f | %.1f | %s | %d | %d |" % (
            s["label"] if not s["label"].isdigit() else "{:,}".format(s["placed"]),
            s["routed"], s["t"], s["rss_kib"] / 1024, s["anon_kib"] / 1024, s["purge_tags"],
            s["live"] / 2**20, s["files"] / 2**20,
            ("%.0f" % per) if per else "-", s["prefixes"].get("idem", 0),
            s["prefixes"].get("prune", 0)))
    print()
    print("failed orders: %d; key counts at the end: %s" % (
        failed[0], json.dumps(samples[-1]["prefixes"], sort_keys=True)))


if __name__ == "__main__":
    main()
