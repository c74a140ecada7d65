"""The trading desk in a real browser: Debian's chromium driven by Playwright, logged in to a real
``airflow standalone`` with the tradeops plugin (its React views and JSON API), as an on-call
engineer would use it.

Screenshots in light and dark mode are kept in ``test-artifacts/desk/`` (not in git).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from confluent_kafka import Producer

from tests.fixtures.standalone import api, passwords, wait_for
from tests.fixtures.standalone import standalone as run_standalone
from tradeops import risk
from tradeops.config import settings
from tradeops.model import OrderRequest, Side

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "desk"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking switches chromium keeps calling out, which this machine refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAGS = ("trading_state_control", "saga_drill", "saga_recovery", "emergency_stop_loss_saga")
OPERATOR, APPROVER = "operator", "approver"
TIMEOUT_MS = 60_000
pytestmark = [pytest.mark.airflow, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def desk(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The standalone with the plugin; two users (the simple auth manager generates passwords)."""
    if not (ROOT / "ui" / "dist" / "tradeops-desk.js").is_file():
        pytest.fail("the Desk bundle is not built: `make ui` (make test builds it)")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    users = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{OPERATOR}:admin,{APPROVER}:admin"}
    files = [ROOT / "dags" / f"{name}.py" for name in DAGS]
    with run_standalone(
        tmp_path_factory.mktemp("airflow-desk"), kafka_bootstrap, files, plugins=True, extra_env=users
    ) as env:
        yield env


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        debian = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=60).stdout
        assert chromium.version in debian, (chromium.version, debian)  # Debian's, never a downloaded one
        yield chromium
        chromium.close()


@pytest.fixture
def use_desk_db(desk: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TRADEOPS_DB_URL", desk["TRADEOPS_DB_URL"])
    settings.cache_clear()
    return desk


def _base(env: dict[str, str]) -> str:
    return env["AIRFLOW__API__BASE_URL"]


def _login(browser: Any, env: dict[str, str], user: str, color_scheme: str = "light") -> Any:
    """A new browser context logged in as ``user`` through Airflow's login page; its page."""
    context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{_base(env)}/")
    page.wait_for_url(re.compile(r".*/auth/login.*"))
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", passwords(env)[user])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"^{re.escape(_base(env))}/(\?.*)?$"))
    return page


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _testid(page: Any, testid: str) -> Any:
    return page.get_by_test_id(testid)


def _open_desk(page: Any) -> None:
    page.get_by_role("link", name="Desk").first.click()
    page.wait_for_url(re.compile(r".*/plugin/tradeops-desk$"))
    _testid(page, "desk-state").wait_for()


def test_desk_when_no_session_then_login_and_from_the_nav_shows_positions_on_the_paper_venue(
    use_desk_db: dict[str, str], browser: Any
) -> None:
    from tradeops.venues.paper import PaperVenue

    env = use_desk_db
    PaperVenue("bybit", settings()).place_order(
        OrderRequest(
            venue="bybit", symbol="ETH/USDT:USDT", side=Side.SELL, amount=Decimal("1.5"), client_order_id="desk-e2e"
        )
    )
    anonymous = browser.new_context()
    page = anonymous.new_page()
    page.goto(f"{_base(env)}/tradeops/api/venues")
    assert "/auth/login" in page.url  # a browser without a session is sent to the login, not shown JSON
    anonymous.close()

    page = _login(browser, env, OPERATOR)
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc or urlsplit(request.url).scheme))
    _open_desk(page)

    bybit = _testid(page, "venue-bybit")
    bybit.get_by_text("ETH/USDT:USDT").first.wait_for()
    for venue in settings().venues:  # every configured venue has its card and breaker
        _testid(page, f"venue-{venue}").wait_for()
    assert "-1.5" in bybit.inner_text()
    _testid(page, "dead-letters").get_by_test_id("updated-ago").wait_for()
    # no script, font or call leaves the deployment (data: and blob: URLs are the page's own)
    assert hosts - {"data", "blob"} == {urlsplit(_base(env)).netloc}, hosts
    _shot(page, "desk-light")
    page.context.close()


def test_saga_tab_when_a_drill_fails_then_the_failed_saga_shows_its_undos_and_task_links(
    use_desk_db: dict[str, str], browser: Any
) -> None:
    env = use_desk_db
    risk.set_state(risk.TradingState.ACTIVE, reason="desk e2e: drill", changed_by="test")
    run = api(env, "POST", "dags/saga_drill/dagRuns", {"logical_date": None, "conf": {"fail_at": "hedge_perp"}})
    run_id = str(run["dag_run_id"])

    def ended() -> bool:
        return api(env, "GET", f"dags/saga_drill/dagRuns/{quote(run_id, safe='')}")["state"] in ("failed", "success")

    wait_for(ended, 420, "the drill run to end", interval=3)
    assert api(env, "GET", f"dags/saga_drill/dagRuns/{quote(run_id, safe='')}")["state"] == "failed"

    page = _login(browser, env, OPERATOR)
    page.goto(f"{_base(env)}/dags/saga_drill/runs/{quote(run_id, safe='')}/plugin/tradeops-saga")
    status = _testid(page, "saga-status")
    status.wait_for()
    assert "compensated" in status.inner_text().lower()
    undos = _testid(page, "saga-undo")
    undos.first.wait_for()
    # every step that may have acted has its undo: buy_spot and move_usdt traded and moved back,
    # the failed hedge_perp checked at the venue (nothing to undo)
    outcomes = [undos.nth(i).get_attribute("data-outcome") for i in range(undos.count())]
    assert sorted(outcomes) == ["nothing_to_undo", "undone", "undone"], outcomes
    failed = page.locator("[data-testid=saga-step][data-failed=true]")
    assert failed.count() == 1 and failed.get_attribute("data-step") == "hedge_perp"
    text = _testid(page, "saga-step").all_inner_texts()
    assert any("move_usdt" in t and "okx" in t for t in text), text
    link = page.locator("a[href*='/tasks/buy_spot']").first
    assert link.count() == 1
    _shot(page, "saga-tab-light")
    page.context.close()


def test_dead_letters_when_a_malformed_event_is_published_then_listed_with_topic_and_reason(
    use_desk_db: dict[str, str], browser: Any, kafka_bootstrap: str
) -> None:
    env = use_desk_db
    topic = settings().kafka.topics.risk_alerts
    page = _login(browser, env, OPERATOR)
    _open_desk(page)

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, value=b'{"event_type": "critical_alert", "reason": <img src=x onerror=alert(1)>')
    assert producer.flush(10) == 0

    # no reload: the section refreshes by itself
    row = _testid(page, "dead-letter-row").filter(has_text=topic).first
    row.wait_for(timeout=120_000)
    assert "<json>" in row.inner_text()
    assert page.locator("img[src=x]").count() == 0
    page.context.close()


def test_halt_when_clicked_and_confirmed_then_halted_with_the_airflow_user_in_the_history(
    use_desk_db: dict[str, str], browser: Any
) -> None:
    env = use_desk_db
    risk.set_state(risk.TradingState.ACTIVE, reason="desk e2e: armed", changed_by="test")
    page = _login(browser, env, OPERATOR)
    _open_desk(page)
    _testid(page, "desk-state").filter(has_text="ACTIVE").wait_for()

    _testid(page, "halt-button").click()
    _testid(page, "halt-reason").fill("INC-77 venue misbehaving")
    _testid(page, "halt-confirm").click()

    _testid(page, "desk-state").filter(has_text="HALTED").wait_for()
    current = risk.get_state()
    assert current.state is risk.TradingState.HALTED
    assert (current.reason, current.changed_by) == ("INC-77 venue misbehaving", f"airflow:{OPERATOR}:desk")
    _testid(page, "state-history-row").filter(has_text=f"airflow:{OPERATOR}:desk").wait_for()
    page.context.close()


def _awaiting_approval(env: dict[str, str], run_id: str) -> bool:
    try:
        task = api(env, "GET", f"dags/trading_state_control/dagRuns/{quote(run_id, safe='')}/taskInstances/approve")
    except urllib.error.HTTPError:
        return False
    return task.get("state") in ("awaiting_input", "deferred")


def test_active_when_requested_on_the_desk_then_only_after_another_user_approves_it(
    use_desk_db: dict[str, str], browser: Any
) -> None:
    env = use_desk_db
    risk.set_state(risk.TradingState.HALTED, reason="desk e2e: stopped", changed_by="test")
    page = _login(browser, env, OPERATOR)
    _open_desk(page)

    _testid(page, "request-button").click()
    _testid(page, "request-state").select_option("ACTIVE")
    _testid(page, "request-reason").fill("INC-77 resolved, venue healthy")
    _testid(page, "request-submit").click()
    link = _testid(page, "request-run-link")
    link.wait_for()
    run_id = re.sub(r"^.*/runs/", "", str(link.get_attribute("href")))
    from urllib.parse import unquote

    run_id = unquote(run_id)
    wait_for(lambda: _awaiting_approval(env, run_id), 180, "the approval to wait under Required Actions", interval=2)
    time.sleep(1)
    assert risk.get_state().state is risk.TradingState.HALTED  # nothing changes before the approval

    approver = _login(browser, env, APPROVER)
    approver.goto(f"{_base(env)}/required_actions")
    approver.get_by_text("Set the trading state to ACTIVE?").first.click()
    approver.get_by_role("button", name="Approve").click()

    wait_for(lambda: risk.get_state().state is risk.TradingState.ACTIVE, 180, "the approved state", interval=2)
    current = risk.get_state()
    assert current.changed_by == f"airflow:{APPROVER}:trading_state_control"
    assert f"requested by {OPERATOR}, approved by {APPROVER}" in current.reason
    _testid(page, "desk-state").filter(has_text="ACTIVE").wait_for()
    approver.context.close()
    page.context.close()


def test_desk_when_dark_mode_then_views_follow_airflow_theme_and_widget_on_the_dashboard(
    use_desk_db: dict[str, str], browser: Any
) -> None:
    env = use_desk_db
    page = _login(browser, env, OPERATOR, color_scheme="dark")
    widget = _testid(page, "widget-state")
    widget.wait_for()
    assert widget.get_attribute("data-state") == risk.get_state().state.value
    _shot(page, "dashboard-dark")
    assert "dark" in (page.locator("html").get_attribute("class") or "") + (
        page.locator("html").get_attribute("data-theme") or ""
    )
    _open_desk(page)
    _testid(page, "venue-binance").wait_for()
    _shot(page, "desk-dark")
    # the timezone picked in Airflow's user menu (kept in localStorage) applies to every time shown
    page.evaluate("""() => {
        localStorage.setItem("timezone", JSON.stringify("America/New_York"));
        window.dispatchEvent(new StorageEvent("storage", {key: "timezone"}));
        window.dispatchEvent(new Event("local-storage"));
    }""")
    _testid(page, "desk-timezone").filter(has_text="America/New_York").wait_for()
    first = _testid(page, "state-history-row").first.inner_text()
    assert first.split()[2] == "EST", first  # December in New York; the row was "... UTC" before
    sagas = api(env, "GET", "dags/saga_drill/dagRuns?limit=1&order_by=-run_after")["dag_runs"]
    if sagas:
        run_id = quote(str(sagas[0]["dag_run_id"]), safe="")  # type: ignore[index]
        page.goto(f"{_base(env)}/dags/saga_drill/runs/{run_id}/plugin/tradeops-saga")
        _testid(page, "saga-status").wait_for()
        _shot(page, "saga-tab-dark")
    page.context.close()
    page = _login(browser, env, OPERATOR)
    _testid(page, "widget-state").wait_for()
    _shot(page, "dashboard-light")
    page.context.close()
