"""The pytest-xdist hooks of a distributed run (engine/parallel.py says how the parts fit).

They live apart from the plugin because pytest refuses a plugin that implements hooks nobody declared:
these are registered only when pytest-xdist takes part in the run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from . import parallel

CONTROLLER_NAME = "edge-conformance-xdist-controller"
WORKER_NAME = "edge-conformance-xdist-worker"


def register(config: pytest.Config, plugin: Any) -> None:
    if plugin.role == "controller":
        config.pluginmanager.register(XdistController(plugin), CONTROLLER_NAME)
    elif plugin.role == "worker":
        config.pluginmanager.register(XdistWorker(plugin), WORKER_NAME)


def worker_output(plugin: Any) -> str:
    """What a worker decided that no test report carried: entries decided at collection (checks no
    collected test implements, deselected tests), what narrowed the run, the latency calibration."""
    record = plugin.record
    entries = [e for e in record.data["requirements"] if (e["profile"], e["id"], e["site"]) in record.updated]
    return json.dumps({"entries": entries, "narrowed_by": list(plugin.scope.get("narrowed_by") or []),
                       "calibration": record.data.get("calibration")}, default=str)


class XdistController:
    """The controller: tells each worker where the target is, records every verdict the workers send."""

    def __init__(self, plugin: Any):
        self.plugin = plugin
        target = plugin.target
        if target.probes_deployed or target.lab:
            plugin.close()
            pytest.exit("edge-conformance: -n with probes deployed for the run (an SSH lab, --deploy-probes): the "
                        "probes belong to one process; run without -n, or split the run with --shard K/N",
                        returncode=2)
        self.lock_dir = Path(tempfile.mkdtemp(prefix="edge-conformance-xdist-"))
        plugin._stack.callback(shutil.rmtree, self.lock_dir, True)
        inventory = plugin.config.getoption("--edge-inventory")
        self.input = parallel.worker_input(
            run_id=plugin.record.data["run_id"], out_dir=plugin.record.path.parent, target_file=target.path,
            target_ref=plugin.config.getoption("--edge-emulated-from") or plugin.config.getoption("--edge-target")
            or inventory or "emulated", lock_dir=self.lock_dir)
        if inventory:  # the sites come from an Ansible inventory: the workers read it too
            self.input["target_file"], self.input["inventory"] = str(inventory), True

    def pytest_configure_node(self, node) -> None:
        node.workerinput[parallel.WORKER_INPUT] = dict(self.input)

    def pytest_runtest_logreport(self, report) -> None:
        text = getattr(report, parallel.ENTRY_ATTR, None)
        if text is None:
            if report.failed and getattr(report, "edge_status", None) is None:
                self.plugin.other_failures += 1  # not a requirement's result (or its worker crashed)
            return
        self._record(json.loads(text))

    def pytest_testnodedown(self, node, error) -> None:
        output = getattr(node, "workeroutput", {}).get(parallel.WORKER_OUTPUT)
        if not output:
            return  # the worker died before its end: what it ran came with its reports
        told = json.loads(output)
        for why in told["narrowed_by"]:
            self.plugin._narrow(why)
        for entry in told["entries"]:
            self._record(entry, announce=False)
        if told.get("calibration") and not self.plugin.record.data.get("calibration"):
            self.plugin.record.set("calibration", told["calibration"])

    def _record(self, entry: dict, announce: bool = True) -> None:
        mine = self.plugin.record.replace(entry)
        if mine is None or not announce:
            return
        if entry.get("waiver"):
            self.plugin.record.add_applied_waiver({**entry["waiver"], "site": entry["site"]})
        if entry.get("advisory"):
            self.plugin.advisories.append(entry.get("message") or "")


class XdistWorker:
    """A worker: a site's checks in one xdist group; items that must run alone hold the run-wide lock."""

    def __init__(self, plugin: Any):
        self.plugin = plugin
        self.lock = parallel.ItemLock(Path(plugin.config.workerinput[parallel.WORKER_INPUT]["lock_dir"]))
        plugin._stack.callback(self.lock.close)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session, config, items) -> None:
        config.option.loadgroup = True  # xdist's own hook, after this one, names each item's group
        for item in items:
            case = _case_of(item)
            if case is not None:
                item.add_marker(pytest.mark.xdist_group(parallel.group_of(case)))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        case = _case_of(item)
        self.lock.acquire(alone=case is not None and parallel.runs_alone(case, self.plugin.target))
        try:
            return (yield)
        finally:
            self.lock.release()


def _case_of(item) -> Any:
    from ..pytest_plugin import CASE_ARG

    return getattr(getattr(item, "callspec", None), "params", {}).get(CASE_ARG)
