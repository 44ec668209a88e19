"""Mutation scores per module from ``mutmut results --all true`` (run by
``tests/mutation_run.py``, or alone on the workspaces it left):

    python tests/mutation_scores.py [--target 85] [--dir .mutation/memory ...]

A mutant counts as caught when a test failed (killed) or hung past mutmut's timeout; one
that no selected test reaches ("no tests") counts as missed, like a survivor.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

LINE = re.compile(r"^\s*(?P<mutant>(?P<name>\S+)__mutmut_\d+): (?P<status>.+)$")
CAUGHT = {"killed", "timeout", "caught by type check", "segfault"}


def module_of(name: str) -> str:
    """``sam2flow.memory.recovery.x_next_chunk_size`` or ``...guard.xǁMemoryGuardǁcheck``
    -> ``sam2flow.memory.recovery`` / ``sam2flow.memory.guard``."""
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def scores(lines: list[str]) -> tuple[dict[str, Counter], dict[str, list[str]]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    missed: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        module, status = module_of(m["name"]), m["status"].strip()
        counts[module][status] += 1
        if status not in CAUGHT:
            missed[module].append(line.strip())
    return counts, missed


def results(directory: Path, mutmut: str) -> list[str]:
    """``mutmut results --all true`` of the mutmut workspace ``directory``."""
    return subprocess.run(
        [mutmut, "results", "--all", "true"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--target", type=float, default=85.0)
    p.add_argument("--mutmut", default=str(Path(sys.executable).with_name("mutmut")))
    p.add_argument("--dir", type=Path, action="append", help="a mutmut workspace (default: .)")
    args = p.parse_args(argv)
    out = [line for d in args.dir or [Path(".")] for line in results(d, args.mutmut)]
    counts, missed = scores(out)
    print("| module | mutants | killed | timeout | survived | no tests | score |")
    print("|---|---|---|---|---|---|---|")
    below = []
    for module in sorted(counts):
        c = counts[module]
        total = sum(c.values())
        caught = sum(c[s] for s in CAUGHT)
        score = 100 * caught / total
        below += [module] if score < args.target else []
        print(
            f"| `{module}` | {total} | {c['killed']} | {c['timeout']} | {c['survived']} | "
            f"{c['no tests']} | {score:.1f} % |"
        )
    for module in sorted(missed):
        print(f"\n{module}: {len(missed[module])} not caught")
        print("\n".join(f"    {line}" for line in missed[module]))
    if below:
        print(f"\nbelow {args.target:.0f} %: {', '.join(below)}", file=sys.stderr)
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
