"""``tradeops init`` and ``tradeops config check``: project database, paper venue, configuration."""

from __future__ import annotations

import argparse

from tradeops.cli.output import print_table
from tradeops.config import default_config_path, load_settings, settings
from tradeops.db import default_db_url
from tradeops.schema import current_revision, upgrade


def register(subparsers: argparse._SubParsersAction) -> None:
    init = subparsers.add_parser(
        "init",
        help="create or upgrade the project database and seed the paper venue",
        description="Upgrade the project database to the current schema (Alembic migrations; idempotent) "
        "and seed the paper venue from config/ when it is not seeded yet. "
        "With --reset-paper, wipe the paper venue and seed it again.",
    )
    init.add_argument("--reset-paper", action="store_true", help="wipe and re-seed the paper venue")
    init.set_defaults(func=_init)

    config = subparsers.add_parser("config", help="validate and show the configuration")
    commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = commands.add_parser(
        "check",
        help="validate config/ and the TRADEOPS__* overrides; exit 2 naming the bad key",
        description="Load the YAML configuration with its TRADEOPS__SECTION__KEY environment overrides "
        "and validate it. Exits 2 and names the offending key when it is invalid.",
    )
    check.set_defaults(func=_check)


def _init(args: argparse.Namespace) -> int:
    from tradeops.venues.paper import seed_paper_world

    loaded = settings()
    engine = upgrade()
    seeded = seed_paper_world(loaded, reset=args.reset_paper)
    print(f"project database ready: {_redact(default_db_url())} (schema revision {current_revision(engine)})")
    print("paper venue seeded from config" if seeded else "paper venue already seeded (kept its state)")
    return 0


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _check(args: argparse.Namespace) -> int:
    loaded = load_settings()
    print(f"configuration OK: {default_config_path()}")
    rows = [
        [name, v.kind, v.asset_class, len(v.markets), v.funding_interval_hours] for name, v in loaded.venues.items()
    ]
    print_table(["venue", "kind", "class", "markets", "funding h"], rows)
    t = loaded.thresholds
    print(
        f"\nthresholds: funding deviation {t.funding_deviation_bps} bps per {t.funding_period_hours} h, "
        f"market shock {t.market_shock_pct}%, extreme shock {t.extreme_shock_pct}%"
    )
    print(f"kafka: {loaded.kafka.bootstrap_servers}")
    return 0
