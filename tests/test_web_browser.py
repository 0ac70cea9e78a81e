"""The dashboard in a real headless Chromium against a live federation: a broker on port 0
over a real SQLite file, a real agent, and a real local Ray cluster with logical GPUs.

Signs in through the form, opens every view with real data, follows a running job's log
live, checks role scoping and refused tokens, runs axe-core (vendored in tests/fixtures)
on every page, and takes the screenshots docs/dashboard.md shows (set MINGA_SCREENSHOTS
to a folder to keep them there)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from minga.agent.local_ray import LocalRayHead
from minga.v1 import admin_pb2, common_pb2
from tests.eventually import eventually
from tests.fixtures_broker import Caller, RunningBroker, start_broker
from tests.test_integration_ray import running_agent, submit, wait_state

pytestmark = pytest.mark.ray

AXE = Path(__file__).parent / "fixtures" / "axe-4.14.1.min.js"
# A job that writes a line a second, so a page opened while it runs sees lines arrive.
TICKER = "python -c \"import time\nfor i in range(1, 9):\n    print(f'tick {i}', flush=True); time.sleep(1)\""
SHOTS = {"/": "overview", "/shares": "fair-share", "/queue": "queue"}


class ShiftedClock:
    """The wall clock plus an offset a test moves forward: tokens expire without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Federation:
    broker: RunningBroker
    clock: ShiftedClock
    url: str
    admin: str
    ana: Caller  # researcher of uchile (CL), whose site runs the jobs
    bruno: Caller  # researcher of usp (BR)
    done_job: str  # ana's, finished: usage and a log
    waiting_job: str  # bruno's, pending behind ana's running ticker


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, ray_head: LocalRayHead) -> Iterator[Federation]:
    clock = ShiftedClock()
    broker = start_broker(tmp_path_factory.mktemp("browser"), clock=clock, web_listen="127.0.0.1:0")
    broker.institution("uchile", "CL")
    broker.institution("usp", "BR")
    ana = broker.researcher("ana", "uchile")
    bruno = broker.researcher("bruno", "usp")
    token = broker.join("uchile", "dcc", "CL")
    assert broker.broker.core is not None
    broker.broker.core.cycle.estimates.refresh_seconds = 0  # a forecast every cycle someone asks in: no stale one
    with running_agent(broker, token, ray_head, "A100"):
        done = submit(ana, "python -c \"print('hello from ray')\"")
        wait_state(ana, done, {common_pb2.JOB_STATE_SUCCEEDED})
        holder = submit(ana, "python -c 'import time; time.sleep(600)'", gpus=3)
        wait_state(ana, holder, {common_pb2.JOB_STATE_RUNNING})
        waiting = submit(bruno, "python big.py", gpus=4)
        broker.full_pass()
        admin = broker.admin_token_file.read_text().strip()
        yield Federation(broker, clock, broker.broker.web_url, admin, ana, bruno, done, waiting)
    broker.close()


def sign_in(driver: Any, federation: Federation, token: str, path: str = "/") -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(federation.url.rstrip("/") + path)
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    eventually(lambda: "/login" not in driver.current_url, what=lambda: f"signed in ({text(driver, 'main')!r})")


def text(driver: Any, css: str) -> str:
    """The rendered text of the first element matching `css`, read in one step (live parts
    of a page are swapped in place, so an element found first may be gone when read)."""
    script = "const e = document.querySelector(arguments[0]); return e && e.innerText;"

    def read() -> tuple[str] | None:
        value = driver.execute_script(script, css)
        return None if value is None else (str(value),)  # "" is text too

    return eventually(read, what=lambda: f"{css} on {driver.current_url}")[0]  # a click's page may still load


def screenshot(driver: Any, path: Path) -> None:
    """The whole page, not only the window: grow the window to the page, then back."""
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    full = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(full + 100, 4000))
    driver.save_screenshot(str(path))
    driver.set_window_size(width, height)


def accessibility_violations(driver: Any) -> list[str]:
    """axe-core's serious and critical WCAG 2 A/AA findings on the page now."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']}).then(r => done(r.violations.map("
        "v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))));"
    )
    return [f"{v['id']} ({v['impact']}): {v['nodes']}" for v in result if v["impact"] in ("serious", "critical")]


def test_an_admin_signs_in_and_every_view_shows_the_live_federation(chrome: Any, federation: Federation):
    driver = chrome
    sign_in(driver, federation, federation.admin)
    shots = os.environ.get("MINGA_SCREENSHOTS")
    expectations = {
        "/": ("#running", "1"),
        "/shares": ("#share-tree", "uchile"),
        "/sites": ("table.sites", "dcc"),
        "/queue": ("#queue-table", federation.waiting_job),
        "/jobs": ("#jobs-table", federation.done_job),
        f"/jobs/{federation.done_job}": ("#log", "hello from ray"),
        "/usage": ("#usage-table", "CL"),
        "/audit": ("#audit-table", "SubmitJob"),
    }
    for path, (css, expected) in expectations.items():
        driver.get(federation.url.rstrip("/") + path)
        assert expected in text(driver, css), (path, text(driver, "main"))
        assert accessibility_violations(driver) == [], path
        name = SHOTS.get(path)
        if shots and name:
            screenshot(driver, Path(shots) / f"dashboard-{name}.png")
    driver.get(federation.url.rstrip("/") + "/shares")
    assert driver.find_element("css selector", "figure.chart svg").get_attribute("role") == "img"

    def estimated_row() -> str:
        driver.get(federation.url.rstrip("/") + "/queue")
        row = text(driver, "#queue-table tbody tr")
        return row if any(word in row for word in ("about", "not before", "no start foreseen")) else ""

    # The estimate is the broker's forecast worker's, computed off the request once a page asked.
    row = eventually(estimated_row, what="an estimate on the queue page")
    assert "capacity" in row or "reservation" in row, row


def test_a_running_jobs_log_follows_live_without_a_reload(chrome: Any, federation: Federation):
    driver = chrome
    job_id = submit(federation.ana, TICKER)
    wait_state(federation.ana, job_id, {common_pb2.JOB_STATE_RUNNING})
    sign_in(driver, federation, federation.ana.token, f"/jobs/{job_id}")
    driver.execute_script("window.minga_marker = 'same page';")
    eventually(lambda: "tick 8" in text(driver, "#log"), timeout=60, what="the last line, streamed")
    eventually(lambda: "SUCCEEDED" in text(driver, "#log-end"), timeout=30, what="the job's end, streamed")
    eventually(lambda: text(driver, "#job-state") == "SUCCEEDED", what="the state badge, refreshed in place")
    assert driver.execute_script("return window.minga_marker") == "same page"  # no reload happened
    lines = [line for line in text(driver, "#log").splitlines() if line.startswith("tick")]
    assert lines == [f"tick {i}" for i in range(1, 9)]  # each once, in order
    shots = os.environ.get("MINGA_SCREENSHOTS")
    if shots:
        screenshot(driver, Path(shots) / "dashboard-job.png")


def test_the_keyboard_reaches_everything_in_order(chrome: Any, federation: Federation):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = chrome
    driver.delete_all_cookies()
    driver.get(f"{federation.url}login")
    field = driver.find_element(By.ID, "token")
    assert driver.switch_to.active_element == field  # the form has focus at once
    field.send_keys(federation.admin, Keys.ENTER)  # and Enter signs in
    eventually(lambda: "/login" not in driver.current_url, what="signed in with the keyboard")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.text == "Skip to content"
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "main"
    driver.get(federation.url)
    tabbed = []
    for _ in range(10):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        tabbed.append(driver.switch_to.active_element.text)
    menu = ["Overview", "Fair share", "Sites", "Queue", "Jobs", "Usage", "Audit"]
    assert tabbed == ["Skip to content", "minga", *menu, "Sign out"]


def test_pages_read_without_javascript(tmp_path: Path, federation: Federation):
    """Every page is complete HTML: with JavaScript off, sign in and read the data."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.browser import chrome_options, chromium_paths

    paths = chromium_paths()
    if paths is None:
        pytest.skip("no Chromium")
    options = chrome_options(paths[0], tmp_path / "profile")
    options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)
    try:
        sign_in(driver, federation, federation.ana.token, f"/jobs/{federation.done_job}")
        assert driver.execute_script("return typeof window.htmx") == "undefined"  # the page's scripts did not run
        assert "hello from ray" in text(driver, "#log") and "SUCCEEDED" in text(driver, "#job-state")
        driver.get(f"{federation.url}queue")
        assert "usp" in text(driver, "#queue-counts")
    finally:
        driver.quit()


def test_a_researcher_cannot_reach_another_institutions_job(chrome: Any, federation: Federation):
    driver = chrome
    sign_in(driver, federation, federation.ana.token)
    nav = text(driver, "nav")
    assert "Audit" not in nav and "Jobs" in nav
    driver.get(f"{federation.url}jobs/{federation.waiting_job}")
    assert text(driver, "h1") == "Not found"
    assert "python big.py" not in driver.page_source
    driver.get(f"{federation.url}queue")
    assert federation.waiting_job not in text(driver, "#queue-table")
    assert "usp" in text(driver, "#queue-counts")  # bruno's job, as a count only
    driver.get(f"{federation.url}audit")
    assert text(driver, "h1") == "Not allowed"


def test_bad_and_expired_tokens_are_refused(chrome: Any, federation: Federation):
    from selenium.webdriver.common.by import By

    driver = chrome
    driver.delete_all_cookies()
    driver.get(f"{federation.url}login")
    driver.find_element(By.ID, "token").send_keys("mgu_this-is-not-a-token")
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    assert "unknown or revoked" in text(driver, "#problem")
    assert driver.get_cookies() == []

    token = federation.broker.user("dora", "uchile", common_pb2.ROLE_RESEARCHER, ttl=5)
    sign_in(driver, federation, token, "/jobs")
    assert text(driver, "h1") == "Jobs"
    federation.clock.advance(6)  # her token expires; the sites' 30 s leases do not
    driver.get(f"{federation.url}jobs")
    assert "/login" in driver.current_url  # the session ended with its token
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    assert "expired" in text(driver, "#problem")


def test_sign_out_from_the_page(chrome: Any, federation: Federation):
    from selenium.webdriver.common.by import By

    driver = chrome
    sign_in(driver, federation, federation.bruno.token, "/queue")
    assert federation.waiting_job in text(driver, "#queue-table")
    driver.find_element(By.CSS_SELECTOR, "form.who button").click()
    eventually(lambda: "/login" in driver.current_url, what="signed out")
    driver.get(f"{federation.url}queue")
    assert "/login" in driver.current_url
    admin = federation.broker.admin
    assert admin.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=admin.md).name == "admin"  # the broker serves on
