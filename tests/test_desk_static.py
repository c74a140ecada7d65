"""The desk's front end as Airflow serves it: the bundle and icons behind the login, the plugin's
react_apps, and the built bundle registering each react_app on the host's globals."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from operators import desk_static

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = desk_static.DEFAULT_BUNDLE_DIR / desk_static.BUNDLE_FILE


def _client(directory: Path | None, authenticated: bool = True) -> TestClient:
    app = desk_static.create_app(directory)
    if authenticated:
        from airflow.api_fastapi.core_api.security import get_user

        app.dependency_overrides[get_user] = lambda: object()
    return TestClient(app)


def _bundle_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "dist"
    directory.mkdir()
    (directory / "tradeops-desk.js").write_text("globalThis.Desk = () => null;\n")
    (directory / "tradeops-desk.js.map").write_text("{}")
    (directory / "tradeops-desk.svg").write_text("<svg/>")
    return directory


def _plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tradeops_plugin", ROOT / "plugins" / "tradeops_plugin.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundle_when_not_logged_in_then_refused(tmp_path: Path) -> None:
    response = _client(_bundle_dir(tmp_path), authenticated=False).get("/tradeops-desk.js")

    assert response.status_code == 401


def test_bundle_when_built_then_served_with_its_type_and_no_store(tmp_path: Path) -> None:
    client = _client(_bundle_dir(tmp_path))

    names = ("tradeops-desk.js", "tradeops-desk.svg", "tradeops-desk.js.map")
    js, icon, source_map = (client.get(f"/{name}") for name in names)

    assert js.status_code == 200 and js.text == "globalThis.Desk = () => null;\n"
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert icon.headers["content-type"] == "image/svg+xml"
    assert source_map.headers["content-type"] == "application/json; charset=utf-8"
    assert {r.headers["cache-control"] for r in (js, icon, source_map)} == {"no-store"}


def test_bundle_when_name_is_not_a_file_of_the_directory_then_404(tmp_path: Path) -> None:
    directory = _bundle_dir(tmp_path)
    (tmp_path / "secret.js").write_text("OUTSIDE-CONTENT")
    (directory / "notes.txt").write_text("not a bundle file type")
    (directory / "sub").mkdir()
    (directory / "sub" / "x.js").write_text("NESTED-CONTENT")
    (directory / "link.js").symlink_to(tmp_path / "secret.js")
    client = _client(directory)

    paths = ["/..%2Fsecret.js", "/%2e%2e/secret.js", "/../secret.js", "/notes.txt", "/sub/x.js", "/sub"]
    paths += ["/link.js", "/nope.js"]
    responses = {path: client.get(path) for path in paths}

    assert {path: r.status_code for path, r in responses.items()} == dict.fromkeys(paths, 404)
    assert not [r for r in responses.values() if "OUTSIDE-CONTENT" in r.text or "NESTED-CONTENT" in r.text]


def test_bundle_when_not_built_then_503_saying_make_ui(tmp_path: Path) -> None:
    response = _client(tmp_path / "missing").get("/tradeops-desk.js")

    assert response.status_code == 503
    assert "run `make ui`" in response.json()["detail"]
    assert response.headers["cache-control"] == "no-store"


def test_bundle_dir_when_env_names_one_then_served_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(desk_static.BUNDLE_DIR_ENV, str(_bundle_dir(tmp_path)))

    response = _client(None).get("/tradeops-desk.js")

    assert response.text == "globalThis.Desk = () => null;\n"


def test_bundle_dir_when_env_unset_then_the_repository_ui_dist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(desk_static.BUNDLE_DIR_ENV, raising=False)

    assert desk_static.bundle_dir() == ROOT / "ui" / "dist"


def test_static_app_when_asked_for_api_docs_then_none(tmp_path: Path) -> None:
    client = _client(_bundle_dir(tmp_path))

    assert [client.get(path).status_code for path in ("/docs", "/redoc", "/openapi.json")] == [404, 404, 404]


def test_plugin_when_loaded_then_declares_the_three_react_apps_on_one_bundle() -> None:
    plugin = _plugin().TradeopsPlugin

    apps = {app["destination"]: app for app in plugin.react_apps}

    assert sorted(apps) == ["dag_run", "dashboard", "nav"]
    assert [apps[d]["name"] for d in ("nav", "dag_run", "dashboard")] == ["Desk", "Saga", "Trading state"]
    assert {app["bundle_url"] for app in plugin.react_apps} == {"tradeops-ui/tradeops-desk.js"}
    # Airflow drops a react_app without a url_route, and one whose route another plugin took.
    routes = [apps[d]["url_route"] for d in ("nav", "dag_run", "dashboard")]
    assert routes == ["tradeops-desk", "tradeops-saga", "tradeops-state"]
    assert apps["nav"]["category"] is None
    for key in ("icon", "icon_dark_mode"):
        assert (ROOT / "ui" / "icons" / Path(apps["nav"][key]).name).is_file()
    assert plugin.external_views == []


def test_plugin_when_loaded_then_mounts_the_api_and_the_bundle() -> None:
    plugin = _plugin().TradeopsPlugin

    prefixes = [app["url_prefix"] for app in plugin.fastapi_apps]

    assert prefixes == ["/tradeops", "/tradeops-ui"]


# The host's globals as the Airflow UI sets them (ui/node_modules holds the same libraries, for
# the type check): the bundle must read them from there and register each react_app by its name.
_HOST = """
const libs = { React: "react", ReactDOM: "react-dom", ReactJSXRuntime: "react/jsx-runtime" };
for (const [name, spec] of Object.entries(libs)) globalThis[name] = (await import(spec)).default;
globalThis.ChakraUI = await import("@chakra-ui/react");
globalThis.EmotionReact = await import("@emotion/react");
await import(process.argv[1]);
console.log(JSON.stringify(JSON.parse(process.argv[2]).map((name) => [name, typeof globalThis[name]])));
"""


def test_built_bundle_when_imported_by_the_host_then_registers_each_react_app() -> None:
    node = shutil.which("node")
    assert node, "node is needed to check the built bundle"
    assert BUNDLE.is_file() and (ROOT / "ui" / "node_modules").is_dir(), f"{BUNDLE} is missing: run `make ui`"
    names = [app["name"] for app in _plugin().TradeopsPlugin.react_apps]

    result = subprocess.run(
        [node, "--input-type=module", "-e", _HOST, BUNDLE.as_uri(), json.dumps(names)],
        cwd=ROOT / "ui",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert json.loads(result.stdout) == [[name, "function"] for name in names]
    text = BUNDLE.read_text()
    assert "__CLIENT_INTERNALS_DO_NOT_USE_OR_WARN_USERS_THEY_CANNOT_UPGRADE" not in text  # no React copy inside
    assert "dangerouslySetInnerHTML" not in text
