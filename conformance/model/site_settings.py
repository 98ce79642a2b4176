"""The settings an emulated site accepts (topology `config:`, --site-config, config pushed by central).

Kept in model/ so a topology file is validated on load (file:line, exit 2) with the same rules the
site applies when it starts (conformance/emulation/workloads/settings.py uses these).
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
