"""Fault hook helper for the stand-in "real" target: drives one link of a linkd we started ourselves.

    python standin_ctl.py --control 127.0.0.1:PORT partition wan:store-1   # EDGE_CUT_MODE: hold | drop
    python standin_ctl.py --control 127.0.0.1:PORT heal wan:store-1
    python standin_ctl.py --control 127.0.0.1:PORT degrade wan:store-1 DELAY_MS JITTER_MS LOSS BANDWIDTH_BPS
    python standin_ctl.py ... --log FILE ...      # append "<action> <args>" to FILE first

Only 127.0.0.1. Exit 0 on success, 1 (with a line on stderr) when linkd refuses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def patch(control: str, link: str, body: dict) -> None:
    host, _, port = control.rpartition(":")
    assert host == "127.0.0.1", control
    req = urllib.request.Request(f"http://127.0.0.1:{int(port)}/links/{link}", method="PATCH",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        print(f"linkd refused: {exc.code} {exc.read()[:200]!r}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--control", required=True)
    ap.add_argument("--log")
    ap.add_argument("action", choices=("partition", "heal", "degrade"))
    ap.add_argument("link")
    ap.add_argument("values", nargs="*")
    args = ap.parse_args()
    # The harness tells a partition hook which cut to make (and heal which one it undoes).
    mode = os.environ.get("EDGE_CUT_MODE", "") if args.action in ("partition", "heal") else ""
    if args.log:
        with open(args.log, "a") as f:
            f.write(" ".join([args.action, args.link, *args.values, *([mode] if mode else [])]) + "\n")
    if args.action == "partition":
        patch(args.control, args.link, {"partitioned": True, "partition_mode": mode or "hold"})
        return
    if args.action == "heal":
        patch(args.control, args.link, {"partitioned": False})
        return
    delay, jitter, loss, bandwidth = args.values
    patch(args.control, args.link, {"delay_ms": float(delay), "jitter_ms": float(jitter), "loss": float(loss),
                                    "bandwidth_bps": int(bandwidth) or None})


if __name__ == "__main__":
    main()
