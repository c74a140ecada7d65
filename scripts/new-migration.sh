#!/usr/bin/env bash
# Write a new Alembic revision for the table changes in the code: scripts/new-migration.sh 0003_name "what changes"
# It autogenerates against a scratch SQLite database at the current head; read and tidy the result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -eq 2 ]] || { echo "usage: $0 REVISION_ID \"message\"" >&2; exit 2; }
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
TRADEOPS_DB_URL="sqlite:///$scratch/scratch.db" .venv/bin/python - "$1" "$2" <<'PY'
import sys
from pathlib import Path

from alembic import command

from tradeops import schema
from tradeops.db import get_engine, transaction

revision, message = sys.argv[1], sys.argv[2]
schema.upgrade()
with transaction(get_engine()) as conn:
    script = command.revision(schema.alembic_config(conn), message=message, autogenerate=True, rev_id=revision)
path = Path(script.path)
target = path.with_name(f"{revision}.py")
path.rename(target)
print(f"wrote {target}")
PY
sed -i "/# ### /d" tradeops/migrations/versions/"$1".py
.venv/bin/ruff check --fix --quiet tradeops/migrations/versions && .venv/bin/ruff format --quiet tradeops/migrations/versions
