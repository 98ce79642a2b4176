"""Reading results.json in tests."""

from __future__ import annotations

import json
from pathlib import Path


def read_results(out: Path, code: int | None = None, output: str = "") -> dict:
    """OUT/results.json; a test failure naming the exit code and the output's tail when there is none."""
    path = Path(out) / "results.json"
    assert path.exists(), f"no results.json (exit {code}):\n{output[-3000:]}"
    return json.loads(path.read_text())


def read_json(path: Path) -> dict | None:
    """A JSON file being written by a run: None while it is missing or incomplete."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def validate_results(data: dict) -> None:
    """results.json against the shipped schema (jsonschema's error when it is not)."""
    import jsonschema

    from conformance.model.paths import schemas_dir

    schema = json.loads((schemas_dir() / "results.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)


def entry(results: dict, rid: str, site: str | None = None) -> dict:
    """The entry of requirement `rid` at `site` (None: its first entry)."""
    for r in results["requirements"]:
        if r["id"] == rid and (site is None or r["site"] == site):
            return r
    raise AssertionError(f"no result for {rid}@{site}: "
                         f"{sorted((r['id'], r['site']) for r in results['requirements'])}")


def entries(results: dict, prefix: str = "") -> dict[tuple[str, str], dict]:
    """(requirement id, site) -> entry, for requirements whose id starts with `prefix`."""
    return {(r["id"], r["site"]): r for r in results["requirements"] if r["id"].startswith(prefix)}


def measured(r: dict, metric: str) -> float:
    """A measured metric: times in ms, ratios in %, rates in rps, counts as they are."""
    m = r["measured"].get(metric)
    assert m is not None, f"{r['id']}@{r['site']}: {metric} not measured ({r['status']}: {r['message']})"
    factor = {"us": 1e-3, "ms": 1.0, "s": 1e3}.get(m["unit"], 1.0)
    return m["value"] * factor


def left_out(r: dict) -> bool:
    """An entry the run's own options (--site, --suite, --requirement) left out: not measured, never a
    pass, and not a check that could not measure."""
    return r["status"] == "not-measured" and "left out of this run" in (r.get("ended") or {}).get("reason", "")


def starved(r: dict) -> bool:
    """Inconclusive because the harness's machine was starved while measuring (the verdict rule's
    contention excuse, with the pressure evidence that grounds it): what a healthy site's tail may get on
    a busy shared runner instead of a pass. A fail never counts as this. For load.capacity: the step that
    broke the budget did so on a starved machine, so max_rps is only a lower bound."""
    from conformance.model.verdict import starved_resources

    if r["status"] != "inconclusive":
        return False
    if "starved while measuring" in r["message"]:
        return any(v.get("kind") == "pressure" and starved_resources(v) for v in r.get("validity", []))
    steps = ((r.get("raw") or {}).get("capacity") or {}).get("steps") or [{}]
    machine = steps[-1].get("machine") or {}
    return "on a starved machine" in r["message"] and bool(starved_resources(
        {res: machine.get(f"{res}_some_percent") for res in ("cpu", "io", "memory")}))
