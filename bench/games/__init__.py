"""The games example under faults and under load.

`python -m bench.games.chaos` (`make chaos-games`): on the shared single-broker stack, two workers
host games and wallet, one of them the settlement process; `bench.games.play` funds players and
plays rounds of bets (settled or voided) while the worker hosting the process manager is killed
with SIGKILL and restarted, again and again. `bench.games.logs` then reads every log and
`bench.games.judge` says what was paid twice, never settled, applied twice or fired twice,
against what `bench.games.ledger` expects from the bets and outcomes alone.

`python -m bench.games.burst` (`make bench-games`): a burst of bets on one round (bet -> result
latency) and the settlement of a round's bets to wallet credits; `bench.games.markdown` turns its
result file into the table of docs/games.md.
"""
