"""Bounded reading of every file the harness is given: regular files only, size and depth limits.

Input files come from users, CI jobs and, for `verify`, from whoever made a bundle. A FIFO given as a
target blocks forever, /dev/zero never ends, a 50 MB YAML file takes minutes to parse, a few lines of
YAML aliases ("billion laughs") expand to gigabytes, and 100,000 nested brackets overflow the stack.
Every read of an input file goes through `read_input`, every JSON document through `parse_json`, and
YAML through model/yamlfile.py, which uses the limits below. Each refusal is a ConfigError: one line
naming the file and what is wrong, exit 2.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ConfigError

KIB, MIB = 1024, 1024 * 1024
# A profile, target, topology or waivers file. A generated target of 4,000 sites is about 2 MiB; the
# line-aware YAML loader reads about 1 MiB a second on a busy 2-core runner.
MAX_YAML_BYTES = 4 * MIB
# results.json and bundle manifests: a fleet-1000 run with raw histograms stays well below this.
MAX_JSON_BYTES = 64 * MIB
# Nesting deeper than this is never a real profile, target or result (they nest about 10 deep).
MAX_DEPTH = 64
# Values a YAML document may expand to through aliases (a fleet-1000 target has about 20,000).
MAX_YAML_VALUES = 500_000


def read_input(path: str | Path, display: str | None = None, *, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or a one-line ConfigError."""
    display = display or str(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise block here forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(display, None, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(display, None, None, f"is a directory, expected a {what}") from None
    except OSError as exc:
        raise ConfigError(display, None, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(display, None, None, f"is a directory, expected a {what}")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(display, None, None,
                              f"is not a regular file (a FIFO, device or socket), expected a {what}")
        if st.st_size > limit:
            raise ConfigError(display, None, None,
                              f"is {_size(st.st_size)}, more than a {what} may be ({_size(limit)})")
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 * MIB, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while we read it
                raise ConfigError(display, None, None, f"is more than a {what} may be ({_size(limit)})")
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError(display, None, None, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text_input(path: str | Path, display: str | None = None, *, limit: int, what: str = "file") -> str:
    display = display or str(path)
    data = read_input(path, display, limit=limit, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(display, None, None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: valid JSON syntax, infinity in Python
        raise ValueError(f"{text} is out of range")
    return value


def parse_json(data: bytes | str, display: str, *, limit: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON document within the size and depth limits, without NaN or Infinity."""
    if len(data) > limit:
        raise ConfigError(display, None, None, f"is {_size(len(data))}, more than it may be ({_size(limit)})")
    try:
        doc = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ConfigError(display, None, None, f"is nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(display, exc.lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(display, None, None, f"invalid JSON: {exc}") from None
    if depth(doc, max_depth) > max_depth:
        raise ConfigError(display, None, None, f"is nested more than {max_depth} levels deep")
    return doc


def load_json_file(path: str | Path, display: str | None = None, *, limit: int = MAX_JSON_BYTES) -> Any:
    display = display or str(path)
    return parse_json(read_input(path, display, limit=limit, what="JSON file"), display, limit=limit)


def depth(doc: Any, stop: int = MAX_DEPTH) -> int:
    """How deep containers nest, counted up to just past `stop` (iteratively: the document may be
    deeper than the stack)."""
    deepest, todo = 0, [(doc, 1)]
    while todo:
        node, depth = todo.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop:
            return deepest
        todo.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def finite(value: Any) -> bool:
    """A real number that is neither NaN nor infinite (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / KIB:.0f} KiB" if n >= KIB else f"{n} bytes"
