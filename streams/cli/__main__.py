"""`python -m streams.cli`: the same as the `streams` command."""

from streams.cli.main import main

main()
