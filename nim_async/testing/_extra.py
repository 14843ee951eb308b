"""The ``emulator`` extra: one clear error when its packages are not installed.

Importing `nim_async.testing` needs none of them (the pytest plugin loads without
them); serving does: Starlette and python-multipart for the app, uvicorn for a
real port. `needs_extra` wraps the imports at those points of use, so that a
missing package says which extra to install instead of failing deep inside.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["INSTALL_HINT", "needs_extra"]

INSTALL_HINT = (
    "nim_async.testing needs the 'emulator' extra: pip install 'nim-async[emulator]' "
    "(from a checkout: pip install '.[emulator]')"
)

# The top-level modules the extra provides (python-multipart: "python_multipart",
# and "multipart" before its 0.0.13).
_PROVIDED = frozenset({"starlette", "python_multipart", "multipart", "uvicorn"})


@contextlib.contextmanager
def needs_extra() -> Iterator[None]:
    """Turn a missing package of the extra, imported in the block, into an error naming it.

    Raises:
        ModuleNotFoundError: A package of the extra is missing: the message names the
            extra and the missing module, the original error is its ``__cause__``.
            A missing module that is not the extra's goes through unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in _PROVIDED:
            raise
        message = f"{INSTALL_HINT}; missing module: {missing!r}"
        raise ModuleNotFoundError(message, name=error.name) from error
