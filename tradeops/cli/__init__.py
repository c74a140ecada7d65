"""The ``tradeops`` command line. Each command group lives in its own module with ``register``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from tradeops.errors import TradeopsError

# Each module exposes ``register(subparsers) -> None``; handlers are set with ``set_defaults(func=...)``
# and return the process exit code.
_COMMAND_MODULES = (
    "tradeops.cli.venue_cmds",
    "tradeops.cli.state_cmds",
    "tradeops.cli.saga_cmds",
    "tradeops.cli.kafka_cmds",
    "tradeops.cli.setup_cmds",
    "tradeops.cli.stack_cmds",
    "tradeops.cli.data_cmds",
    "tradeops.cli.models_cmds",
    "tradeops.cli.agents_cmds",
    "tradeops.cli.news_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="tradeops",
        description="Operate the tradeops trading-operations suite (venues, trading state, sagas, Kafka).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except TradeopsError as exc:
        print(f"tradeops: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``tradeops ... | head``): stop quietly, like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
