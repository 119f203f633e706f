"""`streams new context <name> [--package]`: a working context written from the templates in
`streams/cli/templates/context/` (package data; docs/add-a-context.md walks through the result).

A template file ends in `.tmpl` and is a `string.Template`: `$name` is the context's name (a
Python module name, the topics' `<ctx>`, the schemas' namespace), `$Name` its CamelCase form (the
class names), `$dist` the distribution name. In file names, `__name__` and `__Name__` stand for
the same. `module/` is the context itself (its module and schemas); `--package` wraps it in an
installable distribution: `package/` (pyproject with the `streams.contexts` entry point, a README,
a given/when/then test) with the module under `src/`.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

import click

from streams.cli.errors import CliError

NAME = re.compile(r"^[a-z][a-z0-9_]{0,48}$")
TEMPLATES = "templates/context"


@dataclass(frozen=True)
class Names:
    """What the templates are filled with."""

    name: str
    Name: str
    dist: str

    @classmethod
    def of(cls, name: str) -> Names:
        """The names for context `name` (CliError unless it is a lowercase identifier)."""
        if not NAME.match(name) or keyword.iskeyword(name) or name.endswith("_"):
            raise CliError(
                f"{name!r} is not a context name: lowercase letters, digits and _, starting with a "
                "letter (it names a Python module, topics and the schemas' namespace)",
                "invalid_name",
            )
        camel = "".join(part.capitalize() for part in name.split("_") if part)
        return cls(name=name, Name=camel, dist=f"streams-{name.replace('_', '-')}")

    def fill(self, text: str) -> str:
        """A template's text with the names in."""
        return Template(text).substitute(name=self.name, Name=self.Name, dist=self.dist)

    def path(self, relative: str) -> str:
        """A template's path with the names in, without `.tmpl`."""
        return relative.removesuffix(".tmpl").replace("__name__", self.name).replace("__Name__", self.Name)


def _files(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """Every template file under `root`, with its path relative to it."""
    found = []
    for entry in root.iterdir():
        if entry.name == "__pycache__":
            continue
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            found += _files(entry, f"{relative}/")
        else:
            found.append((relative, entry))
    return sorted(found, key=lambda item: item[0])


def plan(name: str, directory: Path, *, package: bool) -> dict[Path, str]:
    """The files a new context writes, path -> text (nothing is written)."""
    names = Names.of(name)
    templates = resources.files("streams.cli").joinpath(TEMPLATES)
    root = directory / name
    module = root / "src" / name if package else root
    out = {module / names.path(rel): names.fill(f.read_text()) for rel, f in _files(templates / "module")}
    if package:
        out.update(
            {root / names.path(rel): names.fill(f.read_text()) for rel, f in _files(templates / "package")}
        )
    return out


def write_context(name: str, directory: Path, *, package: bool) -> list[Path]:
    """Write a new context into `directory/<name>/` (CliError when that exists already)."""
    files = plan(name, directory, package=package)
    if (directory / name).exists():
        raise CliError(f"{directory / name} exists already; choose another name or --dir", "exists")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(files)


@click.group("new")
def new() -> None:
    """Start something new from a template."""


@new.command("context")
@click.argument("name")
@click.option("--package", is_flag=True, help="An installable distribution: pyproject, src/, tests/.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create <name>/.",
)
def new_context(name: str, package: bool, directory: Path) -> None:
    """A bounded context NAME: the module (commands, events, state, decide, evolve, a view) and
    its Avro schemas; with --package, a distribution that `pip install -e` and `pytest` accept,
    registered through the `streams.contexts` entry point (docs/add-a-context.md)."""
    for path in write_context(name, directory, package=package):
        click.echo(f"wrote {path}")
    if package:
        root = directory / name
        click.echo(f"next: pip install -e {root} && (cd {root} && pytest) && streams schemas register {name}")
    else:
        click.echo(f"next: STREAMS_CONTEXT_MODULES={name} with {directory} on PYTHONPATH")
