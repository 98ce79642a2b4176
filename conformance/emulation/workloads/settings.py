"""Tunable settings of a site: defaults, --site-config validation, and config pushed by central.

One flat set of keys serves both sources so an operator can start a site with a value and later push
another. Defaults are short (seconds, not minutes) because emulated runs are short.
"""

from __future__ import annotations

from typing import Any

# The rules live in model/ so that a topology's `config:` is validated on load with the same ones.
from ...model.site_settings import DEFAULT_PERSONAL_FIELDS, SCHEMA, SettingsError, _check, check_settings  # noqa: F401


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
