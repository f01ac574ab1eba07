"""Score of the last mutation run: per module, killed/total with equivalent mutants excluded.

Reads mutmut's result files (``.mutate/<module>/mutants/<path>.meta``) and
``mutation/equivalent.txt``.
An equivalent entry names a mutant and the line that mutant changes; when the code moved
and the same name now changes another line, the entry no longer applies (and is reported
as stale) rather than hiding a new survivor.

    python -m mutation.score [MODULE ...] [--fail-under PERCENT]
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mutation.modules import Module, resolve

EQUIVALENT = Path(__file__).resolve().parent / "equivalent.txt"

# mutmut's exit codes (mutmut/stats.py): detected = a test failed, timed out or crashed.
DETECTED: dict[int, str] = {
    1: "killed",
    3: "killed",
    36: "timeout",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "segfault",
    -9: "segfault",
}
UNDETECTED = {
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    35: "suspicious",
    None: "not checked",
    2: "interrupted",
}


@dataclass
class Equivalent:
    name: str
    line: str
    why: str


def load_equivalents() -> dict[str, Equivalent]:
    """``name | mutated line | why``, one a line (no " | " in why); # starts a comment."""
    entries: dict[str, Equivalent] = {}
    for number, raw in enumerate(EQUIVALENT.read_text().splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        # The mutated line may hold " | " itself: the name is the first field, why the last.
        name, _, rest = raw.partition(" | ")
        line, _, why = rest.rpartition(" | ")
        parts = [name.strip(), line.strip(), why.strip()]
        if not all(parts):
            raise SystemExit(f"{EQUIVALENT}:{number}: expected 'name | mutated line | why'")
        entries[parts[0]] = Equivalent(*parts)
    return entries


class MutantSources:
    """The changed lines of each mutant, from mutmut's generated module."""

    def __init__(self, generated: Path) -> None:
        self.source = generated.read_text()
        self.functions: dict[str, str] = {}
        # Sliced by line numbers: ast.get_source_segment re-splits the whole (large,
        # generated) file for every function, which made scoring take minutes.
        lines = self.source.splitlines(keepends=True)
        for node in ast.walk(ast.parse(self.source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if "__mutmut_" in node.name:
                end = node.end_lineno or node.lineno
                segment = "".join(lines[node.lineno - 1 : end])
                # Nameless, so that only what the mutant changed differs.
                self.functions[node.name] = segment.replace(node.name, "", 1)

    def changed(self, mutant: str) -> list[str]:
        function = mutant.rsplit(".", 1)[-1]
        original = self.functions.get(function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig", "")
        mutated = self.functions.get(function, "")
        diff = difflib.unified_diff(original.splitlines(), mutated.splitlines(), lineterm="", n=0)
        lines = [line for line in diff if line[:3] not in ("+++", "---", "@@ ")]
        added = [line[1:].strip() for line in lines if line.startswith("+")]
        return added or [f"(removed) {line[1:].strip()}" for line in lines]


@dataclass
class ModuleScore:
    path: str
    detected: int = 0
    """Killed, timed out (counted as caught: a hang is a failure) or crashed."""
    timeouts: int = 0
    equivalent: int = 0
    survivors: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.detected + len(self.survivors)

    @property
    def percent(self) -> float:
        return 100.0 * self.detected / self.total if self.total else 100.0


def score(
    target: Module, equivalents: dict[str, Equivalent], stale: list[str]
) -> ModuleScore | None:
    meta = target.mutants / (target.path + ".meta")
    if not meta.exists():
        return None
    results: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    sources = MutantSources(target.mutants / target.path)
    module = ModuleScore(target.path)
    for name, code in sorted(results.items(), key=lambda kv: _natural(kv[0])):
        timed_out = code is not None and DETECTED.get(code) == "timeout"
        if name in equivalents and timed_out:
            # An equivalent mutant that ran out of time did so because the machine was
            # busy: it is still equivalent, not caught.
            module.equivalent += 1
            continue
        if code in DETECTED:
            module.detected += 1
            module.timeouts += timed_out
            if name in equivalents:
                stale.append(f"{name}: listed as equivalent but killed (renumbered?)")
            continue
        changed = sources.changed(name)
        entry = equivalents.get(name)
        if entry is not None:
            if entry.line in changed:
                module.equivalent += 1
                continue
            stale.append(f"{name}: listed for `{entry.line}` but now changes {changed}")
        module.survivors.append((name, UNDETECTED.get(code, "suspicious"), changed))
    return module


def _natural(name: str) -> tuple[str, int]:
    head, _, number = name.rpartition("__mutmut_")
    return head, int(number) if number.isdigit() else -1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="e.g. security, http/tickets (default: all)")
    parser.add_argument("--fail-under", type=float, default=None, metavar="PERCENT")
    args = parser.parse_args(argv)
    equivalents = load_equivalents()
    stale: list[str] = []
    scores = []
    for target in resolve(args.modules):
        module = score(target, equivalents, stale)
        if module is None:
            print(f"{target.path:36} not run yet")
            continue
        scores.append(module)
    for module in scores:
        for name, status, changed in module.survivors:
            print(f"  {status:11} {name}")
            for line in changed or ["(mutant source not found)"]:
                print(f"              + {line}")
    print()
    print(f"{'module':36} {'killed/total':>12} {'score':>7} {'equivalent':>10} {'timeouts':>8}")
    for module in scores:
        print(
            f"{module.path:36} {f'{module.detected}/{module.total}':>12} "
            f"{module.percent:6.1f}% {module.equivalent:>10} {module.timeouts:>8}"
        )
    detected = sum(m.detected for m in scores)
    total = sum(m.total for m in scores)
    overall = 100.0 * detected / total if total else 100.0
    equivalent = sum(m.equivalent for m in scores)
    timeouts = sum(m.timeouts for m in scores)
    print(
        f"{'overall':36} {f'{detected}/{total}':>12} {overall:6.1f}% {equivalent:>10} {timeouts:>8}"
    )
    for line in stale:
        print(f"stale equivalent: {line}", file=sys.stderr)
    if args.fail_under is not None and overall < args.fail_under:
        print(f"score {overall:.1f}% is under {args.fail_under}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
