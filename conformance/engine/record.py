"""The canonical record of a run: results.json, written incrementally and atomically.

Every planned (requirement, site) starts as `not-run` and is updated as soon as its verdict is
known, and the file is rewritten (model/atomicfile.py, mode 0644) after it, so Ctrl-C or SIGTERM (which finish the
record) and a crash keep everything measured so far and show what did not run. When rewrites get
costly (a big run: see SAVE_BUDGET) verdicts are batched, and a hard crash (SIGKILL, OOM) may lose the
last batch: at most save time / SAVE_BUDGET, about 0.8 s of verdicts at fleet-50 scale.

No known secret value (model/secrets.py: the values of the variables the target refers to, read at
run start) is ever written: a save that would hold one redacts the record in memory first (each value
becomes its `${VAR}` reference), so results.json and every report rendered from the record are clean.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from .. import __version__
from ..model import recompute
from ..model import results as R
from ..model import secrets as S
from ..model.atomicfile import PUBLIC, write_atomic


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{os.urandom(3).hex()}"


def host_facts() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total}


# At most this share of the run's wall time goes into rewriting results.json. A save is a full rewrite
# (O(verdicts)), so saving after every verdict is quadratic: at fleet-50 scale (~870 verdicts, 1.5 MB)
# each save takes ~80 ms and per-verdict saving added over a minute (benchmarks/record_saves.py). Small
# runs still save after every verdict (a save there takes about a millisecond); big ones batch the
# verdicts of the next few hundred ms into one save. finish() always saves at once.
SAVE_BUDGET = 0.10
# results.json is a report like the others (shared as a CI artifact, read by `report`, `verify` ...) and
# holds no secret value (redacted, see _serialise): readable by others, as junit.xml and summary.md are.
RESULTS_MODE = PUBLIC
CHEAP_SAVE_S = 0.02  # a save this quick (a small run; fsync alone takes a few ms) is never put off


class RunRecord:
    """results.json in memory, saved after every change, or at most SAVE_BUDGET of the time."""

    def __init__(self, path: Path | None, run_id: str, profiles: list[dict], target: dict | None,
                 options: dict[str, Any], secrets: dict[str, str] | None = None):
        self.path = path  # None: kept in memory only (a pytest-xdist worker's: the controller saves)
        self.secrets = dict(secrets or {})  # variable -> value: never written (see _serialise)
        self._lock = threading.Lock()
        self.data: dict[str, Any] = {
            "schema": R.SCHEMA,
            "harness": {"name": "edge-conformance", "version": __version__},
            "run_id": run_id,
            "started": now_iso(),
            "finished": None,
            "state": "running",
            "host": host_facts(),
            "profiles": profiles,
            "target": target,
            "options": options,
            "verdict": R.INCOMPLETE,
            "counts": R.counts([]),
            "calibration": None,
            "requirements": [],
            "waivers": {"applied": [], "expired": []},
        }
        self._index: dict[tuple[str, str, str], int] = {}
        self.updated: set[tuple[str, str, str]] = set()  # the entries changed since planned
        # Counts, fleet entries and the verdict cover every entry: brought up to date when the record is
        # saved (or finished), not after each verdict, which at 17,000 entries cost 45 ms per verdict.
        self._stale = False
        self._save_cost = 0.0  # seconds the last save took
        self._saved_at = 0.0  # monotonic time the last save ended
        self._pending: threading.Timer | None = None  # a save put off to keep within SAVE_BUDGET

    @property
    def strict(self) -> bool:
        return bool(self.data["options"].get("strict"))

    def plan(self, entry: dict) -> None:
        key = (entry["profile"], entry["id"], entry["site"])
        with self._lock:
            if key in self._index:
                return
            self._index[key] = len(self.data["requirements"])
            self.data["requirements"].append(entry)

    def update(self, profile: str, rid: str, site: str, **fields: Any) -> dict:
        with self._lock:
            entry = self.data["requirements"][self._index[(profile, rid, site)]]
            entry.update(fields)
            self.updated.add((profile, rid, site))
            self._stale = True  # counts, fleets and verdict are brought up to date when saved
            self._save_soon()
            return entry

    def replace(self, entry: dict) -> dict | None:
        """Put a whole entry decided elsewhere (a pytest-xdist worker's) in place of the planned one;
        None when this run planned no such entry."""
        key = (entry.get("profile"), entry.get("id"), entry.get("site"))
        with self._lock:
            index = self._index.get(key)  # type: ignore[arg-type]
            if index is None:
                return None
            mine = self.data["requirements"][index]
            mine.clear()
            mine.update(entry)
            self.updated.add(key)  # type: ignore[arg-type]
            self._stale = True
            self._save_soon()
            return mine

    def add_applied_waiver(self, waiver: dict) -> None:
        with self._lock:  # a put-off save may be serialising self.data in the timer thread
            self.data["waivers"]["applied"].append(waiver)
            self._save_soon()

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self.data[key] = value
            self._save_soon()

    def finish(self, state: str) -> None:
        with self._lock:
            self.data["state"] = state
            self.data["finished"] = now_iso()
            self._refresh()
            self._save()

    def save(self) -> None:
        with self._lock:
            self._refresh()
            self._save()

    def _refresh(self) -> None:
        self._stale = False
        reqs = self.data["requirements"]
        self._refresh_fleets(reqs)
        self.data["counts"] = R.counts(reqs)
        self.data["verdict"] = R.run_verdict(reqs, self.strict)

    def _refresh_fleets(self, reqs: list[dict]) -> None:
        recompute.refresh_fleets(reqs)  # the rule verify uses too

    def _save_soon(self) -> None:
        """Save now, unless saving would take more than SAVE_BUDGET of the time: then once, a little later."""
        if self._pending is not None:
            return  # a save is already due, and it will carry this change too
        wait = self._save_cost / SAVE_BUDGET - (time.monotonic() - self._saved_at)
        if wait <= 0 or self._save_cost < CHEAP_SAVE_S:
            self._save()
            return
        self._pending = threading.Timer(wait, self._save_pending)
        self._pending.daemon = True
        self._pending.start()

    def _save_pending(self) -> None:
        with self._lock:
            if self._pending is None:  # already saved by finish()/save()
                return
            try:
                self._save()
            except OSError as exc:  # disk full, directory gone: say so; finish() saves (and raises) again
                self._pending = None
                sys.stderr.write(f"edge-conformance: could not save {self.path}: {exc.strerror or exc}\n")

    def _save(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self.path is None:
            return
        started = time.monotonic()
        if self._stale:
            self._refresh()
        write_atomic(self.path, self._serialise(), mode=RESULTS_MODE)
        self._saved_at = time.monotonic()
        self._save_cost = self._saved_at - started

    def _serialise(self) -> str:
        """The record as JSON. When a known secret value shows up in it (a note, a message, an error, raw
        data), the record is redacted in memory first, so the reports rendered from it are clean too.
        Only strings are redacted: a value that is only found inside a number is left alone."""
        text = json.dumps(self.data, indent=2, default=_json_default) + "\n"
        if self.secrets and S.find(text, self.secrets):
            S.redact_data(self.data, self.secrets, _json_default)
            text = json.dumps(self.data, indent=2, default=_json_default) + "\n"
        return text


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)
