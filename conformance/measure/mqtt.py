"""MQTT brokers measured from their clients' side (stack.mqtt_bridge), through paho-mqtt.

    site, central = Mqtt(site_url, timeout), Mqtt(central_url, timeout)
    seen = central.collect(filter_, tag)          # subscribed at QoS 1 (SUBACK awaited)
    site.publish(topic, payload)                  # True once the site's broker acknowledged it (PUBACK)
    tally(seen.ids(), published)                  # delivered, lost, duplicates by payload id

Every message's payload is JSON `{"tag": RUN TAG, "id": N, ...}`, so messages of this run are told
from any other traffic on the broker, and a message delivered twice is counted as a duplicate. Every
network step has a deadline: the TCP connect (paho's connect_timeout), CONNACK, SUBACK, PUBACK.
Endpoints: mqtt://host[:1883], mqtts://host[:8883] (verified against `ca_file`), tcp://host:port.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..model.errors import MeasurementError

SCHEMES = {"mqtt": (1883, False), "tcp": (1883, False), "mqtts": (8883, True), "ssl": (8883, True)}
KEEPALIVE_S = 15


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of a broker endpoint; MeasurementError for another kind of URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise MeasurementError(f'"{url}" is not an MQTT broker URL (mqtt://host:port, mqtts://host:port or '
                               "tcp://host:port)")
    default_port, tls = SCHEMES[parts.scheme]
    return parts.hostname, parts.port or default_port, tls


def payload(tag: str, ident: int | str, **extra: Any) -> bytes:
    return json.dumps({"tag": tag, "id": ident, **extra}, sort_keys=True).encode()


@dataclass
class Seen:
    """What a subscription received of one run's tag: ids in arrival order, with arrival times."""

    tag: str
    ids: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() of each
    foreign: int = 0  # messages without this run's tag (other traffic), not counted
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, raw: bytes) -> None:
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            doc = None
        with self.lock:
            if isinstance(doc, dict) and doc.get("tag") == self.tag:
                self.ids.append(doc.get("id"))
                self.times.append(time.monotonic())
            else:
                self.foreign += 1

    def snapshot(self) -> tuple[list[Any], list[float]]:
        with self.lock:
            return list(self.ids), list(self.times)

    def has(self, ident: Any) -> bool:
        with self.lock:
            return ident in self.ids


@dataclass
class Tally:
    published: int
    delivered: int  # distinct published ids that arrived
    lost: int
    duplicates: int  # arrivals beyond the first of an id
    unexpected: int  # arrivals of ids never published (acknowledged) in this run

    @property
    def delivered_ratio(self) -> float:
        return self.delivered / self.published if self.published else 0.0


def tally(received: list[Any], published: list[Any]) -> Tally:
    """Delivered, lost and duplicated messages: `received` ids (in any order, repeats kept) against the
    `published` ids (those the site's broker acknowledged)."""
    counts = Counter(received)
    wanted = set(published)
    delivered = sum(1 for i in wanted if counts[i])
    duplicates = sum(n - 1 for i, n in counts.items() if i in wanted and n > 1)
    unexpected = sum(n for i, n in counts.items() if i not in wanted)
    return Tally(len(wanted), delivered, len(wanted) - delivered, duplicates, unexpected)


class Mqtt:
    """One MQTT 3.1.1 client session (clean, QoS 1) to a broker endpoint, with a deadline on every step."""

    def __init__(self, url: str, timeout: float, *, ca_file: str | None = None, name: str = "edge-conformance"):
        import paho.mqtt.client as paho

        self.url, self.timeout = url, float(timeout)
        self.host, self.port, tls = broker_address(url)
        self._paho = paho
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:10]}",
                                  clean_session=True, protocol=paho.MQTTv311, reconnect_on_failure=False)
        self.client.connect_timeout = self.timeout
        if tls:
            self.client.tls_set(ca_certs=ca_file)
        self._connected = threading.Event()
        self._connack: Any = None
        self._subacks: dict[int, Any] = {}
        self._suback = threading.Condition()
        self.disconnects: list[str] = []
        self._seen: list[Seen] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._started = False

    # -- paho's callbacks (its network thread) --------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connack = reason_code
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.disconnects.append(str(reason_code))
        self._connected.clear()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._suback:
            self._subacks[mid] = reason_codes
            self._suback.notify_all()

    def _on_message(self, client, userdata, message) -> None:
        for seen in self._seen:
            seen.add(message.payload)

    # -- steps ------------------------------------------------------------------------------------
    def connect(self) -> Mqtt:
        try:
            self.client.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as exc:
            raise MeasurementError(f"MQTT {self.url}: cannot connect: {exc}") from None
        self.client.loop_start()
        self._started = True
        if not self._connected.wait(self.timeout):
            raise MeasurementError(f"MQTT {self.url}: no CONNACK within {self.timeout:g} s")
        if getattr(self._connack, "is_failure", False):
            raise MeasurementError(f"MQTT {self.url}: connection refused: {self._connack}")
        return self

    def collect(self, topic_filter: str, tag: str) -> Seen:
        """Subscribe to `topic_filter` at QoS 1; what arrives with `tag` is in the returned Seen."""
        seen = Seen(tag)
        self._seen.append(seen)
        rc, mid = self.client.subscribe(topic_filter, qos=1)
        if rc != self._paho.MQTT_ERR_SUCCESS:
            raise MeasurementError(f"MQTT {self.url}: cannot subscribe to {topic_filter!r}: "
                                   f"{self._paho.error_string(rc)}")
        deadline = time.monotonic() + self.timeout
        with self._suback:
            while mid not in self._subacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MeasurementError(f"MQTT {self.url}: no SUBACK for {topic_filter!r} within {self.timeout:g} s")
                self._suback.wait(left)
            codes = self._subacks[mid]
        if any(getattr(c, "is_failure", False) for c in codes):
            raise MeasurementError(f"MQTT {self.url}: subscription to {topic_filter!r} refused: {codes}")
        return seen

    def publish(self, topic: str, data: bytes) -> str:
        """Publish at QoS 1 and wait for the broker's PUBACK: "" when acknowledged, else what went wrong."""
        try:
            info = self.client.publish(topic, data, qos=1)
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as exc:
            return f"not sent: {exc}"
        if info.is_published():
            return ""
        return f"no PUBACK within {self.timeout:g} s" if self._connected.is_set() else "disconnected"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def close(self) -> None:
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        if self._started:
            self.client.loop_stop()  # joins paho's thread (its socket is closed by now)
            self._started = False

    def __enter__(self) -> Mqtt:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
