"""What does keeping results.json current cost at fleet scale? Prints one JSON object.

Baseline in the same run: saving after every verdict (SAVE_BUDGET and CHEAP_SAVE_S set so that every
update saves at once), against the shipped policy (at most SAVE_BUDGET of the time spent saving). Both
record the same 870 verdicts (fleet-50 with the edge-baseline and naas profiles: about 17 requirements
on 51 sites), with notes, measured values and a histogram on every fifth, as a real run carries.

Run: python benchmarks/record_saves.py  (about a minute, most of it the baseline)
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from conformance.engine import record as R

VERDICTS = 870


def one_run(directory: Path) -> dict:
    rec = R.RunRecord(directory / "results.json", "bench", [], None, {"strict": False})
    for i in range(VERDICTS):
        rec.plan({"profile": "p", "id": f"R-{i % 17}", "site": f"store-{i // 17:02d}", "level": "must",
                  "status": "not-run", "notes": ["n" * 80] * 5,
                  "measured": {f"m{k}": {"value": 1.0, "unit": "ms"} for k in range(10)},
                  "raw": {"latency": {"histogram": "H" * 1500}} if i % 5 == 0 else {}})
    rec.save()
    started = time.perf_counter()
    for i in range(VERDICTS):
        rec.update("p", f"R-{i % 17}", f"store-{i // 17:02d}", status="pass")
    rec.finish("finished")
    seconds = time.perf_counter() - started
    data = json.loads((directory / "results.json").read_text())
    assert data["counts"]["pass"] == VERDICTS
    return {"seconds": round(seconds, 2), "file_mb": round((directory / "results.json").stat().st_size / 1e6, 2)}


def main() -> None:
    shipped = (R.SAVE_BUDGET, R.CHEAP_SAVE_S)
    with tempfile.TemporaryDirectory() as d:
        R.SAVE_BUDGET, R.CHEAP_SAVE_S = 1e9, 1e9  # baseline: every verdict saved at once
        baseline = one_run(Path(d))
        R.SAVE_BUDGET, R.CHEAP_SAVE_S = shipped
        policy = one_run(Path(d))
    print(json.dumps({"benchmark": "record_saves", "verdicts": VERDICTS, "save_every_verdict": baseline,
                      "shipped_policy": policy, "save_budget": shipped[0],
                      "speedup": round(baseline["seconds"] / max(policy["seconds"], 1e-6), 1)}, indent=2))


if __name__ == "__main__":
    main()
