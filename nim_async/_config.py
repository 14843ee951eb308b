"""Checks of this library's settings: every refusal is one ``ConfigurationError``.

Settings are the arguments of ``NimClient``, ``RetryPolicy``, ``Rate``,
``RateLimits``, the limiters and a bulk send's ``max_concurrency``; NIM
parameters are checked elsewhere (``_fields``, ``_validate``) and refused
with ``InvalidRequest``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ._errors import ConfigurationError

__all__ = ["at_least", "boolean", "int_between", "integer_at_least", "refuse"]


def refuse(setting: str, accepts: str, value: object) -> ConfigurationError:
    """The error for ``setting``: what it accepts and what it got."""
    from ._fields import safe_repr

    shown = f"{type(value).__name__} {safe_repr(value)}"
    return ConfigurationError(f"{setting} must be {accepts}, got {shown}")


def at_least(minimum: float, *, strict: bool = False) -> Callable[[Any, Any, Any], None]:
    """An attrs validator: a finite number ≥ ``minimum`` (> with ``strict``), not a bool."""
    accepts = f"a finite number {'>' if strict else '≥'} {minimum:g}"

    def check(instance: object, attribute: Any, value: object) -> None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):  # type: ignore[arg-type]
            raise refuse(attribute.name, accepts, value)
        if value < minimum or (strict and value == minimum):  # type: ignore[operator]
            raise refuse(attribute.name, accepts, value)

    return check


def integer_at_least(minimum: int) -> Callable[[Any, Any, Any], None]:
    """An attrs validator: an int (not a bool) ≥ ``minimum``."""

    def check(instance: object, attribute: Any, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise refuse(attribute.name, f"an int ≥ {minimum}", value)

    return check


def boolean(instance: object, attribute: Any, value: object) -> None:
    """An attrs validator: True or False."""
    if not isinstance(value, bool):
        raise refuse(attribute.name, "True or False", value)


def int_between(setting: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an int (not a bool) from ``low`` to ``high``.

    Raises:
        ConfigurationError: Anything else, naming ``setting``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise refuse(setting, f"an int from {low} to {high}", value)
    return value
