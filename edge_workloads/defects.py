"""Defect switches: named ways to break exactly one behaviour of a site.

Suites prove that a check can fail by running it against a site started with `--defects NAME`. Each
name here is part of the process contract, so the spelling never changes.
"""

from __future__ import annotations

import difflib

DEFECTS: dict[str, str] = {
    "forward-synchronously": "POS POST forwards to central inline before answering",
    "drop-on-partition": "POS records that fail to forward are dropped instead of kept",
    "duplicate-on-retry": "every forwarding attempt carries a fresh idempotency key",
    "no-stale-cache": "the content cache answers 502/504 instead of a stale copy when central is unreachable",
    "raw-telemetry": "every raw telemetry reading is shipped to central instead of aggregates",
    "central-auth-only": "token validation calls central every time",
    "slow-path": "every request handled by the site is delayed by ~25 ms",
    "leak-personal": "personal fields leave un-anonymised and local_only records are forwarded",
    "no-heartbeat": "the site never registers or heartbeats",
    "ignore-config": "the site never applies pushed config",
    "no-fsync": "POS transactions are acknowledged before being durably written",
    "health-broken": "GET /health answers 503 degraded while everything else works",
    "exits-after-start": "the process exits cleanly (status 0) about a second after it is ready",
    "extra-listener": "the process opens an undeclared TCP listener (a debug port) on its own address",
    "world-readable-key": "the site's secret key file in its data dir is mode 0644 instead of 0600",
    "memory-hog": "the process allocates, touches and holds ~640 MiB",
    "no-cache": "the content cache never stores anything: every GET is a MISS fetched from central",
    "health-waits-on-wan": "GET /health calls central over the WAN first and answers 503 when it cannot",
    "blocking-io": "every request blocks the event loop for ~8 ms (a synchronous call in async code)",
    # what only a long outage shows (resilience.long_outage)
    "unbounded-backlog": "every sale made while central is unreachable also keeps a 256 KiB send buffer in "
                         "memory that is never freed: memory grows with the backlog, without bound",
    "renew-at-central-only": "POST /auth/renew is passed on to central: a token that runs out during an "
                             "outage cannot be renewed",
    "forwarder-no-reconnect": "the sales forwarder gives up after its first failed attempt and never "
                              "reconnects (until the site restarts): nothing is forwarded after a cut",
    # the real components of an edge-stack site (docker backend, `stack:` in the topology): they change
    # the nginx and mosquitto configuration siteinit writes; the workload process itself ignores them
    "nginx-no-stale": "the site's nginx cache never serves an expired copy: no proxy_cache_use_stale, so "
                      "while the origin is unreachable it answers 502/504",
    "nginx-no-cache": "the site's nginx cache stores nothing (proxy_no_cache): every GET is a MISS fetched "
                      "from the origin",
    "bridge-drops-queued": "the site's mosquitto bridge loses the messages published while its link to "
                           "central is down (bridged at QoS 0, nothing queued for it)",
    # the emulated operator's tools (the supervisor applies them; the workload process ignores them)
    "restore-loses-records": "restoring the site from a backup drops every tenth POS record of it (a faulty "
                             "restore tool)",
    # the management interface's (every site has one)
    "expiring-cert": "the management interface's certificate expires in 7 days (issued so by the provisioner)",
    "default-credentials": "the management interface also accepts the factory default admin/admin",
}

# A central site only handles requests; the edge-side defects have nothing to break there. The
# process-level ones (health, process, listeners, key file, memory, request handling) apply to it too.
CENTRAL_DEFECTS = frozenset({"slow-path", "health-broken", "exits-after-start", "extra-listener",
                             "world-readable-key", "memory-hog", "blocking-io",
                             "expiring-cert", "default-credentials"})


def readiness_path(defects) -> str:
    """Where a supervisor polls a site to see it is up: /health, except on a `health-broken` site,
    whose /health answers 503 by design (the suites judge that) while everything else works."""
    return "/ping" if "health-broken" in defects else "/health"


class UnknownDefect(ValueError):
    pass


def parse_defects(text: str | None) -> frozenset[str]:
    """'a, b' -> {'a', 'b'}; raises UnknownDefect naming the first bad entry."""
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    for name in names:
        if name not in DEFECTS:
            close = difflib.get_close_matches(name, DEFECTS, n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise UnknownDefect(
                f'unknown defect "{name}"{hint}; known defects: {", ".join(sorted(DEFECTS))}'
            )
    return frozenset(names)
