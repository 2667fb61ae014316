"""docs/writing_plugins.md shows real code: each excerpt that names its file (`# plugins/...` as its first line)
is found there verbatim, and the scaffold's tree is what `new-plugin` writes, so the tutorial cannot drift from
the code it teaches with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from refund_adapter.scaffold import PluginNames, render

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "writing_plugins.md"
EXCERPTS = [
    (match["path"], match["code"])
    for match in re.finditer(
        r"^```python\n# (?P<path>[\w/.]+\.py)\n(?P<code>.*?)^```$", TUTORIAL.read_text(encoding="utf-8"), re.M | re.S
    )
]


def test_the_tutorial_has_excerpts() -> None:
    assert len(EXCERPTS) >= 8, "the excerpt pattern no longer matches docs/writing_plugins.md"


@pytest.mark.parametrize(("path", "code"), EXCERPTS, ids=[f"{path}:{i}" for i, (path, _) in enumerate(EXCERPTS)])
def test_each_excerpt_is_the_real_code(path: str, code: str) -> None:
    assert code in (ROOT / path).read_text(encoding="utf-8"), f"docs/writing_plugins.md shows {path} as it is not"


def test_the_readme_links_the_tutorial() -> None:
    assert "(docs/writing_plugins.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_scaffold_writes_the_files_the_tutorial_lists() -> None:
    tree = re.search(r"^```\n(refund-adapter-acme/\n.*?)^```$", TUTORIAL.read_text(encoding="utf-8"), re.M | re.S)
    assert tree is not None, "docs/writing_plugins.md no longer shows the scaffold's tree"
    listed, folders = set(), []
    for line in tree[1].splitlines()[1:]:
        depth, name = (len(line) - len(line.lstrip())) // 2, line.split()[0]
        del folders[depth - 1 :]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            listed.add(Path(*folders, name))
    assert listed == set(render(PluginNames.of("acme"), "0.1.0"))
