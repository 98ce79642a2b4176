"""A stand-in for the `edge` fixture when a test calls a suite's check (or a measure helper) directly."""

from __future__ import annotations


class RecordingEdge:
    """What a check tells its `edge`, recorded: notes, attachments (`raw`), validity evidence;
    `inconclusive` raises as the plugin's does. Tests add the requirement, params and `record` they need."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.raw: dict = {}
        self.validity: list[dict] = []

    def note(self, text):
        self.notes.append(text)

    def attach(self, key, value):
        self.raw[key] = value

    def evidence(self, kind, **fields):
        self.validity.append({"kind": kind, **fields})

    def inconclusive(self, reason):
        from conformance.model.errors import Inconclusive

        raise Inconclusive(reason)
