"""The ``bridgewatch`` command. Each subcommand lives in its own module of this package.

Typed errors from the core (``BridgewatchError``) become one clear message and exit code 2 here;
nothing below this layer prints.
"""

from __future__ import annotations

import importlib
import sys

import click

from bridgewatch import __version__
from bridgewatch.errors import BridgewatchError

# Modules of this package that each define a click command named ``command``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "validate",
    "simulate",
    "score",
    "run",
    "report",
    "evaluate",
    "explain",
)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BridgewatchError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="bridgewatch")
def cli() -> None:
    """Bridgewatch: bridging-based Community Notes scoring you can run yourself."""


for _name in SUBCOMMAND_MODULES:
    cli.add_command(importlib.import_module(f"bridgewatch.cli.{_name}").command)


def main() -> None:
    """Console entry point."""
    cli(prog_name="bridgewatch")


if __name__ == "__main__":
    sys.exit(main())
