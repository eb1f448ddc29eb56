"""rnnlab serve's HTTP API in-process (Starlette's TestClient): every endpoint gives what the Python API
gives for the same arguments, and every bad request a 4xx with one line of JSON, the CLI's line where the CLI
has one; the server keeps serving after any of them (a property test posts arbitrary JSON)."""

import json

from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np
import pytest
from starlette.testclient import TestClient

import rnnlab
from rnnlab.data.strokes import offsets_to_points
from rnnlab.draw import STROKE_WIDTH_FRACTION, strokes_to_svg
from rnnlab.serve.app import LIMITS, MAX_LINES, create_app
from rnnlab.serve.fields import MAX_BODY_BYTES
from rnnlab.serve.catalog import Catalog
from rnnlab.serve.jobs import Jobs

from conftest import fails, tiny_charlm

LOCAL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def charlm_folder(tmp_path_factory):
    return tiny_charlm(tmp_path_factory.mktemp("serve"), steps=20, seed=5)


@pytest.fixture(scope="module")
def catalog(charlm_folder):
    return Catalog.open([charlm_folder])


@pytest.fixture(scope="module")
def client(catalog):
    with TestClient(create_app(catalog, Jobs(2, 4, 60.0)), base_url=LOCAL) as client:
        yield client


@pytest.fixture(scope="module")
def bundled(catalog):
    return catalog.get("builtin:handwriting").run


def post(client, path, body, **kwargs):
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"}, **kwargs)


def records(response) -> list:
    return [json.loads(line) for line in response.text.splitlines()]


def one_line_error(response, status=400) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"], body
    return body["error"]


# --------------------------------------------------------------------------------------------- models


def test_models_lists_the_bundled_model_and_the_named_run(client, bundled):
    listing = client.get("/api/models").json()
    models = {m["name"]: m for m in listing["models"]}
    assert list(models) == ["builtin:handwriting", "builtin:recognizer", "quick"]
    hand, quick, reader = models["builtin:handwriting"], models["quick"], models["builtin:recognizer"]
    assert (reader["task"], reader["kind"], reader["loaded"]) == ("recognize", "reads", True)
    assert (hand["task"], hand["kind"], hand["loaded"], hand["metrics"]) == ("synthesis", "handwriting", True, False)
    assert hand["alphabet"] == "".join(bundled.vocab.tokens) and hand["text_length"] == bundled.config.max_text_length
    assert hand["parameters"] == sum(p.numel() for p in bundled.model.parameters()) and hand["step"] == 8000
    assert [s["text"] for s in hand["styles"]] == [s.text for s in bundled.styles]
    np.testing.assert_allclose(hand["styles"][2]["offsets"], bundled.styles[2].offsets, atol=0.005)
    assert (quick["task"], quick["kind"], quick["tokens"], quick["metrics"]) == ("charlm", "text", "char", True)
    assert listing["limits"] == LIMITS and listing["load"]["pending"] == 0


def test_models_are_loaded_once_at_start_up(client, monkeypatch):
    def no_second_load(*args, **kwargs):
        raise AssertionError("a request loaded a model again")

    monkeypatch.setattr("rnnlab.serve.catalog.load", no_second_load)
    monkeypatch.setattr("rnnlab.run.load", no_second_load)
    assert post(client, "/api/write", {"text": "once", "seed": 1}).status_code == 200
    assert post(client, "/api/sample", {"model": "quick", "length": 5}).status_code == 200
    assert client.get("/api/models").status_code == 200


# ---------------------------------------------------------------------------------------------- write


def test_write_streams_the_points_that_run_write_draws(client, bundled):
    response = post(client, "/api/write", {"text": "Hello there\nsecond line", "bias": 2.0, "seed": 7,
                                           "attention": True})
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-ndjson"
    *chunks, done = records(response)
    written = bundled.write("Hello there\nsecond line", bias=2.0, seed=7)
    assert done["done"] is True and done["texts"] == written.texts and done["stopped"] == written.stopped
    for i, line in enumerate(written.lines):
        streamed = [c["points"] for c in chunks if c["line"] == i]
        assert len(streamed) > 3  # streamed in pieces, not at the end
        np.testing.assert_allclose(np.concatenate(streamed), line, atol=0.006)
        np.testing.assert_allclose(done["attention"][i], written.attention[i], atol=6e-5)
    assert {c["line"] for c in chunks} == {0, 1}


def test_write_with_a_style_number_and_with_a_drawn_hand(client, bundled):
    by_number = records(post(client, "/api/write", {"text": "ink", "style": 1, "seed": 2}))
    expected = bundled.write("ink", style=1, seed=2).lines[0]
    np.testing.assert_allclose(np.concatenate([c["points"] for c in by_number[:-1]]), expected, atol=0.006)
    assert "attention" not in by_number[-1]

    screen = offsets_to_points(bundled.styles[0].offsets) * [2.5, -2.5, 1]  # pixels, y down
    drawn = {"text": bundled.styles[0].text, "points": screen.tolist()}
    by_hand = records(post(client, "/api/write", {"text": "ink", "strokes": drawn, "seed": 2}))
    style = bundled.drawn_style(drawn["points"], drawn["text"])
    expected = bundled.write("ink", style=style, seed=2).lines[0]
    np.testing.assert_allclose(np.concatenate([c["points"] for c in by_hand[:-1]]), expected, atol=0.006)


def test_write_svg_is_the_page_run_write_draws(client, bundled):
    response = post(client, "/api/write.svg", {"text": "one\ntwo", "seed": 3, "color": "#336699", "stroke_width": 2})
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    offsets, size = bundled.write("one\ntwo", seed=3).page()
    assert response.text == strokes_to_svg(offsets, 2 * STROKE_WIDTH_FRACTION * size, "#336699", writing_size=size)


# --------------------------------------------------------------------------------------------- sample


def test_sample_streams_what_run_sample_gives(client, catalog):
    body = {"model": "quick", "prime": "the ", "length": 80, "temperature": 0.8, "top_k": 5, "top_p": 0.9, "seed": 4}
    response = post(client, "/api/sample", body)
    assert response.status_code == 200 and response.headers["content-type"] == "text/plain; charset=utf-8"
    run = catalog.get("quick").run
    assert response.text == run.sample("the ", length=80, temperature=0.8, top_k=5, top_p=0.9, seed=4)
    assert post(client, "/api/sample", {**body, "temperature": 0}).text == run.sample("the ", 80, temperature=0)


# -------------------------------------------------------------------------------------------- metrics


def test_read_gives_what_run_read_reads_of_the_drawn_line(client, catalog):
    from rnnlab import ink
    from rnnlab.data import hershey

    reader = catalog.get("builtin:recognizer").run
    line = hershey.render_text("the fox", np.random.default_rng(2)).offsets
    xy = np.cumsum(line[:, :2], axis=0) * [4.0, -4.0] + [30, 200]  # as a screen records it: pixels, y down
    points = np.c_[xy, line[:, 2]].round(1).tolist()
    for extra in ({}, {"beam": 0}, {"beam": 4, "lm_weight": 1.5}):
        answer = post(client, "/api/read", {"points": points, **extra})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"text": reader.read(ink.from_screen(points), extra.get("beam"), extra.get("lm_weight"))}


BAD_READS = [
    ({}, "points must be a list"),
    ({"points": []}, "points must be a list of 1 to 20,000"),
    ({"points": [[0, 0, 0]] * 20_001}, "points must be a list of 1 to 20,000"),
    ({"points": [[0, 0]]}, "finite numbers"),
    ({"points": [[0, "1", 0]]}, "finite numbers"),
    ({"points": [[0, 0, 0]], "beam": -1}, "beam must be a whole number from 0 to 64"),
    ({"points": [[0, 0, 0]], "lm_weight": 101}, "lm_weight must be a number from 0 to 100"),
    ({"points": [[0, 0, 0]], "model": "quick"}, "quick is a charlm run, which samples text (POST /api/sample); pick a model that reads"),
    ({"points": [[0, 0, 0]], "text": "hi"}, "unknown field 'text'"),
]


@pytest.mark.parametrize("body, expected", BAD_READS, ids=[e for _, e in BAD_READS])
def test_bad_reads_are_one_line_4xx(client, body, expected):
    assert expected in one_line_error(post(client, "/api/read", body))


def test_metrics_gives_the_records_and_the_ones_since(client, catalog):
    stored, damaged = catalog.get("quick").folder.read_metrics()
    every = client.get("/api/runs/quick/metrics").json()
    assert every == {"records": stored, "next": len(stored), "damaged": damaged} and len(stored) > 3
    assert client.get("/api/runs/quick/metrics?since=3").json()["records"] == stored[3:]
    assert client.get(f"/api/runs/quick/metrics?since={len(stored)}").json()["records"] == []


# --------------------------------------------------------------------------------------------- errors


def test_a_character_outside_the_alphabet_is_the_line_the_cli_prints(client, capsys, tmp_path):
    cli = fails(capsys, ["write", "Hi~", "-o", str(tmp_path / "x.png")])
    assert one_line_error(post(client, "/api/write", {"text": "Hi~"})) == cli.removeprefix("rnnlab: error: ")
    too_long = "word " * 20
    cli = fails(capsys, ["write", too_long, "-o", str(tmp_path / "x.png")])
    assert one_line_error(post(client, "/api/write", {"text": too_long})) == cli.removeprefix("rnnlab: error: ")


BAD_WRITES = [
    ({}, "text is missing"),
    ({"text": 5}, "text must be a string"),
    ({"text": "a" * 601}, "at most 600"),
    ({"text": "\n".join("ab" for _ in range(MAX_LINES + 1))}, f"at most {MAX_LINES}"),
    ({"text": "   "}, "empty"),
    ({"text": "hi", "bias": "high"}, "bias must be a number from 0 to 10"),
    ({"text": "hi", "bias": 11}, "bias must be a number"),
    ({"text": "hi", "bias": True}, "bias must be a number"),
    ({"text": "hi", "seed": -1}, "seed must be a whole number"),
    ({"text": "hi", "seed": 1.5}, "seed must be a whole number"),
    ({"text": "hi", "style": 4}, "4 built-in styles"),
    ({"text": "hi", "style": "0"}, "style must be a whole number"),
    ({"text": "hi", "style": 0, "strokes": {"text": "a", "points": [[0, 0, 0], [1, 1, 1]]}}, "not both"),
    ({"text": "hi", "strokes": [[0, 0, 0]]}, "strokes must be"),
    ({"text": "hi", "strokes": {"text": "ab", "points": [[0, 0, 0]]}}, "at least 2 points"),
    ({"text": "hi", "strokes": {"text": "ab", "points": [[0, 0, 0], [0, 0, 1]]}}, "no length"),
    ({"text": "hi", "strokes": {"text": "ab", "points": [[0, 0, 0], ["1", 0, 1]]}}, "finite numbers"),
    ({"text": "hi", "strokes": {"text": "", "points": [[0, 0, 0], [1, 0, 1]]}}, "needs its text"),
    ({"text": "hi", "strokes": {"text": "a~", "points": [[0, 0, 0], [1, 0, 1]]}}, "'~'"),
    ({"text": "hi", "strokes": {"text": "ab", "points": [[0, 0, 0]] * 20_001}}, "at most 20,000"),
    ({"text": "hi", "attention": "yes"}, "attention must be true or false"),
    ({"text": "hi", "colour": "red"}, "unknown field 'colour'"),
    ({"text": "hi", "model": "nope"}, "no model named 'nope'"),
    ({"text": "hi", "model": "quick"}, "quick is a charlm run, which samples text"),
    ({"text": "hi", "model": 3}, "model must be the name"),
]


@pytest.mark.parametrize("body, expected", BAD_WRITES, ids=[e for _, e in BAD_WRITES])
def test_bad_writes_are_one_line_4xx(client, body, expected):
    status = 404 if "no model named" in expected else 400
    assert expected in one_line_error(post(client, "/api/write", body), status)


BAD_OTHERS = [
    ("/api/write.svg", {"text": "hi", "color": "red\" onload=\"x"}, 400, "color must be"),
    ("/api/write.svg", {"text": "hi", "stroke_width": 0}, 400, "stroke_width must be a number"),
    ("/api/sample", {"model": "quick", "length": 5001}, 400, "length must be a whole number from 0 to 5000"),
    ("/api/sample", {"model": "quick", "temperature": -1}, 400, "temperature must be a number"),
    ("/api/sample", {"model": "quick", "temperature": 1e-5}, 400, "greedy in all but name"),
    ("/api/sample", {"model": "quick", "top_p": 0}, 400, "top_p must be in (0, 1]"),
    ("/api/sample", {"model": "quick", "prime": "~~"}, 400, "'~'"),
    ("/api/sample", {"model": "builtin:handwriting"}, 400, "which writes text"),
    ("/api/sample", {}, 400, "no served model samples text"),
]


@pytest.mark.parametrize("path, body, status, expected", BAD_OTHERS, ids=[e for *_, e in BAD_OTHERS])
def test_bad_svgs_and_samples_are_one_line_4xx(client, catalog, path, body, status, expected):
    if body == {}:  # no text model in this server
        with TestClient(create_app(Catalog.open([]), Jobs(1, 1, 60.0)), base_url=LOCAL) as alone:
            assert expected in one_line_error(post(alone, path, body), status)
        return
    assert expected in one_line_error(post(client, path, body), status)


def test_bodies_that_are_not_json_objects(client):
    send = lambda content, kind="application/json": client.post("/api/write", content=content,  # noqa: E731
                                                                  headers={"content-type": kind})
    assert "Content-Type: application/json" in one_line_error(send(b'{"text": "hi"}', "text/plain"), 415)
    assert "not valid JSON" in one_line_error(send(b"{"))
    assert "not valid JSON" in one_line_error(send(b"\xff\xfe"))
    assert "NaN is not a number" in one_line_error(send(b'{"text": "hi", "bias": NaN}'))
    assert "must be a JSON object" in one_line_error(send(b'["hi"]'))
    assert "not valid JSON" in one_line_error(send(b"[" * 100_000 + b"]" * 100_000))
    assert "at most 1,048,576" in one_line_error(send(b" " * (MAX_BODY_BYTES + 1)), 413)


def test_paths_methods_hosts_and_metrics_errors(client):
    assert "no such page: /api/nothing" in one_line_error(client.get("/api/nothing"), 404)
    assert "GET is not allowed" in one_line_error(client.get("/api/write"), 405)
    assert "no such page" in one_line_error(client.get("/static/../app.py"), 404)
    assert "no model named" in one_line_error(client.get("/api/runs/..%2F..%2Fetc/metrics"), 404)
    assert "no training metrics" in one_line_error(client.get("/api/runs/builtin:handwriting/metrics"), 404)
    assert "since must be a record count" in one_line_error(client.get("/api/runs/quick/metrics?since=-1"))
    assert "answers requests to 127.0.0.1" in one_line_error(client.get("/api/models", headers={"host": "evil.example"}), 421)
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]


JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 10**20) | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)
KEYS = st.sampled_from(["model", "text", "bias", "style", "strokes", "seed", "attention", "color", "stroke_width",
                        "prime", "length", "temperature", "top_k", "top_p", "points", "beam", "lm_weight", "other"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/api/write", "/api/write.svg", "/api/sample", "/api/read"]),
       body=st.dictionaries(KEYS, JSON, max_size=5) | JSON)
def test_any_json_gets_an_answer_and_never_a_500(client, path, body):
    response = post(client, path, body)
    assert response.status_code in (200, 400, 404, 413), (response.status_code, response.text)
    if response.status_code != 200:
        one_line_error(response, response.status_code)
    assert client.get("/api/models").status_code == 200  # still serving


def test_a_run_still_before_its_first_weights_is_served_for_its_metrics_then_loaded(charlm_folder, tmp_path):
    import shutil

    young = tmp_path / "young"
    shutil.copytree(charlm_folder, young)
    weights = young / "model.safetensors"
    weights.rename(tmp_path / "later.safetensors")
    with TestClient(create_app(Catalog.open([str(young)]), Jobs(1, 1, 60.0)), base_url=LOCAL) as alone:
        listed = {m["name"]: m for m in alone.get("/api/models").json()["models"]}["young"]
        assert (listed["loaded"], listed["kind"], listed["metrics"], listed["step"]) == (False, "text", True, None)
        assert alone.get("/api/runs/young/metrics").json()["next"] > 0
        body = {"model": "young", "length": 20, "seed": 1}
        assert "still training" in one_line_error(post(alone, "/api/sample", body), 409)
        (tmp_path / "later.safetensors").rename(weights)  # its first checkpoint
        assert post(alone, "/api/sample", body).text == rnnlab.load(str(young)).sample(length=20, seed=1)
