"""The development harness, not run in production: the embedded broker, worker processes, the demo, the
bench and the naive baseline.
"""
