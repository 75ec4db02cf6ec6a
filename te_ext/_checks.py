"""Argument checks shared by the Python classes, with messages that name the argument."""

from __future__ import annotations

from typing import Any


def check_int(name: str, value: Any, lo: int) -> int:
    """``value`` as an int >= ``lo``; TypeError for a non-int (bool included), else ValueError."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return value
