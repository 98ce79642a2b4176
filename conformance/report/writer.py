"""Reading results.json and writing the report files next to it.

Files are written atomically (temp file in the same directory + os.replace), so a CI job that picks up
junit.xml while a run is being re-rendered never sees half a file.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..model import results as R
from ..model.boundedio import MAX_JSON_BYTES, parse_json, read_text_input
from ..model.errors import ConfigError, did_you_mean

FILES = {"junit": "junit.xml", "md": "summary.md", "html": "report.html"}
DEFAULT_FORMATS = ("junit", "md", "html")


def _renderer(fmt: str) -> Callable[[dict], str]:
    # Imported on demand: the HTML renderer pulls in pygal, which `report --format junit` never needs.
    if fmt == "junit":
        from .junit import render_junit
        return render_junit
    if fmt == "md":
        from .markdown import render_markdown
        return render_markdown
    from .html import render_html
    return render_html


def render(results: dict, fmt: str, color: bool | None = None) -> str:
    """One report as text: "junit", "md", "html" or "terminal" (colour: None = when stdout is a TTY)."""
    if fmt == "terminal":
        from .terminal import render_terminal
        if color is None:
            color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        return render_terminal(results, color=color)
    _check_formats([fmt])
    return _renderer(fmt)(results)


def _check_formats(formats: list[str]) -> None:
    for fmt in formats:
        if fmt not in FILES:
            known = ", ".join(FILES)
            raise ConfigError(None, None, "formats",
                              f'unknown report format "{fmt}"{did_you_mean(fmt, FILES)} (known: {known})')


def write_reports(results: dict, out_dir: Path, formats: Iterable[str] = DEFAULT_FORMATS) -> dict[str, Path]:
    """Render each format and write it into out_dir; returns {format: path written}."""
    formats = list(formats)
    _check_formats(formats)  # all of them before writing any
    out_dir = Path(out_dir)
    written = {}
    for fmt in formats:
        path = out_dir / FILES[fmt]
        atomic_write_text(path, _renderer(fmt)(results))
        written[fmt] = path
    return written


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are meant to be shared as CI artifacts
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_results(path: str | Path, *, legacy: bool = True) -> dict:
    """Parse a results.json; any problem is a ConfigError naming the file (CLI: one line, exit 2).

    `legacy`: also accept files of older schemas (R.LEGACY_SCHEMAS; v1 has "skip"), which every renderer
    still shows. Callers that write results back or judge them again (re-runs, bundles) pass False: a
    v1 record merged with v2 results would be neither."""
    source = str(path)
    # bounded: regular files only, size and nesting limits, no NaN (model/boundedio.py)
    try:
        text = read_text_input(path, source, limit=MAX_JSON_BYTES, what="results.json")
    except ConfigError as e:
        raise ConfigError(source, None, None, f"cannot read results: {e.message}") from None
    data = parse_json(text, source)
    if not isinstance(data, dict):
        raise ConfigError(source, 1, None, "not a results.json: expected a JSON object")
    if "schema" not in data:
        raise ConfigError(source, None, "schema", f'missing; a results.json has "schema": "{R.SCHEMA}"')
    if data["schema"] in R.LEGACY_SCHEMAS and not legacy:
        raise ConfigError(source, None, "schema", f'"{data["schema"]}" is from an older harness: this needs '
                          f'"{R.SCHEMA}" (edge-conformance report still renders it); run it again')
    if data["schema"] != R.SCHEMA and data["schema"] not in R.LEGACY_SCHEMAS:
        raise ConfigError(source, None, "schema", f'unknown results schema "{data["schema"]}"'
                          f'{did_you_mean(data["schema"], [R.SCHEMA])} (this harness reads "{R.SCHEMA}")')
    if not isinstance(data.get("requirements", []), list):
        raise ConfigError(source, None, "requirements", "expected a list")
    return data
