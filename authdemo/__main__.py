"""``python -m authdemo`` is the ``authdemo`` command."""

from authdemo.cli import main

main()
