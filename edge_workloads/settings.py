"""The settings a site accepts, and their live values: defaults, --site-config validation, and config
pushed by central.

One flat set of keys serves both sources so an operator can start a site with a value and later push
another. Defaults are short (seconds, not minutes) because emulated runs are short.

The rules (SCHEMA, check_settings) are the workloads' own: a site defines what it accepts. The harness
validates a topology's `config:` through them on load (conformance.model.topology), so a bad value is
one line, file:line, exit 2, before anything starts.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

DEFAULT_PERSONAL_FIELDS = (
    "customer_name", "card_number", "email", "phone", "address", "date_of_birth", "patient_name",
    "patient_id", "ssn", "national_id",
)

# key -> (default, kind). Kinds: "seconds"/"number" (number >= 0), "count" (int >= 1), "fields" (list of str).
SCHEMA: dict[str, tuple[Any, str]] = {
    "forward_interval_s": (0.2, "seconds"),      # pause between POS batches, also the first retry delay
    "forward_retry_max_s": (1.0, "seconds"),     # cap of the retry backoff, so a heal is noticed fast
    "forward_batch_size": (100, "count"),
    "cache_ttl_s": (5.0, "seconds"),
    "cache_fetch_timeout_s": (1.0, "seconds"),   # a user waits on this one: shorter than wan_timeout_s
    "wan_breaker_s": (2.0, "seconds"),           # after a WAN failure, serve stale at once for this long
    "telemetry_window_s": (1.0, "seconds"),
    "heartbeat_interval_s": (1.0, "seconds"),
    "config_poll_interval_s": (1.0, "seconds"),
    "key_refresh_interval_s": (10.0, "seconds"),
    "wan_connect_timeout_s": (1.0, "seconds"),
    "wan_timeout_s": (2.0, "seconds"),
    "lazy_write_delay_s": (3.0, "seconds"),      # only used by the no-fsync defect
    "slow_path_ms": (25.0, "number"),            # only used by the slow-path defect
    "blocking_io_ms": (8.0, "number"),           # only used by the blocking-io defect
    "token_ttl_s": (3600.0, "seconds"),          # central: lifetime of issued tokens
    "personal_fields": (list(DEFAULT_PERSONAL_FIELDS), "fields"),
}


class SettingsError(ValueError):
    pass


def _check(key: str, value: Any) -> Any:
    kind = SCHEMA[key][1]
    if kind == "fields":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise SettingsError(f"{key}: expected a list of field names, got {value!r}")
        return list(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"{key}: expected a number, got {value!r}")
    if kind == "count":
        if value != int(value) or value < 1:
            raise SettingsError(f"{key}: expected a whole number >= 1, got {value!r}")
        return int(value)
    if value < 0:
        raise SettingsError(f"{key}: expected a number >= 0, got {value!r}")
    return float(value)


def check_settings(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides, checked and normalised, or SettingsError naming the first bad key."""
    out = {}
    for key, value in overrides.items():
        if key not in SCHEMA:
            close = difflib.get_close_matches(str(key), SCHEMA, n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise SettingsError(f'{key}: unknown setting{hint}; known: {", ".join(sorted(SCHEMA))}')
        out[key] = _check(key, value)
    return out


class Settings:
    """Current values; attribute access (settings.cache_ttl_s) reads the live value."""

    def __init__(self, overrides: dict[str, Any] | None = None):
        self._values = {key: default for key, (default, _) in SCHEMA.items()}
        self._values["personal_fields"] = list(DEFAULT_PERSONAL_FIELDS)
        self._values.update(check_settings(overrides or {}))
        self._initial = dict(self._values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["_values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def apply_pushed(self, pushed: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """Apply config from central on top of the start-up values.

        Returns (applied keys, {ignored key: why}). A bad or unknown key never stops the rest from
        being applied: one typo in a fleet-wide push must not freeze every site on its old config.
        """
        values = dict(self._initial)
        applied, ignored = [], {}
        for key, value in pushed.items():
            if key not in SCHEMA:
                ignored[key] = "unknown setting"
                continue
            try:
                values[key] = _check(key, value)
                applied.append(key)
            except SettingsError as exc:
                ignored[key] = str(exc)
        self._values = values
        return applied, ignored
