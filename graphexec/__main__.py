"""`python -m graphexec serve|worker`: see graphexec.cli."""
from graphexec.cli import main

main()
