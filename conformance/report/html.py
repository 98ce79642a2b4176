"""report.html: one self-contained page for certification reviewers (inline CSS, JS and SVG).

The page is mailed around and opened offline, so it references nothing outside itself. Everything
that came from the target or a measurement goes through jinja2's autoescaping; the only markup not
escaped by the template is pygal's SVG, which pygal builds with ElementTree (so its text is escaped)
and which charts.py strips of scripts. A Content-Security-Policy with a per-page nonce makes sure that
only the page's own filter script can run, even if a future change let target text through unescaped.
"""

from __future__ import annotations

import functools
import json
import secrets
from pathlib import Path

import jinja2
from markupsafe import Markup

from . import charts as C
from . import latency as L
from . import view as V

_TEMPLATES = Path(__file__).parent / "templates"


@functools.lru_cache(maxsize=1)  # compiling the template costs more than rendering it
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(results: dict) -> str:
    return _env().get_template("report.html.j2").render(page=_page(results), nonce=secrets.token_urlsafe(18))


def render_css(results: dict) -> str:
    """report.css, written beside report.html: the page's stylesheet, for servers whose
    Content-Security-Policy refuses the inline copy (the same rules; the results do not change it)."""
    return _env().get_template("report.css").render() + "\n"  # what report.html.j2 includes, as a file


def _page(results: dict) -> dict:
    reqs = V.requirements(results)
    strict = V.strict(results)
    sources = V.source_index(results)
    rows = [_row(i, r, strict, sources) for i, r in enumerate(reqs)]
    by_identity = {id(r): row for r, row in zip(reqs, rows)}  # problem_groups returns these same dicts
    scope = V.Scope(results)
    return {
        "verdict": V.verdict_word(results),
        "verdict_class": V.clean(results.get("verdict")) or "unknown",
        "verdict_reason": V.verdict_reason(results) if results.get("verdict") != "conformant" else "",
        "remedies": V.remedies(results),
        "scope": {"word": scope.word, "headline": scope.headline, "changed": scope.changed},
        "strict": strict,
        "state_note": V.state_note(results),
        "facts": _run_facts(results),
        "counts": V.count_items(results),
        "problems": [(key, heading, [by_identity[id(r)] for r in group])
                     for key, heading, group in V.problem_groups(results)],
        # Not measured, grouped by reason and remedy: one item per reason however many it left out.
        "not_measured": [{"reason": reason, "remedy": remedy, "rows": [by_identity[id(r)] for r in group]}
                         for reason, remedy, group in V.not_measured_groups(
                             [r for r in reqs if V.status(r) == "not-measured"])],
        "rows": rows,
        "sampled": [{"row": by_identity[id(r)], "outside": outside} for r, _, outside in V.sampled_fleets(results)],
        "sites": sorted({row["site"] for row in rows}),
        "levels": V.LEVELS,
        "statuses": V.statuses_present(results),
        "measurements": [row for row in rows if row["charts"] or row["sweeps"]],
        "worst": L.worst_sites(results),
        "fmt": V.fmt_value,
        "waivers": _waivers(results),
        "profiles": [_profile(p) for p in V.as_list(results.get("profiles"))],
        "sources": [{"key": k, "citation": V.clean(s.get("citation")), "note": V.clean(s.get("note"))}
                    for k, s in sorted(sources.items(), key=lambda kv: kv[0].lower())],
        "target": _target(results),
        "host": _host(results),
        "calibration_histogram": V.clean(V.as_dict(results.get("calibration")).get("histogram") or ""),
        "options": _options(results),
    }


def _row(i: int, r: dict, strict: bool, sources: dict[str, dict]) -> dict:
    charts = [svg for svg in (C.latency_chart(r), C.timeseries_chart(r)) if svg] + C.sweep_charts(r)
    params = V.as_dict(r.get("params"))
    return {
        "anchor": f"req-{i}",
        "label": V.label(r),
        "id": V.clean(r.get("id") or "?"),
        "title": V.clean(r.get("title")),
        "profile": V.clean(r.get("profile")),
        "site": V.clean(r.get("site") or "?"),
        "role": V.clean(r.get("role")),
        "level": V.level(r),
        "status": V.status(r),
        "advisory": V.is_advisory(r, strict),
        "ended": _ended(r),
        "validity": [_evidence(v) for v in V.as_list(r.get("validity"))],
        "check": V.clean(r.get("check")),
        "measured": V.measured_items(r),
        "expect": V.expected(r),
        "message": V.message(r),
        "sampling": V.sampling_text(r),  # a sampled fleet: the sample and its confidence
        "unsampled": V.is_unsampled(r),  # a site outside a fleet's sample: not run by design
        # Cited sources in full; the free-text `source` only for entries of profiles without `cites`.
        "cites": V.citations(r, sources),
        "basis": V.basis_text(r),
        "source": "" if r.get("cites") or V.as_dict(r.get("basis")).get("kind") not in (None, "unstated")
        else V.clean(r.get("source")),
        "rationale": V.clean(r.get("rationale")),
        "notes": [V.clean(n) for n in V.as_list(r.get("notes"))],
        "params": V.clean(json.dumps(params, indent=1, sort_keys=True, default=str)) if params else "",
        "waiver": V.waiver_text(r["waiver"]) if r.get("waiver") else "",
        "duration": V.fmt_value(r["duration"], "s") if isinstance(r.get("duration"), (int, float)) else "",
        # Markup: pygal's SVG is built with ElementTree, so its text is already escaped (see charts.py).
        "charts": [Markup(svg) for svg in charts],
        "sweeps": [{"param": param, "unit": unit,
                    "rows": [[V.fmt_value(row.get("value")), V.fmt_value(row.get("success_ratio")),
                              V.fmt_value(row.get("duration_s"), "s")] for row in rows]}
                   for param, unit, rows in C.sweeps(r)],
    }


def _ended(r: dict) -> str:
    """'not-measured: no host; to measure it: add a host' for the details of a row ('' if it measured)."""
    e = V.as_dict(r.get("ended"))
    how = V.clean(e.get("how"))
    if not how or how == "measured":
        return ""
    parts = [f"{how}: {V.clean(e.get('reason'))}" if e.get("reason") else how]
    if e.get("remedy"):
        parts.append(f"to measure it: {V.clean(e['remedy'])}")
    return "; ".join(parts)


def _evidence(item) -> str:
    """One piece of validity evidence as text: 'samples: count = 1200'."""
    item = V.as_dict(item)
    fields = ", ".join(f"{V.clean(k)} = {V.clean(v)}" for k, v in item.items() if k != "kind")
    return f"{V.clean(item.get('kind') or '?')}: {fields}" if fields else V.clean(item.get("kind") or "?")


def _run_facts(results: dict) -> list[tuple[str, str]]:
    target = V.as_dict(results.get("target"))
    harness = V.as_dict(results.get("harness"))
    facts = [("run", results.get("run_id")), ("state", results.get("state")),
             ("started", results.get("started")), ("finished", results.get("finished")),
             ("profiles", ", ".join(V.profile_titles(results))),
             ("target", f"{V.clean(target.get('name'))} ({V.clean(target.get('kind'))})" if target else ""),
             ("harness", f"{V.clean(harness.get('name'))} {V.clean(harness.get('version'))}".strip())]
    return [(k, V.clean(v)) for k, v in facts if v]


def _waivers(results: dict) -> dict[str, list[dict]]:
    waivers = V.as_dict(results.get("waivers"))
    keys = ("id", "site", "reason", "who", "expires")
    return {kind: [{k: V.clean(V.as_dict(w).get(k)) for k in keys} for w in V.as_list(waivers.get(kind))]
            for kind in ("applied", "expired")}


def _profile(p) -> dict:
    p = V.as_dict(p)
    return {k: V.clean(p.get(k)) for k in ("id", "version", "title", "sha256", "source")}


def _target(results: dict) -> dict:
    target = V.as_dict(results.get("target"))
    sites = []
    for s in V.as_list(target.get("sites")):
        s = V.as_dict(s)
        hosts = [V.clean(json.dumps(h, sort_keys=True) if isinstance(h, dict) else h)
                 for h in V.as_list(s.get("hosts"))]
        sites.append({"name": V.clean(s.get("name")), "role": V.clean(s.get("role")), "hosts": hosts,
                      "endpoints": [(V.clean(k), V.clean(v)) for k, v in V.as_dict(s.get("endpoints")).items()]})
    return {"name": V.clean(target.get("name")), "kind": V.clean(target.get("kind")),
            "topology": V.clean(target.get("topology")), "sites": sites}


def _host(results: dict) -> list[tuple[str, str]]:
    host = V.as_dict(results.get("host"))
    facts = [(k, V.clean(host.get(k))) for k in ("hostname", "platform", "python", "cpus") if host.get(k) is not None]
    mem = host.get("memory_bytes")
    if isinstance(mem, (int, float)) and mem > 0:
        facts.append(("memory", f"{mem / 1024 ** 3:.1f} GiB"))
    calibration = V.as_dict(results.get("calibration"))
    # The encoded histogram is data, not a fact to read: a collapsed section of its own (calibration_histogram).
    facts += [(f"calibration {V.clean(k)}", V.fmt_value(v)) for k, v in calibration.items() if k != "histogram"]
    return facts


def _options(results: dict) -> list[tuple[str, str]]:
    """The options that were given. One not given says nothing (an empty --defect list is not "defects:
    all"); what the run covered is the scope's to say, in the banner."""
    options = V.as_dict(results.get("options"))
    out = []
    for k, v in options.items():
        if v is None or v == "" or v == [] or v == {}:
            continue
        if isinstance(v, list):
            v = ", ".join(V.clean(x) for x in v)
        out.append((V.clean(k), V.clean(v)))
    return out
