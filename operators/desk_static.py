"""Serves the desk's built front end (``ui/dist``: the ES-module bundle and its icons) to Airflow's UI.

Mounted by ``plugins/tradeops_plugin.py`` under ``/tradeops-ui``, behind the same Airflow login as
the desk's JSON API. Only the files that exist directly in the bundle directory are served (a
name is looked up in the directory listing, so no path can leave it), each with its content type
and ``Cache-Control: no-store`` (a rebuilt bundle is picked up at the next page load). The
directory is ``TRADEOPS_DESK_BUNDLE_DIR`` if set, else ``<repo>/ui/dist`` (``make ui`` builds it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse

BUNDLE_DIR_ENV = "TRADEOPS_DESK_BUNDLE_DIR"
BUNDLE_FILE = "tradeops-desk.js"
DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parent.parent / "ui" / "dist"
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".map": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _authenticated() -> Any:
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return Depends(requires_authenticated())


def bundle_dir() -> Path:
    configured = os.environ.get(BUNDLE_DIR_ENV)
    return Path(configured) if configured else DEFAULT_BUNDLE_DIR


def servable_files(directory: Path) -> dict[str, Path]:
    """The regular files directly in ``directory`` whose type we serve, by name."""
    if not directory.is_dir():
        return {}
    return {
        path.name: path
        for path in directory.iterdir()
        if path.suffix in CONTENT_TYPES and path.is_file() and not path.is_symlink()
    }


def create_app(directory: Path | None = None) -> FastAPI:
    """The static app; ``directory`` overrides the configured bundle directory (read per request)."""
    app = FastAPI(
        title="tradeops desk ui",
        dependencies=[_authenticated()],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/{name}")
    def bundle_file(name: str) -> FileResponse:
        root = directory if directory is not None else bundle_dir()
        files = servable_files(root)
        if BUNDLE_FILE not in files:
            raise HTTPException(
                status_code=503,
                detail=f"the desk's UI bundle is not built ({root / BUNDLE_FILE} is missing): run `make ui`",
                headers=NO_STORE,
            )
        path = files.get(name)
        if path is None:
            raise HTTPException(status_code=404, detail=f"no such file in the desk's UI bundle: {name!r}")
        return FileResponse(path, media_type=CONTENT_TYPES[path.suffix], headers=NO_STORE)

    return app
