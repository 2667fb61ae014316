"""The fence around the core: plugins import only its public API, and its testing kit names no platform.

Every `*.py` under `plugins/` (a new platform's directory included, as soon as it exists) may import from the core
`refund_adapter.plugin_api` only, or the same names from the package root; a plugin's test files may also import
the testing kit `refund_adapter.testing`. Everything else in the core is private and may change under a plugin.
"""

from __future__ import annotations

import ast
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import refund_adapter
from refund_adapter import plugin_api

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
TESTING = ROOT / "refund_adapter" / "testing"
CORE = "refund_adapter"
PUBLIC = f"{CORE}.plugin_api"
KIT = f"{CORE}.testing"


def is_test_file(path: Path) -> bool:
    return path.name.startswith("test_") or path.name == "conftest.py" or "tests" in path.parts


def _core_module(name: str) -> bool:
    return name == CORE or name.startswith(CORE + ".")


def _allowed_module(name: str, test_file: bool) -> bool:
    return name == PUBLIC or (test_file and (name == KIT or name.startswith(KIT + ".")))


def fence_violations(source: str, *, test_file: bool = False) -> list[str]:
    """Each import of the core in `source` that goes past the public API, as `line: import`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {alias.name}" for alias in node.names
                      if _core_module(alias.name) and not _allowed_module(alias.name, test_file)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _core_module(node.module):
            if node.module == CORE:  # the root re-exports the public API, and nothing else may come from it
                names = [alias.name for alias in node.names]
                found += [f"{node.lineno}: from {CORE} import {name}" for name in names
                          if name not in plugin_api.__all__
                          and not (test_file and name == "testing")]
            elif not _allowed_module(node.module, test_file):
                found.append(f"{node.lineno}: from {node.module} import ...")
    return found


def plugin_files() -> list[Path]:
    return sorted(PLUGINS.rglob("*.py"))


def test_plugins_import_nothing_of_the_core_but_its_public_api() -> None:
    files = plugin_files()
    assert {path.relative_to(PLUGINS).parts[0] for path in files} >= {"generic", "shopify", "woocommerce"}
    violations = [
        f"{path.relative_to(ROOT)}:{violation}"
        for path in files
        for violation in fence_violations(path.read_text("utf-8"), test_file=is_test_file(path))
    ]
    assert violations == []


@pytest.mark.parametrize(
    ("source", "test_file", "expected"),
    [
        ("from refund_adapter.plugin_api import hookimpl", False, []),
        ("from refund_adapter import hookimpl, RefundRequest", False, []),
        ("import refund_adapter.plugin_api as api", False, []),
        ("from refund_adapter.testing import FakePlatform", True, []),
        ("from refund_adapter import testing", True, []),
        ("import os\nfrom .adapter import Acme", False, []),
        ("from refund_adapter.platform import PluginData", False, ["1: from refund_adapter.platform import ..."]),
        ("from refund_adapter import money", False, ["1: from refund_adapter import money"]),
        ("import refund_adapter", False, ["1: import refund_adapter"]),
        ("import refund_adapter.channels.mapi.errors", False, ["1: import refund_adapter.channels.mapi.errors"]),
        ("def f():\n    from refund_adapter.cli import main", False, ["2: from refund_adapter.cli import ..."]),
        ("from refund_adapter.testing import FakePlatform", False, ["1: from refund_adapter.testing import ..."]),
        ("from refund_adapter.testing.conformance import PlatformConformance", True, []),
    ],
)
def test_the_fence_tells_a_public_import_from_a_private_one(source: str, test_file: bool, expected: list[str]) -> None:
    assert fence_violations(source, test_file=test_file) == expected


def test_the_package_root_exports_exactly_the_public_api() -> None:
    assert refund_adapter.__all__ == plugin_api.__all__
    assert all(getattr(refund_adapter, name) is getattr(plugin_api, name) for name in plugin_api.__all__)


def platform_names() -> set[str]:
    """Every platform this installation knows of: the plugin entry points and the directories under plugins/."""
    names = {entry.name for entry in entry_points(group=CORE)}
    return names | {path.name for path in PLUGINS.iterdir() if (path / "__init__.py").exists()}


def naming_a_platform(source: str, platforms: set[str]) -> list[str]:
    """Lines of `source` that import a platform plugin's package or name a platform in any way (an identifier, a
    string, a comment: the kit is for every platform, so it speaks of none)."""
    word = re.compile(r"(?<![a-z])(" + "|".join(sorted(map(re.escape, platforms))) + r")(?![a-z])", re.IGNORECASE)
    packages = {f"{CORE}_{name}" for name in platforms}
    found = []
    for node in ast.walk(ast.parse(source)):
        imported = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [f"{node.lineno}: imports {name}" for name in imported if name.split(".")[0] in packages]
    found += [f"{number}: {line.strip()}" for number, line in enumerate(source.splitlines(), 1) if word.search(line)]
    return found


def test_the_testing_kit_names_no_platform() -> None:
    platforms = platform_names()
    assert {"generic", "shopify", "woocommerce"} <= platforms
    files = sorted(TESTING.rglob("*.py"))
    assert files, "the testing kit is a package"
    named = [f"{path.relative_to(ROOT)}:{line}"
             for path in files for line in naming_a_platform(path.read_text("utf-8"), platforms)]
    assert named == []


def test_naming_a_platform_is_seen() -> None:
    platforms = {"acme", "shopify"}
    assert naming_a_platform("from refund_adapter_acme import x\n", platforms) == [
        "1: imports refund_adapter_acme", "1: from refund_adapter_acme import x"]
    assert naming_a_platform("URL = '/webhooks/Shopify'\n", platforms) == ["1: URL = '/webhooks/Shopify'"]
    assert naming_a_platform("# a fake platform\nPLATFORMS = ()\n", platforms) == []
