"""Every hook is documented with its exact signature and has a `test_hook_<name>` test (datasette's rule).

A hook nobody documents is a hook nobody can rely on; one nobody tests drifts silently. A documented hook that
no longer exists is caught too.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from refund_adapter import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugin_hooks.md"

HOOKS = {
    name: ", ".join(inspect.signature(function).parameters)
    for name, function in vars(hookspecs).items()
    if callable(function) and hasattr(function, "refund_adapter_spec")
}
# A hook's heading is exactly its call: `### register_platforms(register, config, http)`.
DOCUMENTED = dict(re.findall(r"^### (\w+)\((.*)\)\s*$", DOCS.read_text(encoding="utf-8"), re.MULTILINE))
TESTED = {
    name
    for path in (ROOT / "tests").rglob("*.py")
    for name in re.findall(r"^\s*(?:async )?def test_hook_(\w+)\(", path.read_text(encoding="utf-8"), re.MULTILINE)
}


def test_hookspecs_are_found() -> None:
    assert HOOKS, "no hookspec found in refund_adapter/hookspecs.py"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_each_hook_is_documented_with_its_signature(hook: str) -> None:
    assert hook in DOCUMENTED, f"docs/plugin_hooks.md has no '### {hook}({HOOKS[hook]})' heading"
    assert DOCUMENTED[hook] == HOOKS[hook], f"docs/plugin_hooks.md shows {hook}({DOCUMENTED[hook]})"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_each_hook_has_a_test(hook: str) -> None:
    assert hook in TESTED, f"no test function named test_hook_{hook} under tests/"


def test_documented_hooks_exist() -> None:
    assert set(DOCUMENTED) <= set(HOOKS), f"documented but not hooks: {sorted(set(DOCUMENTED) - set(HOOKS))}"
