"""A sampled fleet requirement end to end: `edge-conformance run` against a generated fleet (central and 12
stores) measures only each requirement's deterministic sample, records the other stores as not-run "not
in the sample", judges the fleet on the sample's confidence bounds, and `verify` recomputes it all from
a bundle."""

from __future__ import annotations

import time

from conformance.model import results as R
from conformance.model import sampling as S
from tests.helpers.cli import requirement, run_cli, run_edge, write_profile

STORES = [f"store-{i:02d}" for i in range(1, 13)]
HEALTH = {"endpoint": "api", "path": "/health"}


def _sampled(rid: str, quorum: str, sample, confidence: str | None = None) -> dict:
    r = requirement(rid, "functional.http", "status == 200", HEALTH, sites=["edge"])
    r.update(level="must", sites=quorum, sample=sample)
    if confidence:
        r["confidence"] = confidence
    return r


def test_a_sampled_fleet_is_measured_on_its_sample_and_judged_on_its_bounds(tmp_path):
    a_sample = S.sample_of("SMP-A", S.Sampling(share=0.5), STORES)
    b_sample = S.sample_of("SMP-B", S.Sampling(count=6, confidence=0.8), STORES)
    assert len(a_sample) == len(b_sample) == 6
    broken = a_sample[:3] + [next(s for s in STORES if s not in a_sample)]  # 3 of A's sample, 1 outside it
    write_profile(tmp_path / "p.yaml", [_sampled("SMP-A", "90%", "50%"), _sampled("SMP-B", "50%", 6, "80%")])
    defects = [arg for store in broken for arg in ("--defect", f"{store}:health-broken")]
    started = time.monotonic()
    code, res, output = run_edge("--profile", "p.yaml", "--target", "emulated:fleet:12", *defects, out=tmp_path / "out",
                                 cwd=tmp_path, timeout=180)
    took = time.monotonic() - started
    entries = {(r["id"], r["site"]): r for r in res["requirements"]}

    for rid, sample in (("SMP-A", a_sample), ("SMP-B", b_sample)):
        for store in STORES:
            e = entries[(rid, store)]
            if store in sample:  # measured: 503 where the defect is, 200 elsewhere
                assert e["sampled"] is True and e["ended"]["how"] == "measured", e
                assert e["status"] == ("fail" if store in broken else "pass"), e
                assert e["measured"]["status"]["value"] == (503 if store in broken else 200)
            else:  # nothing measured, the reason said, and no gap
                assert e["sampled"] is False and e["status"] == "not-run" and e["measured"] == {}, e
                assert e["message"] == f"{rid}@{store}: not in the sample: 6 of 12 sites (sample: " \
                                       f"{'50 %' if rid == 'SMP-A' else '6 sites'})"

    # SMP-A: 3 of 6 sampled stores pass; at 95 % the fleet's pass share is at most 84.68 % < 90 %: fail
    a = entries[("SMP-A", R.FLEET_SITE)]
    assert a["sampling"] == {"size": "50%", "confidence": 0.95, "population": 12, "sample": 6, "census": False,
                             "passed": 3, "failed": 3, "undecided": 0,
                             "lower": round(S.lower_bound(3, 6, 0.95), 6), "upper": round(S.upper_bound(3, 6, 0.95), 6)}
    assert a["sampling"]["upper"] < 0.9 and a["status"] == "fail", a
    assert "pass share <= 84.69 % at 95 % confidence; expected at least 90 %" in a["message"]
    # SMP-B: whatever its sample holds of the broken stores, the status is what its bounds say
    failed_b = len(set(broken) & set(b_sample))
    b = entries[("SMP-B", R.FLEET_SITE)]
    want = S.judge(6 - failed_b, failed_b, 0, 0.5, 0.8)
    assert (b["sampling"]["passed"], b["sampling"]["failed"]) == (6 - failed_b, failed_b)
    assert b["status"] == (want.status or "inconclusive") and "at 80 % confidence" in b["message"], b
    assert failed_b == 1 and b["status"] == "pass"  # 5 of 6: the pass share is at least 57.75 % at 80 %
    assert code == 1 and res["verdict"] == R.NON_CONFORMANT, output[-3000:]
    assert "sampled 6 of 12 sites; pass share <= 84.69 % at 95 % confidence" in (tmp_path / "out" / "summary.md").read_text()
    assert "SMP-A@fleet fail: sampled 6 of 12 sites" in output

    # verify recomputes the sample and the bounds from the bundle
    assert run_cli("bundle", "out", "--out", "b.tar.gz", cwd=tmp_path).returncode == 0
    proc = run_cli("verify", "b.tar.gz", cwd=tmp_path)
    assert proc.returncode == 0 and "FAILED" not in proc.stdout, proc.stdout + proc.stderr
    assert took < 120, f"the run took {took:.0f} s"
