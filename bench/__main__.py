"""`python -m bench`: every scenario in one run (bench/main.py)."""

from bench.main import main

main()
