"""The one tag vocabulary of the suite (a test enforces it).

Every DAG carries exactly one trigger tag (cron, event-triggered or manual) and any domain tags.
"""

from __future__ import annotations

CRON = "cron"
EVENT_TRIGGERED = "event-triggered"
MANUAL = "manual"
TRIGGER_TAGS = frozenset({CRON, EVENT_TRIGGERED, MANUAL})

DOMAIN_TAGS = frozenset(
    {"risk", "saga", "drill", "hedging", "rebalancing", "market-data", "ml", "deployment", "trading-agent"}
)
VOCABULARY = TRIGGER_TAGS | DOMAIN_TAGS
