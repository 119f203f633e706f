"""The front page and docs/: every link resolves, the README stays a front page, the CLI page is complete.

Anchors are GitHub's heading ids: the heading's text, lowercased, with everything but letters,
digits, `_`, `-` and spaces dropped and spaces made hyphens (`-1`, `-2`... for repeats).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import click
import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from streams.cli.main import main as cli
from tests.conftest import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 250
TYPED_COUNTS = re.compile(r"\b\d[\d,]* (passed|failed|skipped|xfailed|xpassed|errors?|deselected)\b")

_md = MarkdownIt("commonmark").enable("table")


def _tokens(page: Path) -> list[Token]:
    return _md.parse(page.read_text())


def _walk(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    for token in tokens:
        out.append(token)
        if token.children:
            out.extend(_walk(token.children))
    return out


def slug(text: str) -> str:
    """GitHub's id of a heading with this text."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The ids of a page's headings, with GitHub's suffixes for repeated ones."""
    tokens = _tokens(page)
    seen: Counter[str] = Counter()
    out: set[str] = set()
    for i, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        inline = tokens[i + 1]
        text = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
        base = slug(text)
        out.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return out


def links(page: Path) -> list[str]:
    """Every link and image target of a page (code blocks excluded)."""
    found = []
    for token in _walk(_tokens(page)):
        if token.type == "link_open":
            found.append(str(token.attrs["href"]))
        elif token.type == "image":
            found.append(str(token.attrs["src"]))
    return found


def broken(page: Path) -> list[str]:
    """The links of `page` whose file or heading does not exist."""
    out = []
    for href in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", href):  # http:, https:, mailto:
            continue
        path, _, fragment = href.partition("#")
        target = (page.parent / unquote(path)).resolve() if path else page
        if not target.exists() or not target.is_relative_to(ROOT):
            out.append(f"{href}: no file {target}")
        elif fragment and (target.suffix != ".md" or unquote(fragment) not in anchors(target)):
            out.append(f"{href}: no heading #{fragment} in {target.name}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    assert broken(page) == []


def test_links_are_found_and_anchors_follow_github() -> None:
    assert "docs/getting-started.md" in links(README)
    assert slug("WebSocket and SSE (streams/web/realtime/)") == "websocket-and-sse-streamswebrealtime"
    assert "windows-high-rate-inputs-decided-on-summaries" in anchors(ROOT / "docs" / "concepts.md")


def test_the_readme_is_a_front_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    assert "make test" in text and "make demo" in text
    for page in ("getting-started", "concepts", "operations", "http-api", "cli", "api"):
        assert f"docs/{page}.md" in links(README), page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_test_counts_are_typed_by_hand(page: Path) -> None:
    assert TYPED_COUNTS.findall(page.read_text()) == []


def test_the_cli_page_names_every_command() -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    assert isinstance(cli, click.Group)
    missing = [name for name in cli.commands if f"`streams {name}" not in page]
    assert missing == []


def test_the_readme_example_context_runs() -> None:
    from streams import BoundedContext, fold_view, given

    block = re.search(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert block is not None
    scope: dict[str, object] = {}
    exec(block.group(1), scope)
    context = scope["context"]
    assert isinstance(context, BoundedContext)
    place, placed = scope["PlaceOrder"], scope["OrderPlaced"]
    assert callable(place) and callable(placed)
    given(context).when(place("alice")).then(placed("alice"))
    given(context, placed("alice")).when(place("bob")).then_rejected("already_placed")
    assert fold_view(context.views[0], []) == {}


def test_the_chaos_table_is_generated_from_the_result_file_it_names() -> None:
    from bench.chaos.markdown import markdown

    text = (ROOT / "docs" / "operations.md").read_text()
    named = re.findall(r"`(bench/results/chaos-\d+T\d+\.json)` \(the table is generated", text)
    assert named, "docs/operations.md names the chaos result its table comes from"
    for name in named:
        assert markdown(json.loads((ROOT / name).read_text())) in text, name


def test_the_chaos_runs_listed_are_generated_from_their_result_files() -> None:
    from bench.chaos.markdown import runs

    text = (ROOT / "docs" / "operations.md").read_text()
    for line in re.findall(r"^- `bench/results/chaos-\d+T\d+\.json`: .*$", text, re.M):
        name = line.split("`")[1]
        assert runs({name: json.loads((ROOT / name).read_text())}) == line


def test_the_overhead_table_is_generated_from_the_result_file_it_names() -> None:
    from bench.overhead import markdown

    text = (ROOT / "docs" / "operations.md").read_text()
    named = re.findall(r"from `(bench/results/overhead-\d+T\d+\.json)`", text)
    assert named, "docs/operations.md names the overhead result its table comes from"
    for name in named:
        assert markdown(json.loads((ROOT / name).read_text()), name) in text, name
    from bench.overhead import offline_markdown

    for name in re.findall(r"from `(bench/results/overhead-offline-\d+T\d+\.json)`", text):
        assert offline_markdown(json.loads((ROOT / name).read_text()), name) in text, name


def test_the_privacy_table_is_generated_from_the_result_file_it_names() -> None:
    from bench.privacy import BEGIN, END, markdown

    text = (ROOT / "docs" / "privacy.md").read_text()
    named = re.search(r"`(bench/results/privacy-\d+T\d+\.json)`; the table is generated", text)
    assert named, "docs/privacy.md names the bench result its table comes from"
    table = markdown(json.loads((ROOT / named.group(1)).read_text()), named.group(1))
    assert f"{BEGIN}\n{table}\n{END}" in text


def test_the_games_figures_are_generated_from_the_result_files_they_name() -> None:
    from bench.games.markdown import markdown

    text = (ROOT / "docs" / "games.md").read_text()
    for kind in ("chaos", "bench"):
        named = re.search(rf"`(bench/results/games-{kind}-\d+T\d+\.json)` \(the table is generated", text)
        assert named, f"docs/games.md names the games {kind} result its table comes from"
        assert markdown(json.loads((ROOT / named.group(1)).read_text())) in text
