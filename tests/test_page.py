"""The page at `/`, driven in Debian's Chromium against a real service on loopback.

Skip the browser tests locally with `pytest -m "not browser"`; `make test` and CI run them.
Screenshots land in test-artifacts/; the desktop one is also the README's docs/images/page.png.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support import ARTIFACTS, ROOT, Service, require_program, start_service

README_SCREENSHOT = ROOT / "docs" / "images" / "page.png"
DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 390, "height": 844}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MAX_STEPS = 16  # the slider goes to 32
WAIT_MS = 20_000  # an upper bound for one answer, not a speed claim

# A "7": the bar, then the stem, as fractions of the pad.
SEVEN = [[(0.30, 0.24), (0.70, 0.24)], [(0.70, 0.24), (0.42, 0.80)]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_program("chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    # Fewer frames allowed than the slider offers: the page can meet a real API error.
    env = {"AE_MAX_STEPS": str(MAX_STEPS)}
    with start_service(tmp_path_factory.mktemp("page"), env) as running:
        yield running


def open_page(
    browser: Browser, url: str, viewport: dict[str, int], **options: Any
) -> tuple[Page, list[str]]:
    """The page loaded, with the URL of every request it makes from now on."""
    page = browser.new_page(viewport=viewport, **options)  # type: ignore[arg-type]
    page.set_default_timeout(WAIT_MS)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{url}/")
    page.wait_for_function("() => document.querySelectorAll('#samples img').length === 10")
    return page, requests


def draw(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    box = page.locator("#pad").bounding_box()
    assert box is not None
    for stroke in strokes:
        (x0, y0), (x1, y1) = stroke
        page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
        page.mouse.down()
        for i in range(1, 13):
            f = i / 12
            x, y = x0 + (x1 - x0) * f, y0 + (y1 - y0) * f
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.up()


def wait_for_reconstruction(page: Page) -> dict[str, float]:
    page.wait_for_function(
        "() => { const i = document.querySelector('#recon');"
        " return !i.hidden && i.complete && i.naturalWidth > 0; }"
    )
    return page.evaluate(
        "() => { const i = document.querySelector('#recon'), r = i.getBoundingClientRect();"
        " return {natural: [i.naturalWidth, i.naturalHeight], shown: [r.width, r.height],"
        " rendering: getComputedStyle(i).imageRendering}; }"
    )


def ink(page: Page) -> int:
    """How many pad pixels carry ink."""
    return page.evaluate(
        "() => { const c = document.querySelector('#pad');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 127) n++; return n; }"
    )


def pick_samples_by_keyboard(page: Page, *digits: int) -> None:
    for digit in digits:
        page.focus(f".sample[data-digit='{digit}']")
        page.keyboard.press("Enter")


def set_steps_by_keyboard(page: Page, key: str, times: int = 1) -> None:
    page.focus("#steps")
    for _ in range(times):
        page.keyboard.press(key)


def wait_for_frames(page: Page, count: int) -> list[list[int]]:
    """The strip once it shows `count` frames and no interpolation is on its way."""
    page.wait_for_function(
        "n => document.querySelectorAll('#strip img').length === n"
        " && !document.querySelector('#interpolate').hasAttribute('aria-busy')"
        " && [...document.querySelectorAll('#strip img')].every(i => i.complete)",
        arg=count,
    )
    return page.evaluate(
        "() => [...document.querySelectorAll('#strip img')]"
        ".map(i => [i.naturalWidth, i.naturalHeight])"
    )


def outside_origin(requests: list[str], url: str) -> list[str]:
    origin = urlsplit(url)[:2]
    return [u for u in requests if urlsplit(u).scheme != "data" and urlsplit(u)[:2] != origin]


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=path, full_page=full_page)
    return path


@pytest.mark.browser
def test_draw_reconstruct_embed_and_interpolate(browser: Browser, service: Service) -> None:
    # Less motion asked: the animation waits on its first frame, so the screenshot is the same
    # on every run.
    page, requests = open_page(browser, service.url, DESKTOP, reduced_motion="reduce")
    draw(page, SEVEN)

    recon = wait_for_reconstruction(page)
    assert recon["natural"] == [28, 28]
    assert min(recon["shown"]) >= 28 * 4  # scaled up ...
    assert recon["rendering"] == "pixelated"  # ... crisply
    assert re.fullmatch(r"\d+\.\d{4}", page.text_content("#mse") or "")
    assert "64 numbers" in (page.get_attribute("#chart", "aria-label") or "")

    pick_samples_by_keyboard(page, 3, 8)
    set_steps_by_keyboard(page, "ArrowLeft", 3)  # 10 -> 7
    assert page.text_content("#steps-value") == "7"
    page.click("#run")
    assert wait_for_frames(page, 7) == [[28, 28]] * 7
    assert "7 frames on a linear path" in (page.text_content("#interp-note") or "")
    assert page.text_content("#alerts") == ""
    first = page.get_attribute("#movie", "src")
    assert page.is_visible("#movie") and first and first.startswith("data:image/png")
    assert page.text_content("#play") == "Play"

    page.mouse.move(0, 0)  # no hover highlight in the pictures
    screenshot(page, "page-desktop.png")
    page.screenshot(path=README_SCREENSHOT)

    page.click("#play")
    page.wait_for_function("src => document.querySelector('#movie').src !== src", arg=first)
    assert page.text_content("#play") == "Pause"
    assert outside_origin(requests, service.url) == []


@pytest.mark.browser
def test_undo_drops_the_last_stroke_and_clear_empties_the_pad(
    browser: Browser, service: Service
) -> None:
    page, _ = open_page(browser, service.url, DESKTOP)
    assert page.is_disabled("#undo")
    draw(page, SEVEN[:1])
    one_stroke = ink(page)
    draw(page, SEVEN[1:])
    assert ink(page) > one_stroke
    wait_for_reconstruction(page)

    page.click("#undo")
    assert ink(page) == one_stroke
    page.click("#clear")
    assert ink(page) == 0
    assert page.is_hidden("#recon")
    assert page.text_content("#mse") == "–"
    assert page.is_disabled("#undo")


@pytest.mark.browser
def test_an_api_error_is_shown_in_words(browser: Browser, service: Service) -> None:
    page, _ = open_page(browser, service.url, DESKTOP)
    page.click(".sample[data-digit='1']")  # two quick clicks fill A, then B
    page.click(".sample[data-digit='7']")
    set_steps_by_keyboard(page, "End")  # 32 frames: more than the service allows

    alert = page.locator("#alerts .alert")
    alert.wait_for()
    assert page.get_attribute("#slot-a", "alt") == "Slot A: sample 1"
    assert page.get_attribute("#slot-b", "alt") == "Slot B: sample 7"
    text = alert.text_content() or ""
    assert "Invalid request" in text  # the problem's title ...
    assert f"32 frames asked; between 2 and {MAX_STEPS}" in text  # ... and its detail
    page.wait_for_function("() => document.querySelectorAll('#strip img').length === 0")
    screenshot(page, "page-error.png")

    set_steps_by_keyboard(page, "Home")  # 2 frames: within the limit
    assert wait_for_frames(page, 2) == [[28, 28]] * 2
    assert page.locator("#alerts .alert").count() == 0  # the error went with its cause


@pytest.mark.browser
def test_phone_screen_has_no_sideways_scrolling(browser: Browser, service: Service) -> None:
    page, requests = open_page(browser, service.url, PHONE)
    draw(page, SEVEN)
    wait_for_reconstruction(page)
    page.click("#use-a")
    pick_samples_by_keyboard(page, 0)  # fills B: A is taken
    set_steps_by_keyboard(page, "Home")
    set_steps_by_keyboard(page, "ArrowRight", MAX_STEPS - 2)  # the most frames: the widest strip
    assert page.text_content("#steps-value") == str(MAX_STEPS)
    assert len(wait_for_frames(page, MAX_STEPS)) == MAX_STEPS

    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, view: innerWidth,"
        " widest: Math.max(...[...document.querySelectorAll('main *')]"
        ".map(e => e.getBoundingClientRect().right))})"
    )
    assert widths["page"] <= widths["view"]
    assert widths["widest"] <= widths["view"]
    screenshot(page, "page-phone.png", full_page=True)
    assert outside_origin(requests, service.url) == []


def test_page_files_are_served_and_nothing_else(service: Service) -> None:
    with service.client() as client:
        check_page_files(client)


def check_page_files(client: httpx.Client) -> None:
    index = client.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in index.headers["content-security-policy"]
    for name, kind in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
    for digit in range(10):
        sample = Image.open(io.BytesIO(client.get(f"/static/samples/{digit}.png").content))
        assert (sample.size, sample.mode) == ((28, 28), "L")

    for outside in ["/static/../page.py", "/static/%2e%2e/page.py", "/static/nothing.js"]:
        refused = client.get(outside)
        assert refused.status_code == 404
        assert refused.headers["content-type"] == "application/problem+json"
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path == "/" or path.startswith("/static")]
