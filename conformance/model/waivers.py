"""Waivers: a signed-off, expiring exception that turns a failure into `waived`.

    waivers:
      - id: RCB-LAT-01          # requirement id
        site: store-2           # a site name, or "all"
        reason: vendor fix due in release 4.2
        who: jane.doe@example.com
        expires: 2027-01-31     # ignored (and reported as expired) from this date on
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, did_you_mean
from .yamlfile import load_yaml

_KEYS = ("id", "site", "reason", "who", "expires")


@dataclass(frozen=True)
class Waiver:
    id: str
    site: str
    reason: str
    who: str
    expires: dt.date
    origin: str

    def covers(self, requirement_id: str, site: str) -> bool:
        return self.id == requirement_id and self.site in ("all", site)

    def expired(self, today: dt.date) -> bool:
        return today >= self.expires

    def to_dict(self) -> dict:
        return {"id": self.id, "site": self.site, "reason": self.reason, "who": self.who,
                "expires": self.expires.isoformat(), "origin": self.origin}


def load_waivers(path: str | Path) -> list[Waiver]:
    doc = load_yaml(path)
    data = doc.data
    if not isinstance(data, dict) or set(data) != {"waivers"}:
        raise ConfigError(doc.source, 1, None, 'a waivers file is a mapping with one key, "waivers"')
    if not isinstance(data["waivers"], list):
        raise doc.error(("waivers",), "expected a list of waivers")
    out = []
    for i, raw in enumerate(data["waivers"]):
        where = ("waivers", i)
        if not isinstance(raw, dict):
            raise doc.error(where, "expected a mapping with id, site, reason, who, expires")
        for key in raw:
            if key not in _KEYS:
                raise doc.error(where + (key,), f'unknown key "{key}"{did_you_mean(key, _KEYS)}')
        for key in _KEYS:
            if key not in raw:
                raise doc.error(where, f'missing required key "{key}"')
            if key != "expires" and (not isinstance(raw[key], str) or not raw[key].strip()):
                raise doc.error(where + (key,), "expected a non-empty string")
        expires = raw["expires"]
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError:
                expires = None
        if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
            raise doc.error(where + ("expires",), "expected a date such as 2027-01-31")
        out.append(Waiver(raw["id"], raw["site"], raw["reason"], raw["who"], expires,
                          f"{doc.source}:{doc.line(where)}"))
    return out


def split_active(waivers: list[Waiver], today: dt.date | None = None) -> tuple[list[Waiver], list[Waiver]]:
    today = today or dt.date.today()
    active = [w for w in waivers if not w.expired(today)]
    expired = [w for w in waivers if w.expired(today)]
    return active, expired
