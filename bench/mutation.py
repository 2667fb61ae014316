"""Mutation testing (mutmut 3) of the code that moves money: does a test fail when the code is wrong?

mutmut changes one thing at a time in a module (an operator, a constant, a condition, a returned value) and runs
the tests that execute the changed function; a mutant no test notices ("survived") is a bug the suite would let
through. Not part of CI: a campaign takes tens of minutes. mutmut is in the `test` extra
(`pip install -e '.[test]'`, or `pip install mutmut`).

    python bench/mutation.py --list                     # the targets: modules mutated, tests run
    python bench/mutation.py reporter alipay_notifies   # run those targets (resumes an earlier run)
    python bench/mutation.py --budget 1800              # every target, stopping after 30 minutes
    python bench/mutation.py --report --markdown out.md # scores and surviving mutants of what has run
    python bench/mutation.py reporter --survivors       # after adding tests: rerun only last run's survivors
    python bench/mutation.py codec --fresh              # forget earlier results (after changing the code)

Each target runs in its own folder, .mutation/<target>/ (a copy of refund_adapter/ and tests/ with a
`[tool.mutmut]` section added to a copy of pyproject.toml), so targets keep their own test selection and a
stopped run resumes where it stopped. mutmut first runs the target's tests once to learn which test executes
which function, then runs each mutant against those tests only. Bounded for a shared machine: one mutant at a
time (`--children`), at low priority, and `--budget` seconds in all; what the budget cut off is reported as
"not run". Logging calls are not mutated (their text is not behaviour; `do_not_mutate_patterns`). Only the
SQLite cases run: the shared PostgreSQL server is spared a database per mutant (store/postgres.py is not
mutated; store/sql.py is the same code on both backends).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
ENGINE_TESTS = ["tests/engine/", "tests/test_end_to_end.py"]
# Not mutated: a logging call (its text and arguments are not behaviour), wherever it starts.
DO_NOT_MUTATE = [r"^\s*log\.(debug|info|warning|error|exception)\("]
# mutmut's verdicts; "not checked" is a mutant the budget left unrun.
KILLED = ("killed", "timeout", "caught by type check")
NOT_RUN = ("not checked", "skipped")
SURVIVED = ("survived", "no tests", "suspicious")


@dataclass(frozen=True)
class Target:
    modules: tuple[str, ...]  # files mutated
    tests: tuple[str, ...]  # pytest arguments selecting the tests that may kill them (fast ones only)
    functions: tuple[str, ...] = ()  # fnmatch patterns of mutant names; empty: every function of the modules


# The codec target's functions, by module of refund_adapter/channels/mapi/.
CODEC_FUNCTIONS = {
    "batch_no": ("_plain_date", "_base36", "batch_serial", "batch_no_date", "validate_batch_no", "build_batch_no"),
    "detail_data": (
        "_check_count", "_validate_detail", "_validate_details", "_detail_text", "_decode_detail",
        "encode_detail_data", "decode_detail_data", "batch_num",
    ),
    "wire": ("join_items", "split_items", "split_fields", "split_sub_trade"),
    "results": ("_validate_item", "_decode_trade_result", "_decode_item", "decode_result_details"),
    "notify": ("_param", "_required", "_descriptive", "read_notify_id", "parse_refund_notify", "parse_dback_notify"),
}

TARGETS = {
    "alipay_notifies": Target(
        ("refund_adapter/engine/alipay_notifies.py", "refund_adapter/web/alipay.py"),
        ("tests/test_notify_security.py", *ENGINE_TESTS),
    ),
    "submitter": Target(("refund_adapter/engine/submitter.py",), tuple(ENGINE_TESTS)),
    "reporter": Target(("refund_adapter/engine/reporter.py",), (*ENGINE_TESTS, "tests/generic/")),
    "alipay_query": Target(("refund_adapter/engine/alipay_query.py",), tuple(ENGINE_TESTS)),
    "engine": Target(
        tuple(f"refund_adapter/engine/{name}.py"
              for name in ("__init__", "batcher", "intake", "platform_poller", "pressure", "runtime")),
        (*ENGINE_TESTS, "tests/test_webhook_intake.py"),
    ),
    "store": Target(
        ("refund_adapter/store/sql.py", "refund_adapter/store/sqlite.py", "refund_adapter/store/base.py",
         "refund_adapter/store/plugin_data.py"),
        ("tests/store/", *ENGINE_TESTS),
    ),
    # The codec's batch_no, detail_data and notify parsing (its property tests run 200 examples each, so the
    # rest of the codec is left to a longer campaign: `--all-codec`).
    "codec": Target(
        tuple(f"refund_adapter/channels/mapi/{module}.py" for module in CODEC_FUNCTIONS),
        ("tests/channels/mapi/test_codec.py",),
        tuple(
            f"refund_adapter.channels.mapi.{module}.x_{name}__mutmut_*"
            for module, names in CODEC_FUNCTIONS.items()
            for name in names
        ),
    ),
}


def toml_list(values: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(values))  # a JSON array of strings is a TOML array of basic strings


def prepare(name: str, target: Target, fresh: bool) -> Path:
    """The target's folder: the code and tests as they are now, and the mutmut settings for this target."""
    folder = WORK / name
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns("__pycache__", "*.db", "*.db-*", ".hypothesis")
    for tree in ("refund_adapter", "tests"):
        shutil.copytree(ROOT / tree, folder / tree, ignore=skip, dirs_exist_ok=True)
    section = f"""
[tool.mutmut]
source_paths = ["refund_adapter"]
only_mutate = {toml_list(target.modules)}
do_not_mutate_patterns = {toml_list(DO_NOT_MUTATE)}
pytest_add_cli_args_test_selection = {toml_list(target.tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x", "-k", "not postgres"]
"""
    (folder / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + section)
    return folder


def run(name: str, target: Target, folder: Path, children: int, seconds: float, only: list[str]) -> bool:
    """Run the target's mutants (`only` these, when given); False when the budget stopped it first (its results
    so far are kept)."""
    log = (folder / "run.log").open("w")
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *(only or target.functions)]
    print(f"[{name}] mutating {', '.join(target.modules)}; tests {' '.join(target.tests)}; "
          f"budget {seconds:.0f}s", flush=True)
    process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=lambda: os.nice(10))
    try:
        process.wait(timeout=max(1.0, seconds))
        return True
    except subprocess.TimeoutExpired:
        print(f"[{name}] budget spent: stopping mutmut", flush=True)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return False
    finally:
        log.close()


_RESULT = re.compile(r"^\s+(\S+): (.+)$")
_MODULE = re.compile(r"^(.*?)\.x[_ǁ]")


def results(folder: Path) -> dict[str, str]:
    """mutant name -> mutmut's verdict, for every mutant of the target's modules."""
    if not (folder / "mutants").exists():
        return {}
    done = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=folder,
                          capture_output=True, text=True, check=False)
    return {m[1]: m[2] for line in done.stdout.splitlines() if (m := _RESULT.match(line))}


def diff(folder: Path, mutant: str) -> list[str]:
    """The changed lines of one mutant, as `-old` / `+new`."""
    done = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=folder, capture_output=True,
                          text=True, check=False)
    return [line.rstrip() for line in done.stdout.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def summarise(name: str, target: Target, folder: Path) -> dict[str, Any]:
    verdicts = {m: v for m, v in results(folder).items()
                if not target.functions or any(re.fullmatch(p.replace("*", ".*"), m) for p in target.functions)}
    modules: dict[str, Counter[str]] = {}
    for mutant, verdict in verdicts.items():
        found = _MODULE.match(mutant)
        modules.setdefault(found[1] if found else "?", Counter())[verdict] += 1
    survivors = [m for m, v in verdicts.items() if v in SURVIVED]
    return {
        "target": name,
        "modules": {module: score(counts) for module, counts in sorted(modules.items())},
        "survivors": {m: {"verdict": verdicts[m], "diff": diff(folder, m)} for m in survivors},
    }


def score(counts: Counter[str]) -> dict[str, Any]:
    run_ = sum(n for verdict, n in counts.items() if verdict not in NOT_RUN)
    killed = sum(counts[v] for v in KILLED)
    return {
        "mutants": sum(counts.values()), "run": run_, "killed": killed, "survived": run_ - killed,
        "not_run": sum(counts[v] for v in NOT_RUN), "verdicts": dict(counts),
        "score": round(killed / run_, 3) if run_ else None,
    }


def markdown(summaries: list[dict[str, Any]]) -> str:
    lines = ["| module | mutants | run | killed | survived | not run | score |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for summary in summaries:
        for module, row in summary["modules"].items():
            lines.append(f"| `{module}` | {row['mutants']} | {row['run']} | {row['killed']} | {row['survived']} | "
                         f"{row['not_run']} | {row['score']} |")
    lines.append("")
    for summary in summaries:
        for mutant, found in summary["survivors"].items():
            changed = " / ".join(f"`{line.strip()}`" for line in found["diff"]) or "(no diff)"
            lines.append(f"- `{mutant}` ({found['verdict']}): {changed}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"targets to run (default: all of {', '.join(TARGETS)})")
    parser.add_argument("--budget", type=float, default=3600, help="seconds for the whole run (default 3600)")
    parser.add_argument("--children", type=int, default=1, help="mutants run at once (default 1: a shared machine)")
    parser.add_argument("--fresh", action="store_true", help="discard the targets' earlier results first")
    parser.add_argument("--report", action="store_true", help="only report what earlier runs found")
    parser.add_argument("--survivors", action="store_true",
                        help="run again only the mutants that survived the last run (after adding tests)")
    parser.add_argument("--all-codec", action="store_true", help="mutate every function of the codec")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--markdown", type=Path, help="also write the scores and survivors as markdown here")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object (last line)")
    args = parser.parse_args()
    targets = dict(TARGETS)
    if args.all_codec:
        targets["codec"] = Target(TARGETS["codec"].modules, TARGETS["codec"].tests)
    chosen = args.targets or list(targets)
    unknown = [name for name in chosen if name not in targets]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(targets)}")
    if args.list:
        for name in chosen:
            print(f"{name}: {' '.join(targets[name].modules)}\n    tests: {' '.join(targets[name].tests)}")
        return 0
    deadline = time.monotonic() + args.budget
    summaries = []
    for name in chosen:
        folder = WORK / name
        if not args.report and time.monotonic() >= deadline:
            print(f"[{name}] not run: the budget is spent", flush=True)
        elif not args.report:
            only = [m for m, verdict in results(folder).items() if verdict in SURVIVED] if args.survivors else []
            if args.survivors and not only:
                print(f"[{name}] no survivors to run again", flush=True)
                summaries.append(summarise(name, targets[name], folder))
                continue
            folder = prepare(name, targets[name], args.fresh)
            started = time.monotonic()
            finished = run(name, targets[name], folder, args.children, deadline - started, only)
            print(f"[{name}] {'finished' if finished else 'stopped'} after {time.monotonic() - started:.0f}s",
                  flush=True)
        summaries.append(summarise(name, targets[name], folder))
    text = markdown(summaries)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        print(json.dumps(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
