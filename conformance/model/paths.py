"""Where the shipped suites, profiles and schemas are.

In a wheel, suites/ and profiles/ are installed inside the package (conformance/suites,
conformance/profiles; see pyproject.toml). In a checkout (editable install) they sit at the top of
the repository, next to the package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _data_dir(name: str) -> Path:
    inside = PACKAGE_DIR / name
    if inside.is_dir():
        return inside
    return PACKAGE_DIR.parent / name


def profiles_dir() -> Path:
    return _data_dir("profiles")


def suites_dir() -> Path:
    return _data_dir("suites")


def suite_names() -> list[str]:
    """The shipped suites (functional, latency, ...): the directories of suites_dir()."""
    return sorted(p.name for p in suites_dir().iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def schemas_dir() -> Path:
    return Path(__file__).resolve().parent / "schemas"
