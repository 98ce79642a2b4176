"""The reference workloads as one self-contained file: a zipapp of the installed edge_workloads package
(its .py files) and a small __main__ of ours, built once per harness process with the stdlib's zipapp.

    python3 probe.pyz --check            -> {"ok": ..., "python": "3.11.2", "missing": ["aiohttp"]}
    python3 probe.pyz [--serve] [--listen ADDR] ARGS  -> python -m edge_workloads ARGS, listening on ADDR
    python3 probe.pyz --keep [--pid-file F] [--listen ADDR] ARGS  -> the same under its keeper (keeper.py:
                                                         restarted after a crash, held down after a stop)

The workloads' third-party dependency (aiohttp, with its C-accelerated helpers) is not vendored: it
must be installed for the site's python; `--check` names what is missing before anything starts.
"""

from __future__ import annotations

import functools
import tempfile
import zipapp
from pathlib import Path

NEEDS = ("aiohttp",)  # what edge_workloads imports beyond the standard library

BOOTSTRAP = '''\
"""edge-conformance probe: the reference workloads (edge_workloads) as a zipapp."""
import json
import sys

NEEDS = %r


def main():
    args = sys.argv[1:]
    import importlib.util

    missing = [] if sys.version_info >= (3, 11) else ["python >= 3.11"]
    missing += [m for m in NEEDS if importlib.util.find_spec(m) is None]
    if args[:1] == ["--check"] or missing:
        print(json.dumps({"ok": not missing, "python": sys.version.split()[0], "missing": missing}), flush=True)
        return 0 if not missing else 3
    if args[:1] == ["--keep"]:
        from probe_keeper import main as keep

        pid_file = None
        if args[1:2] == ["--pid-file"]:
            pid_file, args = args[2], args[2:]
        return keep([sys.executable, sys.argv[0], "--serve", *args[1:]], pid_file)
    if args[:1] == ["--serve"]:
        args = args[1:]
    listen = "127.0.0.1"
    if args[:1] == ["--listen"]:
        listen, args = args[1], args[2:]
    from edge_workloads.lean import prepare_site_process

    prepare_site_process(tls="--mgmt-port" in args)
    from edge_workloads import runtime

    runtime.HOST = listen  # 127.0.0.1 by the process contract; a probe is reached from elsewhere
    from edge_workloads.cli import main as workload_main

    return workload_main(args)


sys.exit(main())
''' % (NEEDS,)


@functools.cache
def build() -> bytes:
    """The zipapp's bytes (cached for the process)."""
    import edge_workloads

    package = Path(edge_workloads.__file__).parent
    with tempfile.TemporaryDirectory(prefix="edge-probe-zipapp-") as tmp:
        root = Path(tmp) / "app"
        (root / "edge_workloads").mkdir(parents=True)
        for source in sorted(package.glob("*.py")):
            (root / "edge_workloads" / source.name).write_bytes(source.read_bytes())
        (root / "__main__.py").write_text(BOOTSTRAP, encoding="utf-8")
        (root / "probe_keeper.py").write_bytes((Path(__file__).parent / "keeper.py").read_bytes())
        out = Path(tmp) / "probe.pyz"
        zipapp.create_archive(root, out, compressed=True)
        return out.read_bytes()
