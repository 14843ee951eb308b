"""Optional dependencies: one clear error when an extra's package is not installed.

nim_async is installed from a checkout or a built wheel, with extras such as
``emulator`` or ``redis``. A feature that needs an extra imports its packages
inside `needs_extra`, so that a missing one says which extra to install
instead of failing deep inside with a bare ``No module named ...``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["install_hint", "needs_extra"]


def install_hint(feature: str, extra: str) -> str:
    """What to install for ``feature``: the extra, from an index and from a checkout."""
    return (
        f"{feature} needs the {extra!r} extra: pip install 'nim-async[{extra}]' "
        f"(from a checkout: pip install '.[{extra}]')"
    )


@contextlib.contextmanager
def needs_extra(feature: str, extra: str, provides: frozenset[str]) -> Iterator[None]:
    """Turn a missing package of ``extra``, imported in the block, into an error naming it.

    Args:
        feature: What needs the extra, as the user knows it (``"RedisLimiter"``).
        extra: The extra's name in ``pyproject.toml``.
        provides: The top-level modules the extra's packages install.

    Raises:
        ModuleNotFoundError: A module of ``provides`` is missing: the message names
            the extra and the module, the original error is its ``__cause__``. A
            missing module the extra does not provide goes through unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in provides:
            raise
        message = f"{install_hint(feature, extra)}; missing module: {missing!r}"
        raise ModuleNotFoundError(message, name=error.name) from error
