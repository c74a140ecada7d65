"""A stand-in for the Kubernetes API server at the outermost boundary of deploy.sh.

Installed as `kubectl` first on PATH. `kubectl kustomize` runs the real kubectl (client-side, no
cluster); every other call is recorded in $FAKE_KUBECTL_STATE/calls.jsonl with its stdin, and
Secrets created with `kubectl create -f -` are kept so a second `get secret` finds them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml


def main(argv: list[str]) -> int:
    state = Path(os.environ["FAKE_KUBECTL_STATE"])
    if argv[:1] == ["kustomize"]:
        return subprocess.run([os.environ["REAL_KUBECTL"], *argv], check=False).returncode
    stdin = sys.stdin.read() if "-" in argv and "-f" in argv else ""
    with (state / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"argv": argv, "stdin": stdin}) + "\n")
    secrets = state / "secrets"
    secrets.mkdir(exist_ok=True)
    if argv[:2] == ["get", "secret"]:
        path = secrets / f"{argv[2]}.yaml"
        if not path.exists():
            print(f'Error from server (NotFound): secrets "{argv[2]}" not found', file=sys.stderr)
            return 1
        if "jsonpath={.data.password}" in argv:
            print(yaml.safe_load(path.read_text())["data"]["password"], end="")
        return 0
    if argv[:1] == ["create"]:
        manifest = yaml.safe_load(stdin)
        path = secrets / f"{manifest['metadata']['name']}.yaml"
        if path.exists():
            print("Error from server (AlreadyExists)", file=sys.stderr)
            return 1
        path.write_text(stdin)
        return 0
    if argv[:2] == ["config", "current-context"]:
        print("kind-tradeops")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
