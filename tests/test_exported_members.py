"""The public API is exactly what __all__ says, and __all__ is sorted."""

from __future__ import annotations

import inspect

import nim_async
import nim_async.testing


def test_all_is_sorted_and_complete() -> None:
    """Every public name is exported and nothing private leaks."""
    for module in (nim_async, nim_async.testing):
        public = {name for name in dir(module) if not name.startswith("_")}
        submodules = {"annotations", "pytest_plugin", "testing"}
        assert set(module.__all__) == public - submodules
        assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))


def test_every_client_method_is_defined_in_a_class_body() -> None:
    """No method is a module function bound as a class attribute (``x = _other.x``)."""
    for name, function in inspect.getmembers(nim_async.NimClient, inspect.isfunction):
        owner = function.__qualname__.rpartition(".")[0]
        assert owner in {"NimClient", "BaseClient"}, f"{name} is {function.__qualname__}"
        if owner == "NimClient":
            assert function.__module__ == nim_async.NimClient.__module__
