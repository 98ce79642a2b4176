"""results.json as the run goes: every verdict saved at once while saving is cheap, batched when a big
run's rewrites would otherwise dominate it, and everything saved when the run finishes."""

from __future__ import annotations

import json
import time

from conformance.engine import record as record_module
from conformance.engine.record import RunRecord


def planned(tmp_path, n: int, note_size: int = 0) -> RunRecord:
    rec = RunRecord(tmp_path / "results.json", "run", [], None, {"strict": False})
    for i in range(n):
        rec.plan({"profile": "p", "id": "R-1", "site": f"s{i}", "level": "must", "status": "not-run",
                  "notes": ["x" * note_size]})
    rec.save()
    return rec


def on_disk(rec: RunRecord) -> dict:
    return json.loads(rec.path.read_text(encoding="utf-8"))


def test_a_small_run_has_each_verdict_on_disk_at_once(tmp_path):
    rec = planned(tmp_path, 3)
    for i in range(3):
        rec.update("p", "R-1", f"s{i}", status="pass")
        assert on_disk(rec)["requirements"][i]["status"] == "pass"


def test_a_run_whose_saves_are_costly_batches_them_and_loses_nothing(tmp_path, monkeypatch):
    rec = planned(tmp_path, 400, note_size=2000)  # ~1 MB: a save costs milliseconds
    saves = []
    real_write = record_module.write_atomic

    def counting_write(path, text, *, mode):
        saves.append(len(text))
        real_write(path, text, mode=mode)

    monkeypatch.setattr(record_module, "write_atomic", counting_write)
    monkeypatch.setattr(record_module, "CHEAP_SAVE_S", 0.0)  # however fast this machine saves 1 MB
    for i in range(400):
        rec.update("p", "R-1", f"s{i}", status="pass")
    assert len(saves) < 100, len(saves)  # far fewer rewrites than verdicts
    deadline = time.monotonic() + 10  # the put-off save lands on its own, without finish()
    while on_disk(rec)["counts"]["pass"] < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert on_disk(rec)["counts"]["pass"] == 400
    rec.update("p", "R-1", "s0", status="fail")
    rec.finish("finished")  # at once, whatever is pending
    data = on_disk(rec)
    assert data["state"] == "finished" and data["requirements"][0]["status"] == "fail"


def test_a_put_off_save_that_fails_says_so_and_finish_saves_again(tmp_path, monkeypatch, capfd):
    rec = planned(tmp_path, 3)
    monkeypatch.setattr(record_module, "CHEAP_SAVE_S", 0.0)
    rec._save_cost = 0.05  # the last save "took" 50 ms: the next one is put off by ~0.5 s
    real_write = record_module.write_atomic
    failing = {"on": True}

    def write(path, text, *, mode):
        if failing["on"]:
            raise OSError(28, "No space left on device")
        real_write(path, text, mode=mode)

    monkeypatch.setattr(record_module, "write_atomic", write)
    rec.update("p", "R-1", "s0", status="pass")
    deadline = time.monotonic() + 10
    while "could not save" not in capfd.readouterr().err and time.monotonic() < deadline:
        time.sleep(0.05)
    assert time.monotonic() < deadline, "the failed put-off save said nothing"
    failing["on"] = False
    rec.finish("finished")
    assert on_disk(rec)["requirements"][0]["status"] == "pass" and on_disk(rec)["state"] == "finished"


def test_results_json_is_readable_by_others_as_the_other_reports_are(tmp_path):
    """results.json is shared as a CI artifact and holds no secret value (redacted): mode 0644."""
    rec = planned(tmp_path, 1)
    assert oct(rec.path.stat().st_mode & 0o777) == "0o644"
