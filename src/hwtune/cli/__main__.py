"""``python -m hwtune.cli``."""

from hwtune.cli import main

main()
