"""The public API is exactly what __all__ says, and __all__ is sorted."""

from __future__ import annotations

import nim_async
import nim_async.testing


def test_all_is_sorted_and_complete() -> None:
    """Every public name is exported and nothing private leaks."""
    for module in (nim_async, nim_async.testing):
        public = {name for name in dir(module) if not name.startswith("_")}
        submodules = {"annotations", "pytest_plugin", "testing"}
        assert set(module.__all__) == public - submodules
        assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
