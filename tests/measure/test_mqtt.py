"""measure/mqtt.py: counting by payload id (delivered, lost, duplicates), broker URLs, and the paho
client's steps with deadlines against a local mosquitto (skipped, with the reason, where mosquitto is
not installed: `apt-get install mosquitto`; CI installs it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from conformance.measure.mqtt import Mqtt, Seen, broker_address, payload, tally, wait_for
from conformance.model.errors import MeasurementError

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(tmp_path, conf: str = "", name: str = "broker") -> tuple[subprocess.Popen, int]:
    """A mosquitto on 127.0.0.1:PORT with `conf` appended; waits until it answers."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    path = tmp_path / f"{name}.conf"
    path.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n{conf}")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
    proc.kill()
    pytest.fail("mosquitto did not listen within 5 s")


@pytest.fixture
def broker(tmp_path):
    proc, port = start_broker(tmp_path)
    yield f"mqtt://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(5)


def test_tally_counts_delivered_lost_duplicates_and_strangers():
    t = tally([0, 1, 1, 3, 3, 3, 9], published=[0, 1, 2, 3])
    assert (t.published, t.delivered, t.lost, t.duplicates, t.unexpected) == (4, 3, 1, 3, 1)
    assert t.delivered_ratio == 0.75
    assert tally([], []).delivered_ratio == 0.0


def test_seen_keeps_only_this_runs_tag():
    seen = Seen("run-a")
    for raw in (payload("run-a", 1), payload("run-b", 1), b"\xff not json", b"[1]", payload("run-a", 1)):
        seen.add(raw)
    assert seen.snapshot()[0] == [1, 1] and seen.foreign == 3 and seen.has(1) and not seen.has(2)


@pytest.mark.parametrize("url, expected", [
    ("mqtt://10.0.0.5", ("10.0.0.5", 1883, False)), ("mqtt://h:1884", ("h", 1884, False)),
    ("tcp://127.0.0.1:40001", ("127.0.0.1", 40001, False)), ("mqtts://broker.example", ("broker.example", 8883, True)),
])
def test_broker_address(url, expected):
    assert broker_address(url) == expected


def test_a_url_that_is_no_broker_is_an_error():
    with pytest.raises(MeasurementError, match=r'"http://h/" is not an MQTT broker URL'):
        broker_address("http://h/")


def test_publish_and_collect_at_qos1_through_a_broker(broker):
    with Mqtt(broker, 3) as sub, Mqtt(broker, 3) as pub:
        sub.connect()
        seen = sub.collect("edge-conformance/test/#", "t1")
        pub.connect()
        for i in range(5):
            assert pub.publish("edge-conformance/test/x", payload("t1", i)) == ""
        assert pub.publish("edge-conformance/test/x", payload("other", 0)) == ""
        assert wait_for(lambda: len(seen.snapshot()[0]) == 5, 5)
        assert wait_for(lambda: seen.foreign == 1, 2)
        assert sorted(seen.snapshot()[0]) == [0, 1, 2, 3, 4] and sub.disconnects == []


def test_a_broker_that_is_not_there_is_an_error_within_the_deadline():
    started = time.monotonic()
    with pytest.raises(MeasurementError, match=r"MQTT mqtt://127.0.0.1:\d+: cannot connect"):
        Mqtt(f"mqtt://127.0.0.1:{free_port()}", 2).connect()
    with socket.socket() as silent:  # accepts, never answers: no CONNACK
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(MeasurementError, match=r"no CONNACK within 0.5 s"):
            with Mqtt(f"mqtt://127.0.0.1:{silent.getsockname()[1]}", 0.5) as client:
                client.connect()
    assert time.monotonic() - started < 4
