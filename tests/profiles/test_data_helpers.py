"""Helpers of suites/data/test_data.py that need no site: the /metrics fallback and the marker values."""

from __future__ import annotations

import importlib.util

from conformance.model.paths import suites_dir


def _suite():
    spec = importlib.util.spec_from_file_location("edge_suite_data_under_test", suites_dir() / "data" / "test_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheus_fallback_reads_the_telemetry_counters():
    text = """\
# HELP workload_raw_bytes_ingested_total Telemetry body bytes received from sensors.
# TYPE workload_raw_bytes_ingested_total counter
workload_raw_bytes_ingested_total 171773
workload_wan_bytes_sent_total{channel="pos"} 5000
workload_wan_bytes_sent_total{channel="telemetry"} 959
workload_wan_bytes_sent_total{channel="control",x="y"} 12
"""
    assert _suite().prometheus_counters(text) == (171773.0, 959.0)
    assert _suite().prometheus_counters("something_else 1\n") == (None, None)


def test_marker_values_are_unique_per_run_and_field():
    suite = _suite()
    a, b = suite.marker_value("card_number", "abc123", 0), suite.marker_value("card_number", "abc123", 1)
    assert a != b and a.isdigit() and len(a) == 16
    assert "abc123" in suite.marker_value("email", "abc123", 0) and "@" in suite.marker_value("email", "abc123", 0)
    assert suite.marker_value("patient_id", "abc123", 2) == "conformance-patient_id-abc123-2"
