"""`edge-conformance verify` ended by SIGTERM (a cancelled CI job) leaves no edge-verify-* temp dir
behind (issue 15): SIGTERM becomes KeyboardInterrupt, the temp dir's context removes it, exit 3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from tests.helpers.certify import certify_env, cli

# verify, held inside its temp dir (it prints the dir's path, then waits) until the test signals it
HELD_VERIFY = textwrap.dedent("""
    import sys, time
    from conformance.certify import verify as V

    def held(manifest, members, workdir, v):
        print(workdir, flush=True)
        time.sleep(60)
        return []

    V.load_embedded_profiles = held
    from conformance.cli import main
    main(["verify", sys.argv[1]])
""")


def test_sigterm_of_verify_removes_its_temp_dir(work, tmp_path):
    made = cli("bundle", "out", "--out", "bundle.tar.gz", cwd=work)
    assert made.returncode == 0, made.stdout + made.stderr
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**certify_env(), "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-c", HELD_VERIFY, str(work / "bundle.tar.gz")], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        workdir = proc.stdout.readline().strip()
        assert os.path.basename(workdir).startswith("edge-verify-") and os.path.isdir(workdir), workdir
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3 and "interrupted" in err, (proc.returncode, err)
    assert not os.path.exists(workdir)
    assert not [p for p in os.listdir(tmp) if p.startswith("edge-verify-")]
