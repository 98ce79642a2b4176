"""What a site serves on its own while cut off from central (reference workloads, docs/workloads.md):
a content copy it cached before the cut, read once it is stale, and a token central issued before
the cut. prime() before the fault, read() halfway through it, figures() after."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..model.errors import MeasurementError
from .http import Client, Reply
from .pacing import spawn

WORKLOADS = ("pos", "content", "auth")  # pos: the sales poster (measure.sales), the rest here


class CutOff:
    def __init__(self, site: Client, central: Callable[[], Client], workloads: list[str], tag: str,
                 op_timeout: float):
        self.site, self.central, self.workloads, self.op_timeout = site, central, workloads, op_timeout
        self.content_key, self.content_body, self.fetched_at = f"{tag}-content", None, None
        self.tag, self.token = tag, None
        self.checks: dict[str, Any] = {}

    def prime(self) -> None:
        """Before the cut: a content key in the site's cache, a token from central that the site accepts."""
        site = self.site
        if "content" in self.workloads:
            # A miss is fetched from central over the WAN within the site's own origin timeout (1 s on
            # the reference workload): over a 600 ms satellite round trip a fresh connection alone can
            # take most of it. Priming is setup, not measurement: a gateway error is tried again.
            for _ in range(3):
                r = site.call("GET", f"/content/{self.content_key}")
                if r.status not in (502, 504):
                    break
            if r.status != 200:
                raise MeasurementError(f"before the cut, GET /content/{self.content_key} -> {r.describe()}")
            self.content_body, self.fetched_at = r.body, time.monotonic()
        if "auth" in self.workloads:
            issued = self.central().json("POST", "/auth/token", {"subject": self.tag, "ttl_s": 3600},
                                         what="a token from central")
            self.token = issued.get("token")
            if not self.token:
                raise MeasurementError(f"central issued no token: {issued}")
            r = site.call("GET", "/auth/check", headers={"Authorization": f"Bearer {self.token}"})
            if r.status != 200:
                raise MeasurementError(f"before the cut the site already rejects central's fresh token: {r.describe()}")

    def read(self) -> None:
        """During the cut: read the cached content and check the token, side by side."""
        def read_content() -> None:
            self.checks["content"] = self.site.call("GET", f"/content/{self.content_key}", timeout=self.op_timeout)
            self.checks["content_done"] = time.monotonic()

        def check_token() -> None:
            self.checks["auth"] = self.site.call("GET", "/auth/check", timeout=self.op_timeout,
                                                 headers={"Authorization": f"Bearer {self.token}"})

        readers = []
        if "content" in self.workloads:
            readers.append(spawn(read_content))
        if "auth" in self.workloads:
            readers.append(spawn(check_token))
        for t in readers:
            t.join(self.op_timeout + 2)

    def figures(self, healed_at: float) -> tuple[list[tuple[str, bool, str]], list[str], dict[str, Any]]:
        """(metric, value, unit), notes and the raw detail of what was read during the cut."""
        metrics, notes, detail = [], [], {}
        if "content" in self.workloads:
            r = self.checks.get("content") or Reply(None, error="not read")
            served = r.status == 200 and r.body == self.content_body
            cache = r.header("X-Cache")
            metrics.append(("cache_served", served, ""))
            detail["content"] = {"status": r.status, "x_cache": cache, "elapsed_s": round(r.elapsed, 3)}
            if self.checks.get("content_done", 0) > healed_at:
                notes.append("the content answer came after the WAN healed: make the cut longer")
            if not served:
                notes.append(f"cached content during the cut: {r.describe()}"
                             + (" (body differs from the cached copy)" if r.status == 200 else ""))
            elif cache and cache.upper() == "HIT":
                notes.append("the cached copy was still fresh (X-Cache: HIT): serving a stale copy was not "
                             "exercised; raise content_ttl to the site's cache TTL")
        if "auth" in self.workloads:
            r = self.checks.get("auth") or Reply(None, error="not checked")
            body = r.json() if r.status == 200 else None
            ok = isinstance(body, dict) and body.get("valid") is True
            metrics.append(("auth_ok", ok, ""))
            detail["auth"] = {"status": r.status, "elapsed_s": round(r.elapsed, 3)}
            if not ok:
                notes.append(f"token check during the cut: {r.describe()}")
        return metrics, notes, detail
