"""The examples of the README and the documentation site, as the suite reads them.

The convention: a Python block meant to run is named by an HTML comment right before
its fence and closed by another right after it (neither shows on GitHub or in the
site)::

    <!-- example: app.py -->
    ```python
    ...
    ```
    <!-- /example -->

The name is the file the block is saved as (unique across README.md and docs/); other
examples may import it by that name (``env.py`` imports ``models``). Every ``python``
block of the README and the site is such an example: ``tests/test_docs_examples.py``
checks that, type-checks them all with ``mypy --strict`` and runs each one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.support.db import ROOT

EXAMPLE = re.compile(
    r"<!-- example: (?P<name>[\w.]+) -->\s*```python\n(?P<code>.*?)```\s*<!-- /example -->",
    re.S,
)
PYTHON_FENCE = re.compile(r"^\s*```\s*(?:python|py)\b", re.M)
SHOWN_MARKDOWN = re.compile(r"^````.*?^````", re.M | re.S)
"""A four-backtick block shows Markdown (the convention itself, in docs/contributing.md):
what is inside it is text on the page, not an example."""


@dataclass(frozen=True)
class Example:
    name: str
    code: str
    page: Path

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)} ({self.name})"


def pages() -> list[Path]:
    """The README and every page of the site, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def source(page: Path) -> str:
    """The page's Markdown, without the Markdown it only shows."""
    return SHOWN_MARKDOWN.sub("", page.read_text())


def examples() -> dict[str, Example]:
    found: dict[str, Example] = {}
    for page in pages():
        for match in EXAMPLE.finditer(source(page)):
            name = match["name"]
            assert name not in found, f"two examples named {name}: {found[name].page}, {page}"
            found[name] = Example(name, match["code"], page)
    return found


def example(name: str) -> str:
    """The code of the example ``name``, wherever it lives (README.md or docs/)."""
    found = examples().get(name)
    assert found is not None, f"no example named {name} in README.md or docs/"
    return found.code
