"""Bundled demo datasets (see README.md) and the script that rebuilds them (build.py)."""
