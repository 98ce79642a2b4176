"""The supervisor's command line: run one emulated deployment until told to stop.

    python -m conformance.emulation.supervise --topology NAME|PATH [--backend local|docker]
        [--state-dir DIR] [--run-id ID] [--defect SITE_OR_ROLE_OR_*:DEFECT ...] [--detach] [--keep]
        [--timeout SECONDS]

The harness (conformance.emulation.deployment) starts it as a child with stdin on a pipe: EOF there
means the harness is gone, and the supervisor tears the deployment down (unless --detach). It prints
one JSON line, the ready line, and exits 1 if bring-up failed, 2 for a bad topology or backend. What
a supervisor does is conformance.emulation.supervisor; which one runs is the backend's
(conformance.emulation.backends).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from ..model.errors import ConfigError
from ..model.topology import apply_defects, load_topology
from . import state
from .backends import BACKENDS, DEFAULT, UnknownBackend, supervisor_class
from .common import emit, raise_open_files_limit
from .supervisor import DEFAULT_TIMEOUT_S

PROG = "python -m conformance.emulation.supervise"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Run one emulated edge deployment until told to stop.")
    parser.add_argument("--topology", required=True, help="built-in topology name or path to a YAML file")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where target.yaml, state.json, logs and site data go (default: per-user runtime dir)")
    parser.add_argument("--run-id", default=None, help="label for every process and file of this deployment")
    parser.add_argument("--defect", action="append", default=[], metavar="SITE_OR_ROLE_OR_*:DEFECT",
                        help="switch a defect on in the selected sites (repeatable)")
    parser.add_argument("--detach", action="store_true", help="do not stop when stdin closes (emulate up --detach)")
    parser.add_argument("--keep", action="store_true", help="keep the state dir (logs, data) after shutdown")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="bring-up timeout in seconds")
    parser.add_argument("--backend", choices=tuple(BACKENDS), default=DEFAULT,
                        help="sites as local processes, or as Docker containers (conformance.emulation.backends)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_id = args.run_id or state.new_run_id()
    raise_open_files_limit()
    try:
        topology = apply_defects(load_topology(args.topology), args.defect)
        cls = supervisor_class(args.backend, topology.reach)
    except (ConfigError, UnknownBackend) as exc:
        emit({"ready": False, "error": str(exc), "pid": os.getpid(), "run_id": run_id})
        return 2
    state_dir = (args.state_dir or state.default_state_dir(run_id)).absolute()
    owns = not state_dir.exists()
    supervisor = cls(topology, topology_ref=args.topology, run_id=run_id, state_dir=state_dir,
                     owns_state_dir=owns, detach=args.detach, keep=args.keep, timeout=args.timeout)
    try:
        return asyncio.run(supervisor.run())
    except KeyboardInterrupt:  # a signal before our handlers were installed
        return 130


if __name__ == "__main__":
    sys.exit(main())
