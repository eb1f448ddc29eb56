"""Property-based hostile input for the pure readers, in-process: ``files.parse_json``, ``config.load_toml`` /
``parse_set`` / ``override``, ``data.sequences.read_jsonl`` and ``writing.read_styles`` on generated text
full of what breaks parsers (NaN, infinities, 1e400, integers past 4,300 digits, nesting 100,000 deep, wrong
types, cut-off documents). Each returns a value rnnlab can use or raises ``UserError`` with one short line,
and nothing else, within the deadline of each example."""

from datetime import timedelta
import json
import math
import os
import tempfile
import warnings

from hypothesis import HealthCheck, example, given, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
import numpy as np
import pytest

from hostile_inputs import huge_int, nested
from rnnlab.config import load_toml, override, parse_set
from rnnlab.data.sequences import read_jsonl
from rnnlab.errors import UserError
from rnnlab.files import parse_json
from rnnlab.tasks import TASKS
from rnnlab.writing import read_styles

# Hypothesis would keep its caches (and patches of failing examples) in ./.hypothesis, inside the checkout; it
# writes the first while the test modules are imported and the last after every test has ended, so no fixture
# can move them: they go to the system's temporary folder for the session.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "rnnlab-hypothesis"))
EXAMPLES = settings(max_examples=40, deadline=timedelta(seconds=2), database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MAX_MESSAGE = 1000  # characters: a message that echoes a whole hostile value is not one a user can read


def answer(call):
    """``call()``'s value, or None after a UserError of one short line; any other exception, or a warning (which
    the CLI would print beside its one line), fails the test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = call()
        except UserError as e:
            message = str(e)
            assert message.strip() and "\n" not in message, f"not one line: {message[:500]!r}"
            assert len(message) <= MAX_MESSAGE, f"{len(message):,} characters: {message[:300]}..."
            value = None
    assert not caught, f"warned: {[f'{w.category.__name__}: {w.message}' for w in caught]}"
    return value


# JSON-like text: real values and the tokens that break readers, nested and sometimes cut short.
JSON_ATOMS = st.one_of(
    st.sampled_from(["NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", huge_int(),
                     "-" + huge_int(), "9" * 4300, "true", "false", "null", '"x"', '""', "1.0", "-0", "0.5", "[]",
                     "{}", '"\\ud800"', '"\\u0000"', "01", "1.", ".5", "+1", "0x10"]),
    st.integers().map(str), st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.text(max_size=8).map(json.dumps))
JSON_TEXT = st.recursive(JSON_ATOMS, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.dictionaries(st.sampled_from(["tokens", "label", "labels", "features", "target", "text", "offsets", "k"]),
                    inner, max_size=4).map(lambda d: "{" + ", ".join(f'"{k}": {v}' for k, v in d.items()) + "}")),
    max_leaves=12)
HOSTILE_JSON = st.one_of(JSON_TEXT, st.integers(1_000, 100_000).map(nested), st.text(max_size=60),
                         st.tuples(JSON_TEXT, st.integers(0, 40)).map(lambda t: t[0][: t[1]]))


def _finite(value) -> bool:
    """No NaN or infinity anywhere in a parsed value (iteratively: it may be 100,000 deep)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        stack.extend(item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())
    return True


@EXAMPLES
@given(HOSTILE_JSON)
@example(nested(100_000))
@example('{"a": ' * 50_000 + "1" + "}" * 50_000)
@example(huge_int())
@example("[NaN, 1e400]")
def test_parse_json_returns_finite_json_or_one_line(text):
    value = answer(lambda: parse_json(text, "the test's text"))
    if value is not None:
        assert _finite(value), f"{text[:100]!r} parsed to a non-finite number"
        json.dumps(value, allow_nan=False)


TOML_VALUES = st.one_of(
    st.sampled_from(["nan", "+nan", "-nan", "inf", "-inf", "1e400", huge_int(), "99999999999999999999", "1e300",
                     "true", "1979-05-27", "1979-05-27T07:32:00Z", "07:32:00", "[1, 2]", "{a = 1}", '"fast"', "16.5",
                     "0x7fffffffffffffff", "-1", "0", "16", "0.001", '"lstm"', "'gru'", '""', "[" * 50_000]),
    st.integers().map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr), st.text(max_size=10))
CONFIG_KEYS = st.sampled_from(["hidden_size", "lr", "seed", "cell", "batch_size", "dropout", "num_layers", "clip",
                               "tied", "seq_len", "unknown_key", "[table]", "a.b"])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


@EXAMPLES
@given(st.lists(st.tuples(CONFIG_KEYS, TOML_VALUES), max_size=4))
@example([("hidden_size", huge_int())])
@example([("x", "[" * 50_000)])
@example([("hidden_size", "1e300")])
def test_a_toml_config_loads_into_a_valid_config_or_one_line(scratch, pairs):
    path = os.path.join(scratch, "config.toml")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write("".join(f"{key} = {value}\n" for key, value in pairs))
    values = answer(lambda: load_toml(path))
    if values is not None:
        config = answer(lambda: override(TASKS["charlm"].Config(), values, path))
        if config is not None:
            answer(config.validate)


SET_ITEMS = st.one_of(
    st.tuples(CONFIG_KEYS, TOML_VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.sampled_from(["lr", "=5", "=", "hidden_size=", "lr=nan", "lr=1e400", f"cell={'x' * 2000}",
                     f"hidden_size={'9' * 5000}", f"{'k' * 2000}=1", f"seed={huge_int()}"]),  # (100,000: the CLI cases)
    st.text(max_size=30))


@EXAMPLES
@given(st.lists(SET_ITEMS, max_size=4))
@example([f"cell={'x' * 2000}"])
@example([f"hidden_size={'9' * 5000}"])
@example([f"{'k' * 2000}=1"])
def test_set_flags_give_a_valid_config_or_one_short_line(items):
    values = answer(lambda: parse_set(items))
    if values is not None:
        config = answer(lambda: override(TASKS["charlm"].Config(), values, "--set"))
        if config is not None:
            answer(config.validate)


def _array(items: list) -> str:
    return "[" + ", ".join(items) + "]"


def _object(fields: dict) -> str:
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


LINE = st.one_of(
    st.fixed_dictionaries({"tokens": st.lists(JSON_ATOMS, min_size=1, max_size=4).map(_array), "label": JSON_ATOMS}),
    st.fixed_dictionaries({"features": st.lists(st.lists(JSON_ATOMS, min_size=1, max_size=2).map(_array), min_size=1,
                                                max_size=3).map(_array), "target": JSON_ATOMS}),
).map(_object)
GOOD_LINES = ['{"tokens": ["a", "b"], "label": "x"}', '{"tokens": ["b"], "label": 2}']


@EXAMPLES
@given(st.lists(st.one_of(LINE, HOSTILE_JSON, st.sampled_from(GOOD_LINES)), min_size=1, max_size=5))
@example([GOOD_LINES[0], '{"tokens": ["a"], "label": true}'])
@example([GOOD_LINES[0], '{"tokens": ["a"], "label": NaN}'])
@example([GOOD_LINES[0], '{"tokens": ["a"], "label": %s}' % huge_int()])
def test_a_jsonl_file_reads_as_sequences_or_one_line(scratch, lines):
    path = os.path.join(scratch, "data.jsonl")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write("\n".join(line.replace("\n", " ") for line in lines) + "\n")
    read = answer(lambda: read_jsonl(path))
    if read is not None:
        data, tokens, classes = read
        assert torch_finite(data.inputs) and torch_finite(data.labels)
        assert all(isinstance(c, str) and c not in ("True", "False", "nan", "inf") for c in classes), classes


def torch_finite(tensor) -> bool:
    return bool(tensor.isfinite().all()) if tensor.is_floating_point() else True


STYLE = st.fixed_dictionaries({"text": st.one_of(JSON_ATOMS, st.just('"hello"')),
                               "offsets": st.one_of(HOSTILE_JSON, st.lists(st.lists(JSON_ATOMS, min_size=2, max_size=4)
                                                    .map(lambda xs: "[" + ", ".join(xs) + "]"), min_size=1, max_size=4)
                                                    .map(lambda xs: "[" + ", ".join(xs) + "]"))}
                              ).map(lambda d: '{"text": %s, "offsets": %s}' % (d["text"], d["offsets"]))


@EXAMPLES
@given(st.one_of(STYLE, HOSTILE_JSON))
@example('{"text": "hello", "offsets": [[1e300, 0, 0], [1, 1, 1]]}')
@example('{"text": "hello", "offsets": [["0", "0", "0"], ["1", "1", "1"]]}')
@example('{"text": "hello", "offsets": [[%s, 0, 0], [1, 1, 1]]}' % huge_int())
def test_a_style_file_reads_as_finite_strokes_or_one_line(scratch, text):
    path = os.path.join(scratch, "style.json")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    styles = answer(lambda: read_styles(path, single=True))
    for style in styles or []:
        assert isinstance(style.text, str) and style.text.strip()
        assert style.offsets.ndim == 2 and style.offsets.shape[1] == 3 and len(style.offsets) >= 2
        assert np.isfinite(style.offsets).all()
