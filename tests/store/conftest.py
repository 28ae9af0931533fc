"""Store tests use the metadata backend fixtures of ``tests/conftest.py``."""
