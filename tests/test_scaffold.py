"""`refund-adapter new-plugin`: what it writes installs into a fresh venv, passes its own tests there against the
testing kit, is ruff-clean and is listed by that venv's `refund-adapter plugins`; what it refuses, it refuses
before writing anything."""

from __future__ import annotations

import json
import re
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from refund_adapter.cli import main
from tests.test_plugin_fence import fence_violations, is_test_file

STEP_TIMEOUT_S = 300  # one step (an install, the plugin's test run) on a loaded 2-core machine


def run(*args: str | Path, cwd: Path | None = None) -> str:
    """Run one step; fail the test with the step's whole output unless it exits 0."""
    command = [str(arg) for arg in args]
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} took over {STEP_TIMEOUT_S} s\n{exc.stdout}\n{exc.stderr}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}",
            pytrace=False,
        )
    return done.stdout


def fresh_venv(path: Path) -> Path:
    """A new venv that sees what this interpreter sees (the core, its test dependencies, pip, setuptools) and
    nothing installed in it yet; its python. `--system-site-packages` alone would miss a development venv's own
    packages, so this interpreter's site directories are added through a `.pth` file."""
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", path)
    python = path / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    ours = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]])  # ordered, no repeats
    (purelib / "parent_environment.pth").write_text(
        "".join(f"import site; site.addsitedir({directory!r})\n" for directory in ours), encoding="utf-8"
    )
    return python


def test_a_new_plugin_installs_passes_its_tests_and_is_listed(tmp_path: Path) -> None:
    plugin = tmp_path / "refund-adapter-acme-pay"
    result = CliRunner().invoke(main, ["new-plugin", "acme_pay", "--dir", str(plugin)])
    assert result.exit_code == 0, result.output
    assert (plugin / "refund_adapter_acme_pay" / "adapter.py").is_file()

    python = fresh_venv(tmp_path / "venv")
    assert "acme_pay" not in run(python, "-m", "refund_adapter", "plugins")
    run(python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", plugin)
    # -P: the installed copy is tested, not the source folder beside the tests.
    tested = run(python, "-P", "-m", "pytest", "-p", "no:cacheprovider", cwd=plugin)
    assert {"tests/test_conformance.py", "tests/test_adapter.py", "tests/test_settings.py"} <= set(
        re.findall(r"^(tests/\S+\.py) ", tested, re.M)
    ), tested
    assert re.search(r"^=+ \d+ passed in ", tested, re.M), tested  # nothing skipped, deselected or expected to fail
    run(python, "-m", "ruff", "check", "--quiet", "--no-cache", plugin)

    listed = {entry["name"]: entry for entry in json.loads(run(python, "-m", "refund_adapter", "plugins"))}
    assert listed["acme_pay"] == {
        "name": "acme_pay",
        "version": "0.1.0",
        "distribution": "refund-adapter-acme-pay",
        "hooks": ["register_platforms"],
    }


@pytest.mark.parametrize("name", ["Acme", "1acme", "acme-pay", "acme_", "acme__pay", "", "a" * 33, "acmé"])
def test_a_bad_name_is_refused_and_nothing_written(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(main, ["new-plugin", name, "--dir", str(tmp_path / "plugin")])
    assert result.exit_code == 1
    assert f"Error: {name!r} is not a plugin name: use 1-32 lowercase letters" in result.output
    assert not (tmp_path / "plugin").exists()


def test_the_name_of_an_installed_plugin_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new-plugin", "generic", "--dir", str(tmp_path / "plugin")])
    assert result.exit_code == 1
    assert "Error: a plugin named 'generic' is already installed: choose another name" in result.output
    assert not (tmp_path / "plugin").exists()


def test_a_directory_with_files_is_never_written_into(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(main, ["new-plugin", "acme", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"Error: {tmp_path} already exists and is not empty" in result.output
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plugin").write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(main, ["new-plugin", "acme", "--dir", str(tmp_path / "plugin")])
    assert result.exit_code == 1
    assert f"Error: {tmp_path / 'plugin'} exists and is not a directory" in result.output


def test_an_empty_directory_is_used_and_the_default_is_named_after_the_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["new-plugin", "acme", "--dir", str(tmp_path / "empty")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "empty" / "refund_adapter_acme" / "__init__.py").is_file()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["new-plugin", "acme"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "refund-adapter-acme" / "pyproject.toml").is_file()


def test_the_new_plugin_imports_nothing_of_the_core_but_the_public_api_and_the_kit(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new-plugin", "acme", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*.py"))
    assert len(files) >= 5
    violations = {
        str(path): found
        for path in files
        if (found := fence_violations((tmp_path / path).read_text(encoding="utf-8"), test_file=is_test_file(path)))
    }
    assert violations == {}
