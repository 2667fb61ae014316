"""Every file in config/ checks: a whole configuration as it stands, a `*.fragment.yaml` merged into example.yaml.

Each is checked by `check-config` itself, with the environment variables it names set, so an example that a key
rename or a new rule broke fails here rather than on an operator's first start."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from refund_adapter.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "config"
EXAMPLE = CONFIG / "example.yaml"
FRAGMENT = ".fragment.yaml"
REQUIRED_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # `${NAME}`; `${NAME:-default}` needs nothing set


def _environment(*texts: str) -> dict[str, str]:
    """A value for every variable the files need set."""
    return {name: f"{name.lower()}-example-value" for text in texts for name in REQUIRED_ENV.findall(text)}


def _check(path: Path, env: dict[str, str]) -> str:
    """check-config's summary line; the test fails with its problems."""
    result = CliRunner().invoke(main, ["check-config", str(path)], env=env)
    assert result.exit_code == 0, f"{path.name}: {result.output}"
    assert result.output.startswith("ok: ")
    return result.output


def test_config_holds_only_whole_examples_and_fragments() -> None:
    files = sorted(path.name for path in CONFIG.iterdir())
    assert files and all(name.endswith((".yaml", ".yml")) for name in files), files


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG.iterdir() if not p.name.endswith(FRAGMENT)))
def test_a_whole_example_checks_as_it_stands(name: str) -> None:
    path = CONFIG / name
    _check(path, _environment(path.read_text("utf-8")))


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG.iterdir() if p.name.endswith(FRAGMENT)))
def test_a_fragment_merged_into_the_example_checks(name: str, tmp_path: Path) -> None:
    whole, part = EXAMPLE.read_text("utf-8"), (CONFIG / name).read_text("utf-8")
    fragment = yaml.safe_load(part)
    assert set(fragment) == {"platforms"}, f"{name}: a fragment holds only platform sections"
    merged = yaml.safe_load(whole)
    merged["platforms"] = {**(merged.get("platforms") or {}), **fragment["platforms"]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(merged), "utf-8")
    summary = _check(path, _environment(whole, part))
    assert all(platform in summary for platform in fragment["platforms"]), summary
