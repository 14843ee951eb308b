"""The ``emulator`` extra: one clear error when its packages are not installed.

Importing `nim_async.testing` needs none of them (the pytest plugin loads without
them); serving does: Starlette and python-multipart for the app, uvicorn for a
real port. `needs_extra` wraps the imports at those points of use, so that a
missing package says which extra to install instead of failing deep inside.
"""

from __future__ import annotations

import contextlib

from nim_async._extras import install_hint
from nim_async._extras import needs_extra as _needs_extra

__all__ = ["INSTALL_HINT", "needs_extra"]

INSTALL_HINT = install_hint("nim_async.testing", "emulator")

# The top-level modules the extra provides (python-multipart: "python_multipart",
# and "multipart" before its 0.0.13).
_PROVIDED = frozenset({"starlette", "python_multipart", "multipart", "uvicorn"})


def needs_extra() -> contextlib.AbstractContextManager[None]:
    """Turn a missing package of the ``emulator`` extra, imported in the block, into an error.

    Raises:
        ModuleNotFoundError: A package of the extra is missing: the message names the
            extra and the missing module, the original error is its ``__cause__``.
            A missing module that is not the extra's goes through unchanged.
    """
    return _needs_extra("nim_async.testing", "emulator", _PROVIDED)
