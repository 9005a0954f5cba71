"""Benchmarks of auditspan: cost per event against the bare OpenTelemetry SDK, measured in the same run.

``python benchmarks/run.py [--quick] [--json OUT]`` is the one command; see ``benchmarks/README.md``.
"""
