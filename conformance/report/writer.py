"""Reading results.json and writing the report files next to it.

Files are written atomically (temp file in the same directory + os.replace), so a CI job that picks up
junit.xml while a run is being re-rendered never sees half a file.
"""

from __future__ import annotations

import errno
import json
import os
import re
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
    """Render each format and write it into out_dir; returns {format: path written}.

    A path that is not a directory, or cannot be written, is a ConfigError (one line, exit 2)."""
    formats = list(formats)
    _check_formats(formats)  # all of them before writing any
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(str(out_dir), None, None, "is not a directory: the reports (junit.xml, summary.md, "
                                                    "report.html) are written into a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(str(out_dir), None, None, f"cannot create the directory: {_why(exc)}") from None
    written = {}
    for fmt in formats:
        path = out_dir / FILES[fmt]
        write_report_file(path, _renderer(fmt)(results))
        written[fmt] = path
    return written


# What `report` suggests to someone who gave a directory for one report; other commands (`metrics`)
# write exactly one file and pass directory_hint="".
ALL_INTO_DIRECTORY = " (or --format all --out DIR to write every report into a directory)"


def write_report_file(path: str | Path, text: str, *, protect: Iterable[str | Path] = (),
                      directory_hint: str = ALL_INTO_DIRECTORY) -> Path:
    """Write one report atomically to `path`, refusing (ConfigError) what would lose something:

    a directory, a FIFO or device, the results file being rendered (`protect`) or any other run's
    results.json (a report written over it would replace what was measured), or a path that cannot be
    written (its folder is a file, no permission, disk full)."""
    path = check_report_path(path, protect=protect, directory_hint=directory_hint)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise ConfigError(str(path), None, None, f"cannot write: {_why(exc)}") from None
    return path


def check_report_path(path: str | Path, *, protect: Iterable[str | Path] = (),
                      directory_hint: str = ALL_INTO_DIRECTORY) -> Path:
    """write_report_file's refusals, before anything is rendered (used by every command's --out FILE)."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        raise ConfigError(where, None, None, f"is a directory: give a file name{directory_hint}")
    if path.exists():
        if not path.is_file():
            raise ConfigError(where, None, None, "is not a regular file (a FIFO, device or socket): give a file name")
        for other in protect:
            try:
                same = path.samefile(other)
            except OSError:
                same = False
            if same:
                raise ConfigError(where, None, None, "is the results file being rendered: writing a report over it "
                                                     "would replace the run's record; give another file")
        if _is_results_record(path):
            raise ConfigError(where, None, None, "is a run's results.json: writing a report over it would replace "
                                                 "what was measured; give another file")
    return path


def _is_results_record(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b'"schema"' in head and b"edge-conformance/results/" in head


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a part of the path is a file, not a directory"
    return exc.strerror or str(exc)


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
    return read_results(path, legacy=legacy)[0]


def read_results(path: str | Path, *, legacy: bool = True) -> tuple[dict, str]:
    """load_results, and the file's text (to say on which line a field is wrong)."""
    source = str(path)
    # bounded: regular files only, size and nesting limits, no NaN (model/boundedio.py)
    try:
        text = read_text_input(path, source, limit=MAX_JSON_BYTES, what="results.json")
    except ConfigError as e:
        raise ConfigError(source, None, None, f"cannot read results: {e.message}") from None
    return parse_results(text, source, legacy=legacy), text


def parse_results(text: str | bytes, source: str, *, legacy: bool = True) -> dict:
    """A results.json document from its text (a file's, or a bundle member's); `source` names it."""
    try:
        data = parse_json(text, source)
    except ConfigError as e:
        if e.line is None and "not a number JSON allows" in e.message:  # NaN, Infinity: say where
            line = _constant_line(text if isinstance(text, str) else text.decode("utf-8", "replace"))
            raise ConfigError(source, line, e.field, e.message) from None
        raise
    return check_document(data, source, legacy=legacy)


def check_document(data: object, source: str, *, legacy: bool = True) -> dict:
    """What parse_results checks once the JSON is parsed: an object of a known results schema."""
    if not isinstance(data, dict):
        raise ConfigError(source, 1, None, "not a results.json: expected a JSON object")
    if "schema" not in data:
        raise ConfigError(source, None, "schema", f'missing; a results.json has "schema": "{R.SCHEMA}"')
    if data["schema"] in R.LEGACY_SCHEMAS and not legacy:
        raise ConfigError(source, None, "schema", f'"{data["schema"]}" is from an older harness: this needs '
                          f'"{R.SCHEMA}" (edge-conformance report still renders it); run it again')
    if data["schema"] != R.SCHEMA and data["schema"] not in R.LEGACY_SCHEMAS:
        raise ConfigError(source, None, "schema", f'unknown results schema {_shown(data["schema"])}'
                          f'{did_you_mean(str(data["schema"]), [R.SCHEMA])} (this harness reads "{R.SCHEMA}")')
    if not isinstance(data.get("requirements", []), list):
        raise ConfigError(source, None, "requirements", "expected a list")
    return data


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def _constant_line(text: str) -> int | None:
    """The line of the first NaN or Infinity outside a string (strings are skipped whole)."""
    for m in _TOKENS.finditer(text):
        if m.group(1):
            return text.count("\n", 0, m.start()) + 1
    return None


def _shown(value: object) -> str:
    """A value from the file, quoted and cut, on one line (control characters escaped)."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 80 else text[:77] + "..."
