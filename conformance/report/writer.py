"""Reading results.json and writing the report files next to it.

Every format is one entry of RENDERERS (name -> file name and render function); `render`, `write_reports`
and the certification bundle (certify/bundle.py, which embeds the written reports) all go through it.
Files are written atomically with model/atomicfile.py, mode PUBLIC (0644: reports are shared as CI
artifacts), so a CI job that picks up junit.xml while a run is being re-rendered never sees half a
file. Every file this package or `bundle` writes is first checked by `check_output_path`.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..model import results as R
from ..model.atomicfile import PUBLIC, write_atomic, write_atomic_with
from ..model.boundedio import MAX_JSON_BYTES, parse_json, read_text_input
from ..model.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Renderer:
    """One report format: `results -> text`, imported when first used (the HTML renderer pulls in pygal,
    which `report --format junit` never needs)."""

    file: str | None  # its name in a run's output directory; None: shown, never written (terminal)
    module: str  # relative to this package
    function: str

    def __call__(self, results: dict, **options) -> str:
        return getattr(importlib.import_module(self.module, __package__), self.function)(results, **options)


# Adding a format is one entry here.
RENDERERS: dict[str, Renderer] = {
    "junit": Renderer("junit.xml", ".junit", "render_junit"),
    "md": Renderer("summary.md", ".markdown", "render_markdown"),
    "html": Renderer("report.html", ".html", "render_html"),
    "css": Renderer("report.css", ".html", "render_css"),  # report.html's stylesheet, for strict CSPs
    "terminal": Renderer(None, ".terminal", "render_terminal"),
}
FILES = {name: r.file for name, r in RENDERERS.items() if r.file}  # the formats written into a run's directory
DEFAULT_FORMATS = tuple(FILES)


def render(results: dict, fmt: str, color: bool | None = None) -> str:
    """One report as text: "junit", "md", "html" or "terminal" (colour: None = when stdout is a TTY)."""
    if fmt == "terminal":
        if color is None:
            color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        return RENDERERS[fmt](results, color=color)
    _check_formats([fmt])
    return RENDERERS[fmt](results)


def _check_formats(formats: list[str]) -> None:
    files = [name for name, r in RENDERERS.items() if r.file]
    for fmt in formats:
        if fmt not in files:
            raise ConfigError(None, None, "formats", f'unknown report format "{fmt}"{did_you_mean(fmt, files)} '
                                                     f"(known: {', '.join(files)})")


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
        path = out_dir / RENDERERS[fmt].file
        write_report_file(path, RENDERERS[fmt](results))
        written[fmt] = path
    return written


def remove_reports(out_dir: Path) -> list[Path]:
    """Remove an earlier run's reports (junit.xml, summary.md, report.html) from a run's directory as the
    new run starts: its results.json is the new run's from its first second, and a run that ends before
    it writes its own reports (Ctrl-C, a crash, a killed job) must not leave the old ones looking like
    its own. Only the files this harness writes there, and only regular files."""
    removed = []
    for name in FILES.values():
        path = Path(out_dir) / name
        try:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
        except OSError:
            pass  # not ours to fight over: the new run's reports overwrite it at the end
    return removed


# What `report` suggests to someone who gave a directory for one report; other commands (`metrics`)
# write exactly one file and pass directory_hint="".
ALL_INTO_DIRECTORY = " (or --format all --out DIR to write every report into a directory)"


@dataclass(frozen=True)
class OutputKind:
    """What check_output_path and write_output say about one kind of file, and which existing file of
    that name may be replaced."""

    what: str  # "" for a report, " the bundle": in "cannot write{what}: ..."
    on_directory: str  # after "is a directory"
    on_protected: str  # the path is the results file being read
    replaceable: Callable[[Path], bool]  # an existing regular file at the path that may be replaced
    on_other: str  # an existing file that may not


def _not_a_results_record(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return True
    return not (b'"schema"' in head and b"edge-conformance/results/" in head)


REPORT = OutputKind(
    what="", on_directory=": give a file name" + ALL_INTO_DIRECTORY,
    on_protected="is the results file being rendered: writing a report over it would replace the run's record; "
                 "give another file",
    replaceable=_not_a_results_record,
    on_other="is a run's results.json: writing a report over it would replace what was measured; give another file")


def check_output_path(path: str | Path, *, protect: Iterable[str | Path] = (), kind: OutputKind = REPORT,
                      directory_hint: str | None = None) -> Path:
    """Refuse (ConfigError) an output path whose file would be lost, before anything is rendered: a
    directory, a FIFO or device, the results file being read (`protect`), or an existing file `kind`
    may not replace (a report: any run's results.json; a bundle: anything but an earlier bundle).
    `directory_hint` replaces what `kind` says after "is a directory"."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        hint = kind.on_directory if directory_hint is None else (": give a file name" + directory_hint)
        raise ConfigError(where, None, None, f"is a directory{hint}")
    if not path.exists():
        return path
    if not path.is_file():
        raise ConfigError(where, None, None, "is not a regular file (a FIFO, device or socket): give a file name")
    for other in protect:
        try:
            same = path.samefile(other)
        except OSError:
            same = False
        if same:
            raise ConfigError(where, None, None, kind.on_protected)
    if not kind.replaceable(path):
        raise ConfigError(where, None, None, kind.on_other)
    return path


def write_output(path: str | Path, data: str | bytes | Callable[[IO[bytes]], object], *,
                 protect: Iterable[str | Path] = (), kind: OutputKind = REPORT,
                 directory_hint: str | None = None) -> Path:
    """check_output_path, then write `data` (text, bytes, or a function streaming into the file) atomically,
    mode PUBLIC; a path that cannot be written (its folder is a file, no permission, disk full) is one
    ConfigError line."""
    path = check_output_path(path, protect=protect, kind=kind, directory_hint=directory_hint)
    try:
        if callable(data):
            write_atomic_with(path, data, mode=PUBLIC)
        else:
            write_atomic(path, data, mode=PUBLIC)
    except OSError as exc:
        raise ConfigError(str(path), None, None, f"cannot write{kind.what}: {_why(exc)}") from None
    return path


def write_report_file(path: str | Path, text: str, *, protect: Iterable[str | Path] = (),
                      directory_hint: str = ALL_INTO_DIRECTORY) -> Path:
    """Write one report atomically to `path` (write_output for a report)."""
    return write_output(path, text, protect=protect, directory_hint=directory_hint)


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a part of the path is a file, not a directory"
    return exc.strerror or str(exc)


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
