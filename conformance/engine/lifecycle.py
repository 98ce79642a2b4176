"""Bring a target up for a run and take it down afterwards.

A real target is just its file, or an Ansible inventory (engine/inventory.py); with --deploy-probes the
reference workloads go onto its sites for the run (engine/probes.py). An emulated target (`emulated` or
`emulated:TOPOLOGY`) is started here, for the length of the run, and removed afterwards whatever happens
(also on Ctrl-C/SIGTERM, which arrive as KeyboardInterrupt). The SSH lab (`emulated:ssh-lab`, a topology
whose sites are reached by ssh) is both: started like an emulated target, then given probes like a real
one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from ..model.errors import ConfigError
from ..model.target import EMULATED_PREFIX, Target, is_emulated_ref, load_target
from .inventory import load_inventory

DEFAULT_TOPOLOGY = "retail"


def topology_for(ref: str, profiles: list) -> str:
    """`emulated:NAME` names it; plain `emulated` takes the first profile's topology, or retail."""
    if ":" in ref:
        name = ref.split(":", 1)[1]
        if not name:
            raise ConfigError(None, None, "--target", 'expected "emulated" or "emulated:TOPOLOGY"')
        return name
    for p in profiles:
        if getattr(p, "topology", None):
            return p.topology
    return DEFAULT_TOPOLOGY


@contextlib.contextmanager
def open_target(ref: str, *, run_id: str, profiles: list, backend: str = "local",
                defects: list[str] | None = None, state_dir: Path | None = None,
                inventory: str | None = None, deploy_probes: bool = False,
                probe_log_dir: Path | None = None, lab_probes: bool = True,
                progress: Callable[[dict], None] | None = None) -> Iterator[Target]:
    """The target for the length of the run. An SSH lab (topology reach: ssh) gets its probes deployed
    here, without --deploy-probes, once the registry confirms this harness started it; `lab_probes`
    False leaves that to whoever opens the lab's target file next (`run` hands it to pytest). `progress`
    hears how far an emulated deployment's bring-up is (emulation/deployment.py start_deployment)."""
    with _opened(ref, run_id=run_id, profiles=profiles, backend=backend, defects=defects, state_dir=state_dir,
                 inventory=inventory, deploy_probes=deploy_probes, probe_log_dir=probe_log_dir,
                 progress=progress) as target:
        if not (target.lab and lab_probes):
            yield target
            return
        from ..emulation.deployment import lab_not_ours
        from .probes import deployed_probes

        why = lab_not_ours(target.lab, target.path)
        if why:
            raise ConfigError(target.path or None, None, "lab", f"{why} (an SSH lab is started by --target "
                                                                "emulated:ssh-lab --backend docker)")
        with deployed_probes(target, run_id=run_id,
                             log_dir=probe_log_dir or Path.cwd() / "probe-logs") as deployed:
            yield deployed


@contextlib.contextmanager
def _opened(ref: str, *, run_id: str, profiles: list, backend: str, defects: list[str] | None,
            state_dir: Path | None, inventory: str | None, deploy_probes: bool,
            probe_log_dir: Path | None, progress: Callable[[dict], None] | None = None) -> Iterator[Target]:
    if deploy_probes and not reached_by_ssh(ref, profiles):
        # the reference workloads on the real sites, for the run (engine/probes.py)
        if inventory or is_emulated_ref(ref):
            raise ConfigError(None, None, "--deploy-probes", "probes are deployed on the sites of a target "
                                                             "file (--target FILE) or of the SSH lab (--target "
                                                             "emulated:ssh-lab), not on an emulated target's "
                                                             "own workloads or an inventory")
        if defects:
            raise ConfigError(None, None, "--defect", "defects can only be switched on in emulated targets "
                                                      "(a probe's go in its probes: defects)")
        from .probes import deployed_probes

        target = load_target(ref)
        if target.lab:  # the SSH lab's own file (run hands it to pytest): open_target deploys
            yield target
            return
        with deployed_probes(target, run_id=run_id, log_dir=probe_log_dir or Path.cwd() / "probe-logs") as deployed:
            yield deployed
        return
    if inventory:  # the sites of an Ansible inventory (engine/inventory.py), instead of a target file
        if defects:
            raise ConfigError(None, None, "--defect", "defects can only be switched on in emulated targets")
        yield load_inventory(inventory)
        return
    if not is_emulated_ref(ref):
        if defects:
            raise ConfigError(None, None, "--defect", "defects can only be switched on in emulated targets")
        yield load_target(ref)
        return
    topology = topology_for(ref, profiles)
    try:
        from ..emulation import start_deployment
    except ImportError:
        raise ConfigError(None, None, "--target", f"{EMULATED_PREFIX} targets are not available in this "
                                                  "build (conformance.emulation is missing)") from None
    deployment = start_deployment(topology, state_dir=state_dir, run_id=run_id, defects=list(defects or []),
                                  backend=backend, progress=progress)  # EmulationError if it cannot come up
    try:
        yield load_target(deployment.target_file)
    finally:
        deployment.stop()


def reached_by_ssh(ref: str, profiles: list) -> bool:
    """An emulated ref whose topology is an SSH lab: its probes are deployed anyway (--deploy-probes is
    redundant there, not wrong)."""
    if not is_emulated_ref(ref):
        return False
    from ..model.topology import load_topology

    return load_topology(topology_for(ref, profiles)).reach == "ssh"
