"""The scenarios a load run can play, as plain data (no locust import: the harness validates with it).

The Locust user class that plays each scenario lives in users.py, in the child process only.
`requests_per_iteration` lets the pacer turn an offered rate in requests/s into arrivals/s: one `pos`
iteration (create a transaction, read it back) makes two requests.
"""

from __future__ import annotations

from dataclasses import dataclass

ENDPOINTS = "endpoints"


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    user_class: str  # class name in users.py
    requests_per_iteration: int
    schemes: tuple[str, ...]
    description: str


SCENARIOS: dict[str, ScenarioSpec] = {
    spec.name: spec
    for spec in (
        ScenarioSpec(ENDPOINTS, "EndpointsUser", 1, ("http", "https"),
                     "weighted requests from the config's endpoints list"),
        ScenarioSpec("pos", "PosUser", 2, ("http", "https"),
                     "POST /pos/transactions {amount, items}, then GET /pos/transactions/{id}"),
        ScenarioSpec("content", "ContentUser", 1, ("http", "https"),
                     "GET /content/{key} over the config's key set"),
        ScenarioSpec("telemetry", "TelemetryUser", 1, ("http", "https"),
                     'POST /telemetry {"sensor": "s1", "value": 1.0}'),
        ScenarioSpec("tcp_echo", "TcpEchoUser", 1, ("tcp",),
                     "raw TCP: send payload_bytes, read the same bytes back (non-HTTP example)"),
    )
}


def scenario_spec(name: str) -> ScenarioSpec:
    return SCENARIOS[name]
