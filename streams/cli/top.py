"""`streams top`: one worker's signals in the terminal (rich), for people on a server over SSH.

It reads the worker's `/metrics` with the bearer token, every `--interval` seconds, and draws the
frame `streams.cli.top_frame` computes from the last two samples: commands/s accepted and rejected,
command -> result p50/p95/p99, events/s, the consumer lag per partition per stage, dead letters/s
by reason, transaction aborts and rebalances. `--once` takes two samples `--interval` apart,
prints one frame and exits (for scripts and tests).
"""

from __future__ import annotations

import time

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.cli.top_frame import Frame, Sample, frame
from streams.cli.worker_http import get
from streams.config import Settings


def fetch(url: str, token: str, timeout: float = 10.0) -> Sample:
    """One sample of a worker's `/metrics`."""
    return Sample.parse(get(url, "/metrics", token, timeout).decode(), time.monotonic())


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False, min_width=len(title) + 8)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def render(shown: Frame, url: str) -> Group:
    """The frame as rich renderables."""
    head = Text.assemble(
        ("streams top ", "bold"), url, f"   over {shown.seconds:.1f} s   ",
        f"commands accepted {shown.accepted_total:.0f}, rejected {shown.rejected_total:.0f}   ",
        f"RSS {shown.rss_bytes / 2**20:.0f} MiB   CPU {shown.cpu_share * 100:.0f}%",
    )  # fmt: skip
    commands = _table("Commands/s", "outcome", "per s")
    commands.add_row("accepted", f"{shown.accepted_per_s:.1f}")
    for outcome, rate in sorted(shown.rejected_per_s.items()):
        commands.add_row(outcome, f"{rate:.1f}")
    latency = _table("Command → result", "quantile", "")
    for q in (0.5, 0.95, 0.99):
        latency.add_row(f"p{round(q * 100)}", _ms(shown.latency_s.get(q)))
    events = _table("Events/s", "context", "per s")
    for context, rate in sorted(shown.events_per_s.items()):
        events.add_row(context, f"{rate:.1f}")
    lag = _table("Consumer lag", "stage (group)", "partition", "records")
    for (group, topic, partition), records in shown.lag.items():
        lag.add_row(group, f"{topic}[{partition}]", f"{records:.0f}")
    dlq = _table("Dead letters/s", "reason", "per s")
    for reason, rate in sorted(shown.dlq_per_s.items()):
        dlq.add_row(reason, f"{rate:.2f}")
    troubles = _table("Aborts and rebalances", "", "in frame")
    troubles.add_row("aborts (total)", f"{shown.aborts_total:.0f}")
    for cause, n in sorted(shown.aborts.items()):
        troubles.add_row(f"abort {cause}", f"{n:.0f}")
    troubles.add_row("rebalances (total)", f"{shown.rebalances_total:.0f}")
    for group, n in sorted(shown.rebalances.items()):
        troubles.add_row(f"rebalance {group}", f"{n:.0f}")
    return Group(head, commands, latency, events, dlq, troubles, lag)


@click.command()
@click.option(
    "--url",
    default=None,
    help="The worker's base URL (default: this host's worker; STREAMS_WEB_CA_FILE verifies https).",
)
@click.option("--token", default=None, help="Bearer token (default: STREAMS_AUTH_TOKEN).")
@click.option("--interval", "-n", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between samples.")  # fmt: skip
@click.option("--once", is_flag=True, help="Print one frame (two samples --interval apart) and exit.")
def top(url: str | None, token: str | None, interval: float, once: bool) -> None:
    """A terminal view of one worker's throughput, latency, lag, dead letters, aborts and rebalances."""
    settings = Settings()
    url = (url or settings.self_url()).rstrip("/")
    token = settings.auth_token if token is None else token
    console = Console()
    previous = fetch(url, token)
    if once:
        time.sleep(interval)
        console.print(render(frame(previous, fetch(url, token)), url))
        return
    with Live(Text(f"reading {url}/metrics …"), console=console, screen=False, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                current = fetch(url, token)
                live.update(render(frame(previous, current), url), refresh=True)
                previous = current
        except KeyboardInterrupt:
            pass
