"""Helpers shared by the harness's own tests: import them (`from tests.helpers.cli import run_cli`).

Fixtures stay in the conftest.py files; plain functions and classes live here, once (a test module
imports these, never a conftest):

* `cli`: the real command line in a subprocess (`CLI`, `cli_env`, `run_cli`, `popen_cli`, `run_command`,
  `run_edge`, `run_edge_watched`) and the input files a run takes (`requirement`, `write_profile`,
  `narrowed_profile`, `write_target`).
* `results`: reading results.json (`read_results`, `entry`, `entries`, `measured`, `left_out`, `starved`).
* `servers`: loopback HTTP servers (`StubServer` in a thread, `script_server` for the aiohttp ones run
  as a process of their own: `servers/delay.py`, `servers/loopback.py`) and `refused_url`/`hanging_url`.
* `processes`: `ReadyChild` (a child that prints a JSON ready line and stops at stdin EOF: workloads,
  linkd, the script servers) and `stop_at_eof`.
* `edge`: `RecordingEdge`, a stand-in for the `edge` fixture when a test calls a check directly.
* `certify`: the certification tests' credential, in-process CLI and bundle surgery.
* `waits`: `wait_for` (poll until true, or fail naming what was awaited) and `wait_gone`/`tagged` (the
  processes a tagged run left behind).
"""
