"""The top entries of a profile in collapsed-stack form (py-spy's `--format raw`, as `bench/e2e.py --profile`
writes): each function's share of the samples, inclusive (anywhere on the stack) and self (the innermost frame).

    python bench/stacks.py /tmp/prof/serve-sqlite-10000.txt [--top 25] [--match refund_adapter]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \(([^)]*?)(?::\d+)?\)$")  # "name (path:line)" -> "name (path)": lines of one function merge


def frame_name(frame: str) -> str:
    name = _LINE.sub(lambda m: f" ({Path(m.group(1)).name})", frame.strip())
    return name


def tally(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Samples in all, and per function: samples with it on the stack, samples with it innermost."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [frame_name(frame) for frame in stack.split(";")]
        total += samples
        for name in set(frames):
            inclusive[name] += samples
        own[frames[-1]] += samples
    return total, inclusive, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only functions whose name or file contains this")
    args = parser.parse_args()
    total, inclusive, own = tally(args.profile)
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"-- {title}")
        shown = [(name, n) for name, n in counter.most_common() if args.match in name][: args.top]
        for name, samples in shown:
            print(f"{samples / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
