"""Helpers only tests and benchmarks use (kept out of the installed package).

`tests/conftest.py` puts `tests/` on the import path, so tests import them as
`support.<module>`; benchmarks add it themselves (`bench/_common.py`).
"""
