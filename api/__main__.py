"""Run the command line: ``python -m api``."""

from api.cli import main

main()
