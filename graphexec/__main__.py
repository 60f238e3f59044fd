"""`python -m graphexec serve|worker`: see graphexec.cli."""
import sys

import graphexec

if getattr(graphexec, "__file__", None) is None:  # a namespace package: a folder without __init__.py won
    sys.exit(f"graphexec: the folder {next(iter(graphexec.__path__))} (a clone of the repository?) hides the installed "
             "package from `python -m graphexec`: run it from another folder, or run the `graphexec` command")

from graphexec.cli import main  # after the check, which explains what this import would fail on

main()
