"""Certification: bundles of a run (bundle.py), their offline verification (verify.py), the Ed25519
keys that sign them (keys.py) and the comparison of two runs (compare.py).

Built on the reports (conformance.report renders what a bundle embeds) and the model (verify recomputes
every verdict with model.verdict, as the run decided it).
"""
