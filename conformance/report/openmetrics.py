"""OpenMetrics text from results.json, for CI metrics widgets (GitLab `artifacts:reports:metrics`).

    edge_conformance_conformant 1
    edge_conformance_partial_run 0
    edge_conformance_results{status="fail"} 1
    edge_conformance_requirement_passed{id="BASE-FUN-01",site="store-1",level="must"} 1
    edge_conformance_measured{id="BASE-FUN-01",site="store-1",metric="latency",unit="ms"} 1.204
    # EOF

Values are as recorded (unit in a label): a merge request widget compares them between branches.
`edge_conformance_partial_run` is left out when the results do not record their scope (older files).
"""

from __future__ import annotations

import math

from ..model import results as R


def _label(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{text}"'


def _labels(**kw: object) -> str:
    return "{" + ",".join(f"{k}={_label(v)}" for k, v in kw.items()) + "}"


def _num(v: float) -> str:
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def render_openmetrics(results: dict) -> str:
    reqs = [r for r in results.get("requirements") or [] if isinstance(r, dict)]
    verdict = results.get("verdict")
    lines = ["# TYPE edge_conformance_conformant gauge",
             "# HELP edge_conformance_conformant 1 when the run is conformant, 0 otherwise",
             f"edge_conformance_conformant {1 if verdict == R.CONFORMANT else 0}"]
    scope = results.get("scope")
    if isinstance(scope, dict):
        partial = bool(scope.get("narrowed_by")) or scope.get("full") is False
        lines += ["# TYPE edge_conformance_partial_run gauge",
                  "# HELP edge_conformance_partial_run 1 when the run's options left requirements out",
                  f"edge_conformance_partial_run {1 if partial else 0}"]
    lines += ["# TYPE edge_conformance_results gauge",
              "# HELP edge_conformance_results Results by status"]
    # Every status (zeros too, so a widget sees a count fall to 0), and v1's "skip" when an old file has it.
    known = R.STATUSES + tuple(s for s in R.LEGACY_STATUSES if any(r.get("status") == s for r in reqs))
    counts = {s: sum(r.get("status") == s for r in reqs) for s in known}
    lines += [f"edge_conformance_results{_labels(status=s)} {n}" for s, n in counts.items()]
    lines += ["# TYPE edge_conformance_requirement_passed gauge",
              "# HELP edge_conformance_requirement_passed 1 when the requirement passed (or was waived) at the site"]
    for r in reqs:
        ok = 1 if r.get("status") in ("pass", "waived") else 0
        lines.append(f"edge_conformance_requirement_passed"
                     f"{_labels(id=r.get('id'), site=r.get('site'), level=r.get('level'))} {ok}")
    lines += ["# TYPE edge_conformance_measured gauge",
              "# HELP edge_conformance_measured Measured values, in the unit of the unit label"]
    for r in reqs:
        for metric, m in sorted((r.get("measured") or {}).items()):
            v = m.get("value") if isinstance(m, dict) else None
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                labels = _labels(id=r.get("id"), site=r.get("site"), metric=metric, unit=m.get("unit") or "")
                lines.append(f"edge_conformance_measured{labels} {_num(v)}")
    return "\n".join(lines + ["# EOF"]) + "\n"
