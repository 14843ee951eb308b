"""MkDocs hook: the API reference must show every name the package exports.

The reference pages list their objects by hand, grouped by topic; this fails
the (strict) build when a name in ``nim_async.__all__`` or
``nim_async.testing.__all__`` has no entry, so a new export cannot be left out.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.api_reference")

# module file -> (reference page, the dotted prefix of its anchors)
_EXPORTS = {
    "nim_async/__init__.py": ("reference/nim_async.md", "nim_async"),
    "nim_async/testing/__init__.py": ("reference/testing.md", "nim_async.testing"),
    "nim_async/testing/pytest_plugin.py": (
        "reference/testing.md",
        "nim_async.testing.pytest_plugin",
    ),
}


def _all(path: Path) -> list[str]:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return list(ast.literal_eval(node.value))  # type: ignore[arg-type]
    return []


def on_page_content(html: str, page: Any, config: Any, **kwargs: Any) -> str:
    root = Path(config["config_file_path"]).parent
    for source, (doc, prefix) in _EXPORTS.items():
        if page.file.src_uri != doc:
            continue
        for name in _all(root / source):
            if f'id="{prefix}.{name}"' not in html:
                log.warning("%s: %s.%s is exported but not documented", doc, prefix, name)
    return html
