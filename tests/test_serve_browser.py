"""rnnlab serve's page in a real browser: Playwright drives Debian's Chromium against a real server in a
subprocess (the bundled handwriting model and recognizer, and a tiny char LM with its metrics). Writing
appears as you type, the bias, the seed and the style change it, a hand drawn on the canvas primes it, a line
written on the Read canvas is read after every stroke, errors show the API's own line, text streams in, the
training chart has its curves, the downloads are real files, and no request leaves the server. The screenshot goes to $RNNLAB_SCREENSHOT when set::

    RNNLAB_SCREENSHOT=docs/serve.png pytest tests/test_serve_browser.py
"""

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import pytest

from conftest import tiny_charlm

CHROMIUM = "/usr/bin/chromium"  # Debian's build: Playwright's own browsers are not installed here
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is absent: these tests drive Debian's Chromium (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is absent: pip install playwright")

START_SECONDS = 60  # the server imports torch and loads the bundled model: seconds, more on a busy machine
WAIT_MS = 20_000  # the longest a page waits for a generation here (each takes well under a second)

# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """A 30-step char LM run folder (it has a metrics.jsonl, so it shows in Text and Training)."""
    return tiny_charlm(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def server(quick_run):
    """The URL of ``rnnlab serve --port 0 --model quick_run``, once GET /api/models answers."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "rnnlab", "serve", "--port", "0", "--model", quick_run],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []  # everything it prints, read on a thread so that a full pipe never blocks it
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        url = _wait_for_server(process, lines)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_server(process, lines) -> str:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"rnnlab serve exited with status {process.returncode}: {''.join(lines)}")
        found = [m for line in list(lines) for m in re.findall(r"at (http://127\.0\.0\.1:\d+)", line)]
        if found:
            try:
                with urllib.request.urlopen(found[0] + "/api/models", timeout=5) as response:
                    if response.status == 200:
                        return found[0]
            except OSError:
                pass
        time.sleep(0.1)
    pytest.fail(f"rnnlab serve did not answer within {START_SECONDS} s; it printed: {''.join(lines)}")


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (the machine is small: never two at once)."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the server; afterwards, no request went to another host and nothing failed in it
    (a script error, a Content-Security-Policy refusal or a failed load shows as a console error)."""
    context = browser.new_context(base_url=server, viewport={"width": 1180, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    here, elsewhere, problems = urlparse(server).netloc, [], []
    page.on("request", lambda r: elsewhere.append(r.url)
            if urlparse(r.url).scheme in ("http", "https", "ws", "wss") and urlparse(r.url).netloc != here else None)
    # the API's 4xx answers are what some tests ask for (the browser logs each as a failed load): any other
    # failed response (the page's own files) is a problem
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource: the server responded") else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not urlparse(r.url).path.startswith("/api/") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    yield page
    context.close()
    assert elsewhere == [], f"the page asked hosts other than {here}: {elsewhere}"
    assert problems == [], problems


def opened(page, tab="write"):
    page.goto(f"/#{tab}")
    page.wait_for_selector("body[data-ready=true]")
    return page


def written(page, action, output="#write-output"):
    """Do ``action`` and wait for the writing it starts to finish; the paths' ``d`` attributes."""
    before = page.get_attribute(output, "data-writings") or "0"
    action()
    page.wait_for_function("([sel, n]) => { const o = document.querySelector(sel);"
                           " return o.dataset.state === 'done' && o.dataset.writings !== n; }", arg=[output, before])
    return page.eval_on_selector_all(f"{output} path", "paths => paths.map(p => p.getAttribute('d'))")


# Counts the times the writing grows (a path's d changes) with the pen dot on the page, and the places the
# dot has been: writing that arrived at once would grow once.
WATCH_THE_PEN = """() => {
  window.pen = {draws: 0, dots: 0};
  let last = null;
  new MutationObserver(() => {
    const dot = document.querySelector('#write-output circle.pen');
    if (!dot) return;
    window.pen.draws += 1;
    if (dot.getAttribute('cx') !== last) { window.pen.dots += 1; last = dot.getAttribute('cx'); }
  }).observe(document.querySelector('#write-output'), {subtree: true, childList: true, attributeFilter: ['d']});
}"""


def points(paths) -> int:
    return sum(len(re.findall(r"[ML]", d)) for d in paths)


def set_range(page, selector, value):
    """Move a slider as a hand would: the value changes and the input event fires."""
    page.eval_on_selector(selector, "(e, v) => { e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); }",
                          str(value))


def draw_stroke(page, canvas, n):
    """The ``n``-th of a line of zig-zag "m"s drawn with the mouse on ``canvas``: one stroke, 25 points."""
    box = page.locator(canvas).bounding_box()
    x, y = box["x"] + 40 + 110 * n, box["y"] + 120
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 25):
        page.mouse.move(x + 3 * i, y - 40 * abs((i % 8) - 4) / 4, steps=1)
    page.mouse.up()


def api_error(server, path, body) -> str:
    """The one line the API answers ``body`` with: a 4xx's body, or the error that ends a stream."""
    request = urllib.request.Request(server + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            last = response.read().decode().strip().splitlines()[-1]
    except urllib.error.HTTPError as error:
        last = error.read().decode()
    return json.loads(last)["error"]


def assert_png(data: bytes, min_size=(100, 30)):
    """A real PNG of at least ``min_size`` pixels, not all one colour."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.width >= min_size[0] and image.height >= min_size[1], image
    low, high = zip(*image.convert("RGB").getextrema())
    assert low != high, "the image is one colour"


# ------------------------------------------------------------------------------------------- Write


def test_writing_appears_as_you_type(page):
    opened(page)
    page.evaluate(WATCH_THE_PEN)
    paths = written(page, lambda: page.locator("#write-text").press_sequentially("hello", delay=40))
    assert points(paths) > 40, paths  # "hello" is ~100 points at the model's speed
    pen = page.evaluate("window.pen")
    assert pen["draws"] >= 3 and pen["dots"] >= 3, pen  # drawn chunk by chunk, the pen dot moving
    assert page.locator("#write-output svg.line").count() == 1
    assert page.locator("#write-output circle.pen").count() == 0  # the pen dot goes when the line is done
    paths = written(page, lambda: (page.keyboard.press("Shift+Enter"), page.keyboard.type("there")))
    assert page.locator("#write-output svg.line").count() == 2  # one SVG per line
    assert page.inner_text("#write-status").startswith("2 lines in ")


def test_seed_bias_and_style_change_the_writing(page):
    opened(page)
    page.fill("#seed", "7")
    first = written(page, lambda: (page.fill("#write-text", "the bias"), page.press("#write-text", "Enter")))
    again = written(page, lambda: page.click("#again"))
    assert again != first and page.input_value("#seed") != "7"
    same = written(page, lambda: (page.fill("#seed", "7"), page.press("#seed", "Enter")))
    assert same == first  # the same seed writes the same strokes
    neat = written(page, lambda: set_range(page, "#bias", 3))
    assert page.inner_text("#bias-value") == "3.00" and neat != first
    styles = page.locator("#style-list .style-option")
    assert styles.count() == 5 and page.locator("#style-list svg path").count() > 4  # "none" + 4 drawn previews
    styled = written(page, lambda: styles.nth(2).click())
    assert styles.nth(2).get_attribute("aria-checked") == "true" and styled != neat


def test_an_error_shows_the_apis_own_line(page, server):
    opened(page)
    with page.expect_request("**/api/write") as sent:
        page.fill("#write-text", "five ~ euros €")
        page.press("#write-text", "Enter")
    page.wait_for_selector("#write-error:not([hidden])")
    assert page.inner_text("#write-error") == api_error(server, "/api/write", sent.value.post_data_json)
    assert page.get_attribute("#write-output", "data-state") == "error"


def test_downloads_repeat_the_writing_on_screen(page):
    opened(page)
    page.fill("#seed", "11")
    page.fill("#color", "#aa2200")
    written(page, lambda: (page.fill("#write-text", "a file"), page.press("#write-text", "Enter")))
    with page.expect_request("**/api/write.svg") as sent, page.expect_download() as svg:
        page.click("#download-svg")
    body = sent.value.post_data_json
    assert (body["seed"], body["color"], body["text"]) == (11, "#aa2200", "a file")
    drawing = open(svg.value.path(), encoding="utf-8").read()
    assert drawing.startswith("<svg") and 'stroke="#aa2200"' in drawing and svg.value.suggested_filename.endswith(".svg")
    with page.expect_download() as png:
        page.click("#download-png")
    assert_png(open(png.value.path(), "rb").read())


# ------------------------------------------------------------------------------------------- Your hand


def test_a_hand_drawn_on_the_canvas_primes_the_writing(page):
    opened(page, "hand")
    for stroke in range(3):
        draw_stroke(page, "#hand-canvas", stroke)
    page.fill("#hand-text", "mmm")
    page.fill("#hand-write-text", "in my hand")
    with page.expect_request("**/api/write") as sent:
        paths = written(page, lambda: page.click("#hand-write"), "#hand-output")
    strokes = sent.value.post_data_json["strokes"]
    assert strokes["text"] == "mmm" and sent.value.post_data_json["style"] is None
    assert len(strokes["points"]) >= 3 * 20 and sum(p[2] for p in strokes["points"]) == 3  # each stroke's end
    assert points(paths) > 40
    page.click("#hand-clear")
    page.click("#hand-write")
    assert page.inner_text("#hand-error").startswith("draw a few words")


# ------------------------------------------------------------------------------------------- Read


@pytest.fixture(scope="module")
def read_points():
    """What the bundled recognizer reads in ``points`` (as the page sends them), through the Python API."""
    import rnnlab

    run = rnnlab.load("builtin:recognizer")
    return lambda points, beam=None: run.read(rnnlab.ink.from_screen(points), beam)


# The canvas's pixels of ink (dark, opaque): the baseline is light, the paper transparent.
INKED = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 0x80 && d[i + 3] > 0x80) n += 1; return n; }"""


def read_after(page, action):
    """Do ``action`` (a stroke) and wait for its answer on the page; the request the page sent."""
    before = page.get_attribute("#read-output", "data-reads") or "0"
    with page.expect_request("**/api/read") as sent:
        action()
    page.wait_for_function("n => { const o = document.querySelector('#read-output');"
                           " return o.dataset.state === 'done' && o.dataset.reads !== n; }", arg=before)
    return sent.value


def test_a_line_written_on_the_read_canvas_is_read_after_each_stroke(page, read_points):
    opened(page, "read")
    assert page.input_value("#read-model") == "builtin:recognizer"
    for stroke in range(3):
        request = read_after(page, lambda: draw_stroke(page, "#read-canvas", stroke))
        body = request.post_data_json
        assert body["model"] == "builtin:recognizer" and (body["beam"], body["lm_weight"]) == (None, None)
        assert sum(p[2] for p in body["points"]) == stroke + 1 and body["points"][-1][2] == 1  # the whole line
    assert page.text_content("#read-output") == read_points(body["points"])
    assert page.inner_text("#read-status").startswith("3 strokes read in ")
    request = read_after(page, lambda: page.select_option("#read-mode", "0"))  # best path: read again
    assert request.post_data_json["beam"] == 0 and request.post_data_json["points"] == body["points"]
    assert page.text_content("#read-output") == read_points(body["points"], beam=0)
    assert page.eval_on_selector("#read-canvas", INKED) > 100  # the line is drawn as it is written
    page.click("#read-clear")
    assert page.text_content("#read-output") == "" and page.get_attribute("#read-output", "data-state") == "idle"
    assert page.eval_on_selector("#read-canvas", INKED) == 0  # the canvas is cleared too


def test_strokes_drawn_while_a_read_is_out_wait_for_it_and_stale_answers_are_dropped(page):
    held = []  # the requests, answered when the test says

    def answer(text):
        while not held:  # the route's handler runs a moment after the request goes out
            page.wait_for_timeout(20)
        held.pop().fulfill(json={"text": text})

    page.route("**/api/read", lambda route: held.append(route))
    opened(page, "read")
    with page.expect_request("**/api/read"):
        draw_stroke(page, "#read-canvas", 0)
    asked = []
    page.on("request", lambda r: asked.append(r.post_data_json) if r.url.endswith("/api/read") else None)
    draw_stroke(page, "#read-canvas", 1)
    draw_stroke(page, "#read-canvas", 2)
    page.wait_for_timeout(300)
    assert asked == [], "a second request went out while the first was still out"
    with page.expect_request("**/api/read") as again:  # it comes back: the line as it is now goes out
        answer("stale")
    assert sum(p[2] for p in again.value.post_data_json["points"]) == 3  # the three strokes
    assert page.text_content("#read-output") == ""  # the first answer was for a line that has grown since
    answer("mmm")
    page.wait_for_selector("#read-output[data-state=done]")
    assert page.text_content("#read-output") == "mmm"
    with page.expect_request("**/api/read"):
        draw_stroke(page, "#read-canvas", 3)
    page.click("#read-clear")  # the answer on its way is for a line that is gone
    answer("gone")
    page.wait_for_timeout(300)
    assert page.text_content("#read-output") == "" and len(asked) == 2  # and nothing is left to send


def test_a_read_error_shows_the_apis_own_line(page, server):
    sent = []

    def wider_beam(route):  # the page's request with a beam the server refuses, sent on to it
        sent.append({**route.request.post_data_json, "beam": 10**6})
        route.continue_(post_data=json.dumps(sent[-1]))

    page.route("**/api/read", wider_beam)
    opened(page, "read")
    draw_stroke(page, "#read-canvas", 0)
    page.wait_for_selector("#read-error:not([hidden])")
    assert page.inner_text("#read-error") == api_error(server, "/api/read", sent[0])
    assert page.get_attribute("#read-output", "data-state") == "error"
    page.click("#read-clear")
    assert page.locator("#read-error").is_hidden()


# ------------------------------------------------------------------------------------------- Text


def test_sampled_text_streams_into_the_page(page, server):
    opened(page, "text")
    page.fill("#sample-prime", "the ")
    page.fill("#length", "60")
    page.fill("#sample-seed", "5")
    page.click("#sample-go")
    page.wait_for_selector("#sample-output[data-state=done]")
    sampled = page.inner_text("#sample-output")
    assert sampled.startswith("the ") and len(sampled) > 30, sampled
    with page.expect_request("**/api/sample") as sent:
        page.fill("#top-p", "5")
        page.click("#sample-go")
    page.wait_for_selector("#sample-error:not([hidden])")
    assert page.inner_text("#sample-error") == api_error(server, "/api/sample", sent.value.post_data_json)


# ------------------------------------------------------------------------------------------- Training


def test_training_chart_draws_the_losses_and_polls(page):
    opened(page, "training")
    page.wait_for_selector("#training-chart polyline.train")
    train = page.get_attribute("#training-chart polyline.train", "points").split()
    assert len(train) == 6 and page.locator("#training-chart circle.valid").count() == 3
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/metrics" in r.url else None)
    with page.expect_request(lambda r: "/metrics?since=9" in r.url, timeout=5_000):
        pass  # the next poll asks for the records after the 9 it has
    page.click("#tab-write")
    asked.clear()
    page.wait_for_timeout(2_500)  # longer than a poll's interval
    assert asked == [], "the chart went on polling behind another tab"
    with page.expect_request(lambda r: "/metrics?since=9" in r.url, timeout=1_000):
        page.click("#tab-training")  # back on the tab: it polls at once


def test_a_panel_without_its_kind_of_model_says_how_to_serve_one(page):
    limits = {"text_chars": 600, "lines": 8, "length": 5000, "drawn_points": 20000, "max_bias": 10}
    page.route("**/api/models", lambda route: route.fulfill(json={"models": [], "limits": limits}))
    opened(page, "text")
    assert "rnnlab serve --model runs/quick" in page.inner_text("#text-empty")
    assert page.locator("#text-body").is_hidden()
    opened(page, "read")
    assert "builtin:recognizer" in page.inner_text("#read-empty")
    assert page.locator("#read-body").is_hidden()


# ------------------------------------------------------------------------------------------- screenshot


def test_screenshot(page, tmp_path):
    """The Write panel with two lines in a style and the attention heat map: docs/serve.png."""
    opened(page)
    page.fill("#seed", "2")
    page.check("#attention")
    page.locator("#style-list .style-option").nth(2).click()
    written(page, lambda: (page.fill("#write-text", "Handwriting from an LSTM\nwritten as you type"),
                           page.press("#write-text", "Enter")))
    page.wait_for_selector("#write-attention canvas.heatmap >> nth=1")
    path = os.environ.get("RNNLAB_SCREENSHOT") or str(tmp_path / "serve.png")
    page.screenshot(path=path, full_page=True)
    assert_png(open(path, "rb").read(), min_size=(800, 500))
