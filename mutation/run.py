"""./dev.sh mutate: mutation testing of the security-critical modules with mutmut.

    ./dev.sh mutate                  every module of mutation/modules.toml, then the score
    ./dev.sh mutate security tickets only these modules (their mutants are all rerun)
    ./dev.sh mutate --survivors security   rerun only the last run's survivors (after adding
                                     tests; the module's source unchanged); the others keep
                                     their results, even when mutmut reset them (a test file
                                     added to the module's list)
    ./dev.sh mutate --score          the score of the last run, without running anything
    ./dev.sh mutate --fail-under 90  exit 1 when the overall score is lower

Each module runs in a folder of its own (.mutate/<module>) against its own fast tests
(mutation/modules.toml); each mutant runs those of them that called the mutated function
in a clean run, fastest first, stopping at the first failure. Equivalent mutants are
listed in mutation/equivalent.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from mutation.modules import Module, resolve
from mutation.score import load_equivalents, score
from mutation.score import main as score_main


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="./dev.sh mutate", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("modules", nargs="*", help="e.g. security, tickets (default: all)")
    parser.add_argument("--score", action="store_true", help="only print the last run's score")
    parser.add_argument(
        "--survivors", action="store_true", help="rerun only the last run's survivors"
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--fail-under", type=float, default=None, metavar="PERCENT")
    args = parser.parse_args()
    targets = resolve(args.modules)
    if not args.score:
        env = dict(os.environ)
        # SQLite only: a PostgreSQL server would multiply each mutant's time.
        env.pop("AUTHDEMO_TEST_POSTGRES_URL", None)
        for target in targets:  # one module at a time, each saved as it ends
            print(f"== {target.name}: {target.path} against {' '.join(target.tests)}", flush=True)
            names = [target.glob]
            before = None
            if args.survivors:
                last = score(target, load_equivalents(), [])
                names = [name for name, _, _ in last.survivors] if last else names
                if not names:
                    continue
                before = _results(target)
            target.prepare()
            command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs)]
            done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
                [*command, *names], cwd=target.folder, env=env, check=False
            )
            if before is not None:
                kept = keep_results(target, before, set(names))
                if kept:
                    print(f"kept {kept} result(s) of mutants not rerun", flush=True)
            if done.returncode != 0:
                print(f"mutmut failed on {target.path} (exit {done.returncode})", file=sys.stderr)
                return done.returncode
    score_args = [target.name for target in targets]
    if args.fail_under is not None:
        score_args += ["--fail-under", str(args.fail_under)]
    return score_main(score_args)


def _results(target: Module) -> dict[str, Any] | None:
    """mutmut's saved results of ``target`` (its .meta file), or None before any run."""
    meta = target.mutants / (target.path + ".meta")
    return json.loads(meta.read_text()) if meta.exists() else None


def keep_results(target: Module, before: dict[str, Any] | None, rerun: set[str]) -> int:
    """Put back the results (``before``) of the mutants a --survivors run did not rerun.

    mutmut resets every saved result when its test selection changed (a test file added
    to the module's list in modules.toml) and then reruns only the mutants it was given,
    so the ones killed in the last full run came back "not checked" and counted as
    survivors. A result is put back only where the rerun left none and its function's
    source is unchanged (same hash): a changed function's mutants are new and unrun.
    Returns how many were put back.
    """
    after = _results(target)
    if before is None or after is None:
        return 0
    codes: dict[str, int | None] = after["exit_code_by_key"]
    old_hashes: dict[str, str] = before.get("hash_by_function_name", {})
    new_hashes: dict[str, str] = after.get("hash_by_function_name", {})
    kept = 0
    for name, code in before["exit_code_by_key"].items():
        if name in rerun or code is None or name not in codes or codes[name] is not None:
            continue
        function = name.rsplit(".", 1)[-1].partition("__mutmut_")[0]
        if function not in old_hashes or old_hashes[function] != new_hashes.get(function):
            continue
        codes[name] = code
        kept += 1
    if kept:
        meta = target.mutants / (target.path + ".meta")
        meta.write_text(json.dumps(after, indent=4))
    return kept


if __name__ == "__main__":
    sys.exit(main())
