"""What the data suite measures through that needs no site: the /metrics fallback
(conformance.measure.telemetry) and the marker values (conformance.measure.privacy)."""

from __future__ import annotations

from conformance.measure.privacy import marker_value
from conformance.measure.telemetry import prometheus_counters


def test_prometheus_fallback_reads_the_telemetry_counters():
    text = """\
# HELP workload_raw_bytes_ingested_total Telemetry body bytes received from sensors.
# TYPE workload_raw_bytes_ingested_total counter
workload_raw_bytes_ingested_total 171773
workload_wan_bytes_sent_total{channel="pos"} 5000
workload_wan_bytes_sent_total{channel="telemetry"} 959
workload_wan_bytes_sent_total{channel="control",x="y"} 12
"""
    assert prometheus_counters(text) == (171773.0, 959.0)
    assert prometheus_counters("something_else 1\n") == (None, None)


def test_marker_values_are_unique_per_run_and_field():
    a, b = marker_value("card_number", "abc123", 0), marker_value("card_number", "abc123", 1)
    assert a != b and a.isdigit() and len(a) == 16
    assert "abc123" in marker_value("email", "abc123", 0) and "@" in marker_value("email", "abc123", 0)
    assert marker_value("patient_id", "abc123", 2) == "conformance-patient_id-abc123-2"
