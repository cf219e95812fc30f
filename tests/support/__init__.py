"""Helpers every test module shares: dbt runs, raw rows, built warehouses, in-process jobs, signup landings.

Test modules import from here, never from each other; the pytest fixtures are registered in `tests/conftest.py`.
"""
