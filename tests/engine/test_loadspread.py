"""How a run spreads each load measurement over Locust workers (engine/loadspread.py): the options' checks
(one located line each, exit 2 before anything starts), what they set, and how the scope names them."""

from __future__ import annotations

import pytest

from conformance.engine.loadspread import changed_by, load_spread_of
from conformance.model.errors import ConfigError
from tests.helpers.cli import run_cli


def test_nothing_given_sets_nothing():
    assert load_spread_of(None, 0, None, emulated=True) == {}


def test_local_and_remote_workers_set_the_load_config():
    spread = load_spread_of(4, 2, "0.0.0.0:5557", emulated=False)
    assert spread == {"workers": 4, "remote_workers": 2, "master_bind_host": "0.0.0.0", "master_port": 5557}
    assert changed_by(spread) == ["--load-workers 4", "--load-remote-workers 2 (master 0.0.0.0:5557)"]
    assert changed_by(load_spread_of(2, 0, None, emulated=True), "--edge-load-") == ["--edge-load-workers 2"]
    assert load_spread_of(None, 1, "[::1]:6000", emulated=False)["master_bind_host"] == "::1"


@pytest.mark.parametrize("args,field,needle", [
    ((0, 0, None, False), "--load-workers", "expected 1 to 64 worker processes, got 0"),
    ((None, 1, "0.0.0.0:5557", True), "--load-remote-workers", "emulated target's sites listen on this machine's"),
    ((None, 1, None, False), "--load-remote-workers", "give --load-master HOST:PORT"),
    ((None, 1, "5557", False), "--load-master", '"5557" is not HOST:PORT'),
    ((None, 1, "h:99999", False), "--load-master", "is not HOST:PORT"),
    ((None, 0, "h:5557", False), "--load-master", "goes with --load-remote-workers M"),
])
def test_bad_options_are_one_line_naming_the_option(args, field, needle):
    workers, remote, master, emulated = args
    with pytest.raises(ConfigError) as err:
        load_spread_of(workers, remote, master, emulated=emulated)
    assert err.value.field == field and needle in str(err.value) and "\n" not in str(err.value)


def test_the_cli_refuses_remote_workers_for_an_emulated_target_before_anything_starts(tmp_path):
    done = run_cli("run", "--load-remote-workers", "1", "--load-master", "0.0.0.0:5557", "--out", tmp_path / "o",
                   timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--load-remote-workers: an emulated target's sites listen on this machine's loopback" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "o").exists()
