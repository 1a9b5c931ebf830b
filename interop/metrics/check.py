"""Reads a scrape of the server run.sh drove with prometheus_client's text
parser and asserts the families and the counts its requests made:
1 login ok, 2 failed (a wrong password, an unknown user), 3 GET /users/me
200 and one 401, a refresh, the API's /metrics 404 (route "other"), one
session open, two hashes timed. Exits non-zero, naming what differs."""
import sys

from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
families = {f.name: f for f in text_string_to_metric_families(text)}


values = {
    (s.name, tuple(sorted(s.labels.items()))): s.value
    for family in families.values()
    for s in family.samples
}


expected_types = {
    "password_bearer_requests": "counter",
    "password_bearer_request_timeouts": "counter",
    "password_bearer_logins": "counter",
    "password_bearer_admin_changes": "counter",
    "password_bearer_refreshes": "counter",
    "password_bearer_refresh_reuses": "counter",
    "password_bearer_hash_queue_depth": "gauge",
    "password_bearer_hashes_in_progress": "gauge",
    "password_bearer_hash_queue_wait_seconds": "histogram",
    "password_bearer_hash_duration_seconds": "histogram",
    "password_bearer_open_connections": "gauge",
    "password_bearer_connections_refused": "counter",
    "password_bearer_sessions": "gauge",
    "password_bearer_revocations": "gauge",
    "password_bearer_revocations_collapsed": "counter",
}
types = {name: f.type for name, f in families.items()}
assert types == expected_types, f"families: {types}"
for family in families.values():
    assert family.documentation, f"{family.name} has no HELP"

checks = {
    ("password_bearer_requests_total", (("route", "token"), ("status", "200"))): 2,
    ("password_bearer_requests_total", (("route", "token"), ("status", "400"))): 2,
    ("password_bearer_requests_total", (("route", "users_me"), ("status", "200"))): 3,
    ("password_bearer_requests_total", (("route", "users_me"), ("status", "401"))): 1,
    ("password_bearer_requests_total", (("route", "other"), ("status", "404"))): 1,
    ("password_bearer_request_timeouts_total", ()): 0,
    ("password_bearer_logins_total", (("outcome", "ok"),)): 1,
    ("password_bearer_logins_total", (("outcome", "failed"),)): 2,
    ("password_bearer_logins_total", (("outcome", "throttled"),)): 0,
    ("password_bearer_logins_total", (("outcome", "busy"),)): 0,
    ("password_bearer_refreshes_total", (("outcome", "ok"),)): 1,
    # No reload ran: no user changed.
    **{
        ("password_bearer_admin_changes_total", (("change", change),)): 0
        for change in ("added", "removed", "password", "disabled", "enabled")
    },
    ("password_bearer_sessions", ()): 1,
    ("password_bearer_revocations", ()): 0,
    ("password_bearer_revocations_collapsed_total", ()): 0,
    ("password_bearer_hash_duration_seconds_count", ()): 3,
    ("password_bearer_hash_queue_wait_seconds_count", ()): 3,
}
requests = families["password_bearer_requests"].samples
assert len(requests) == 5, f"request series: {requests}"
failed = []
for (name, labels), want in checks.items():
    got = values.get((name, tuple(sorted(labels))))
    if got is None:
        failed.append(name)
        print(f"FAILED  no {name}{dict(labels)}")
        continue
    status = "ok     " if got == want else "FAILED "
    if got != want:
        failed.append(name)
    print(f"{status} {name}{dict(labels)} = {got:g} (expected {want})")

buckets = [s for s in families["password_bearer_hash_duration_seconds"].samples if s.name.endswith("_bucket")]
bounds = [float(s.labels["le"]) for s in buckets]
counts = [s.value for s in buckets]
assert bounds == sorted(bounds) and bounds[-1] == float("inf"), bounds
assert counts == sorted(counts) and counts[-1] == 3, counts

print(f"metrics: {len(checks) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
