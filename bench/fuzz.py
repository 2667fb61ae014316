"""Long runs of the fuzzers in tests/fuzz: every public endpoint, N inputs per fuzzer instead of CI's 50.

    python bench/fuzz.py [--examples 2000] [--seed 1234] [-- extra pytest arguments]

Without `--seed` the run is derandomized like CI's (the same N inputs each time); with it hypothesis draws
afresh from that seed, so a series of seeds explores further. The counts of inputs tried per endpoint are
printed at the end, as in the test output; a failure prints the smallest input found, to keep as an @example.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="inputs per fuzzer (CI: 50)")
    parser.add_argument("--seed", type=int, help="draw afresh from this seed instead of CI's fixed inputs")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --), e.g. -k notify")
    args = parser.parse_args()
    env = {**os.environ, "REFUND_ADAPTER_FUZZ_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "fuzz")]
    if args.seed is not None:
        env["REFUND_ADAPTER_FUZZ_SEED"] = str(args.seed)
        command.append(f"--hypothesis-seed={args.seed}")
    return subprocess.run([*command, *args.pytest_args], env=env, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
