"""Defaults for the plugin's --edge-* options from pytest's configuration file.

A team that always checks the same profile against the same lab writes it once, in pytest.ini,
tox.ini, setup.cfg or pyproject.toml ([tool.pytest.ini_options]), as `edge_<option>`:

    [pytest]
    edge_profile = retail
    edge_target = lab/target.yaml
    edge_suite = functional latency

An option given on the command line wins over its ini value. A relative path is taken from the
configuration file's directory (pytest may be run from anywhere below it), as pytest itself does for
`testpaths`. The values end up in the options as if typed, so the run's scope records them the same
way; `edge-conformance run` uses its own configuration file and never reads these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..model.profile import is_path_ref


@dataclass(frozen=True)
class IniOption:
    option: str          # the command-line option, "--edge-target"
    kind: str            # "list" (repeatable), "bool" (a flag), "int", "string"
    path: bool = False   # a path (or, for "list"/"string", possibly one): relative to the ini file

    @property
    def name(self) -> str:
        return self.option.removeprefix("--").replace("-", "_")

    @property
    def dest(self) -> str:
        return self.name


INI_OPTIONS = (
    IniOption("--edge-profile", "list", path=True),
    IniOption("--edge-target", "string", path=True),
    IniOption("--edge-inventory", "string", path=True),
    IniOption("--edge-out", "string", path=True),
    IniOption("--edge-site", "list"),
    IniOption("--edge-suite", "list"),
    IniOption("--edge-strict", "bool"),
    IniOption("--edge-waivers", "string", path=True),
    IniOption("--edge-backend", "string"),
    IniOption("--edge-defect", "list"),
    IniOption("--edge-allow-faults", "bool"),
    IniOption("--edge-deploy-probes", "bool"),
    IniOption("--edge-load-workers", "int"),
    IniOption("--edge-load-remote-workers", "int"),
    IniOption("--edge-load-master", "string"),
    IniOption("--edge-shard", "string"),
    IniOption("--edge-only", "list"),
    IniOption("--edge-requirement", "list"),
    IniOption("--edge-duration-scale", "string"),
)

# pytest's ini types; "int" values are read as strings, so that a bad one is named with its file and key
_INI_TYPE: dict[str, Any] = {"list": "args", "bool": "bool", "int": "string", "string": "string"}


def add_ini(parser: pytest.Parser) -> None:
    """Register `edge_<option>` for every option of INI_OPTIONS."""
    for o in INI_OPTIONS:
        parser.addini(o.name, f"default for {o.option} (the command line wins)", type=_INI_TYPE[o.kind])


def apply_ini(config: pytest.Config) -> list[str]:
    """Set every option not given on the command line from its ini value; the options so set."""
    applied = []
    for o in INI_OPTIONS:
        value = config.getini(o.name)
        if value in ("", [], False, None):
            continue
        if given(config, o):
            continue
        setattr(config.option, o.dest, _convert(config, o, value))
        applied.append(o.option)
    return applied


def given(config: pytest.Config, o: IniOption) -> bool:
    """On the command line (or in addopts, which leave a value other than the option's default)."""
    if any(a == o.option or str(a).startswith(o.option + "=") for a in config.invocation_params.args):
        return True
    return getattr(config.option, o.dest) not in (None, [], False, "", 0, _DEFAULTS.get(o.option))


_DEFAULTS = {"--edge-backend": "local"}


def _convert(config: pytest.Config, o: IniOption, value):
    where = f"{config.inipath or 'the pytest configuration file'}: {o.name}"
    if o.kind == "int":
        try:
            return int(str(value).strip())
        except ValueError:
            raise pytest.UsageError(f"{where}: expected a whole number, got {value!r}") from None
    if o.option == "--edge-backend" and value not in ("local", "docker"):
        raise pytest.UsageError(f"{where}: expected local or docker, got {value!r}")
    if not o.path or config.inipath is None:
        return value
    if o.kind == "list":
        return [_from_ini_dir(config.inipath, v, o) for v in value]
    return _from_ini_dir(config.inipath, value, o)


def _from_ini_dir(inipath: Path, value: str, o: IniOption) -> str:
    """A relative path as seen from the ini file's directory; a profile name or `emulated[:...]` as is."""
    if Path(value).is_absolute():
        return value
    if o.option == "--edge-target" and value.startswith("emulated"):
        return value
    if o.option == "--edge-profile" and not is_path_ref(value):
        return value  # a shipped profile's name
    return str(inipath.parent / value)
