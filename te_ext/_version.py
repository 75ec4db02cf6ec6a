"""The one place te_ext's version is written (setup.py reads it as text)."""

__version__ = "0.2.0"
