"""The chain under fire: a soak of N real station agents and a cloud, with faults.

Run it by hand with `.venv/bin/python -m tests.soak --help`; `test_soak.py` runs the
short setting in CI on SQLite and on PostgreSQL.
"""
