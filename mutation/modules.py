"""The mutated modules (mutation/modules.toml) and the folder mutmut runs each one in."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutate"
LINKED = ("authdemo", "tests", "alembic.ini", "migrations")


@dataclass(frozen=True)
class Module:
    name: str
    path: str
    tests: tuple[str, ...]

    @property
    def folder(self) -> Path:
        """mutmut keeps its state in ``<folder>/mutants``; one folder a module, so each
        keeps its own test selection and cached results."""
        return WORK / self.name

    @property
    def mutants(self) -> Path:
        return self.folder / "mutants"

    @property
    def glob(self) -> str:
        """mutmut's name pattern of every mutant in the module."""
        return self.path.removesuffix(".py").replace("/", ".") + ".*"

    def prepare(self) -> None:
        """The folder: links to the checkout, and a pyproject.toml whose [tool.mutmut]
        mutates this module against its tests (pytest's own settings kept)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in LINKED:
            link = self.folder / name
            if not link.is_symlink():
                link.symlink_to(os.path.relpath(ROOT / name, self.folder))
        settings = {
            "source_paths": ["authdemo"],
            "only_mutate": [self.path],
            "also_copy": ["alembic.ini", "migrations"],
            "pytest_add_cli_args_test_selection": list(self.tests),
            # One process: mutmut reads which tests call what from its in-process plugin.
            "pytest_add_cli_args": ["-p", "no:cacheprovider", "-n", "0"],
            # A mutant that hangs (a lock never released) counts as caught after 5x the
            # time its tests took in the clean run.
            "timeout_multiplier": 5.0,
            "timeout_constant": 2.0,
        }
        table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
        own = (ROOT / "pyproject.toml").read_text()
        (self.folder / "pyproject.toml").write_text(f"{own}\n[tool.mutmut]\n{table}")
        # mutmut copies the package once and keeps the copy: refresh every file but the
        # mutated one (which it regenerates when it changed) and its results.
        copy = self.mutants / "authdemo"
        if copy.exists():
            keep = {self.mutants / self.path, self.mutants / (self.path + ".meta")}
            for file in copy.rglob("*"):
                if file.is_file() and file not in keep:
                    file.unlink()
            for folder in sorted(copy.rglob("*"), reverse=True):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


def modules() -> list[Module]:
    table = tomllib.loads((ROOT / "mutation" / "modules.toml").read_text())
    return [Module(name, entry["path"], tuple(entry["tests"])) for name, entry in table.items()]


def resolve(names: list[str]) -> list[Module]:
    """``security``, ``http/tickets`` or ``authdemo/http/tickets.py`` -> its module."""
    every = modules()
    if not names:
        return every
    chosen = []
    for name in names:
        bare = name.removesuffix(".py").removeprefix("authdemo/")
        found = [
            m
            for m in every
            if bare in (m.name, m.path.removesuffix(".py").removeprefix("authdemo/"))
        ]
        if not found:
            raise SystemExit(
                f"{name}: not a mutated module; one of {', '.join(m.name for m in every)}"
            )
        chosen += found
    return chosen
