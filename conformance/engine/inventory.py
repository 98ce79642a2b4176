"""Load a Target from an Ansible inventory: Ansible parses it, model/inventory.py maps it.

`ansible-inventory -i FILE --list` is the one child process of loading a target (so it lives here, not
in model/, which only parses): with a timeout, no stdin, Ansible's colours and verbosity off, and
ANSIBLE_INVENTORY_UNPARSED_FAILED set, so that a file Ansible cannot parse is an error and not an empty
inventory. It may be a file or an inventory directory. Whatever goes wrong is one ConfigError line (exit
2): no ansible-inventory (install the `ansible` extra), a file that is not there or not a regular file,
Ansible's own parse error (with its line when it gives one), a timeout. The answer for a file is kept per
(path, size, mtime) for the process, so `run` checking its inputs and the plugin opening the target ask
Ansible once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..model.boundedio import MIB, read_input
from ..model.errors import ConfigError
from ..model.inventory import target_from_inventory
from ..model.target import Target

TIMEOUT_S = 60.0
MAX_INVENTORY_BYTES = 16 * MIB
MAX_OUTPUT_BYTES = 64 * MIB
_cache: dict[tuple, dict] = {}


def load_inventory(path: str | Path, *, option: str = "--inventory", timeout: float = TIMEOUT_S) -> Target:
    """The Target of an Ansible inventory file (ConfigError, one located line, on any problem)."""
    source = str(path)
    if Path(path).is_dir():  # an inventory directory (hosts files, group_vars/ ...): Ansible reads it all
        text = ""  # no one file's lines: errors name the directory and the host
    else:
        text = read_input(path, source, limit=MAX_INVENTORY_BYTES, what="Ansible inventory").decode("utf-8", "replace")
    absolute = str(Path(path).resolve())
    data = list_inventory(absolute, source, option=option, timeout=timeout)
    return target_from_inventory(data, source, text, absolute)


def list_inventory(path: str, source: str, *, option: str = "--inventory", timeout: float = TIMEOUT_S) -> dict:
    """`ansible-inventory -i PATH --list`, as JSON."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns) if not os.path.isdir(path) else None  # a directory's files may change
    if key in _cache:
        return _cache[key]
    exe = shutil.which("ansible-inventory")
    if exe is None:
        raise ConfigError(None, None, option, "ansible-inventory is not installed here, and the inventory is read "
                                              "by Ansible itself: pip install 'edge-conformance[ansible]' "
                                              "(ansible-core)")
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_VERBOSITY": "0",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_DEPRECATION_WARNINGS": "False"}
    try:
        proc = subprocess.run([exe, "-i", path, "--list"], stdin=subprocess.DEVNULL, capture_output=True,
                              env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(source, None, None, f"ansible-inventory did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise ConfigError(None, None, option, f"cannot run ansible-inventory: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        raise parse_error(proc.stderr.decode("utf-8", "replace"), source, path)
    if len(proc.stdout) > MAX_OUTPUT_BYTES:
        raise ConfigError(source, None, None, "ansible-inventory's answer is too big")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise ConfigError(source, None, None, "ansible-inventory did not answer with JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(source, None, None, "ansible-inventory did not answer with a JSON object")
    if key is not None:
        _cache[key] = data
    return data


_FAILED = re.compile(r"Failed to parse inventory with '(?P<plugin>[\w.]+)' plugin: (?P<msg>.+)")
_ORIGIN = re.compile(r"^Origin: (?P<file>.+?):(?P<line>\d+)(?::\d+)?$")  # ansible-core >= 2.19
_LOCATED = re.compile(r"(?P<file>/[^\s:]+):(?P<line>\d+):\s*(?P<msg>[^\d\s].*)")  # older ansible-core


def parse_error(stderr: str, source: str, path: str) -> ConfigError:
    """Ansible's complaint about an inventory, in one line: the parser that fits the file's kind (yaml for
    .yml/.yaml, else ini) first, with the line Ansible gives (`Origin: FILE:LINE:COL`, or `FILE:LINE:`)."""
    lines = [re.sub(r"\s+", " ", ln).strip() for ln in stderr.splitlines() if ln.strip()]
    tries: list[tuple[str, str, int | None]] = []  # (plugin, message, line)
    for ln in lines:
        m = _FAILED.search(ln)
        if m:
            if ln.startswith("[WARNING]") or not tries:
                tries.append((m["plugin"], m["msg"].strip(), None))
            continue
        o = _ORIGIN.match(ln)
        if o and tries and tries[-1][2] is None and os.path.realpath(o["file"]) == path:
            plugin, msg, _ = tries[-1]
            tries[-1] = (plugin, msg, int(o["line"]))
            continue
        m = _LOCATED.search(ln)
        if m and os.path.realpath(m["file"]) == path and not tries:
            return ConfigError(source, int(m["line"]), None, _clean(m["msg"]))
    if tries:
        kinds = ("yaml", "auto") if path.endswith((".yml", ".yaml")) else ("ini",)
        plugin, msg, line = sorted(tries, key=lambda t: (t[0] not in kinds, t[2] is None))[0]
        msg = msg.removeprefix("Failed to parse inventory: ").replace(path, "").replace(source, "")
        return ConfigError(source, line, None, f"not an inventory Ansible can read ({plugin}): {_clean(msg)}")
    useful = [ln for ln in lines if not ln.startswith(_NOISE) and not ln.lower().startswith("to see the full")]
    detail = _clean((useful[0] if useful else "").replace(path, "").replace(source, "")) or "Ansible could not read it"
    return ConfigError(source, None, None, f"not an inventory Ansible can read: {detail}")


_NOISE = ("[WARNING]: Unable to parse", "[WARNING]: No inventory was parsed", "[ERROR]: No inventory was parsed",
          "[ERROR]: Completely failed")


def _clean(text: str) -> str:
    text = re.sub(r"^\[(WARNING|ERROR)\]:\s*", "", text).strip()
    text = re.sub(r"^\*\s*", "", text)
    return text[:300]
