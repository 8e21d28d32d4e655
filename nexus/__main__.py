"""`python -m nexus` is the `nexus` command."""

from nexus.cli import main

main(prog_name="nexus")  # messages name the command a person types
