"""run.py, the public API: load, write and sample as the command does (same bytes, same text), train with
overrides, errors that name parameters, and no change to anything the user owns (threads, the global RNG,
matplotlib's backend)."""

import json
import os

import matplotlib
import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.errors import ShapeError, UserError
from rnnlab.tasks.lm import default_prime

from test_readme import same_picture

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")
SMALL = dict(hidden_size=16, num_layers=1, seq_len=8, batch_size=4, eval_interval=10, log_interval=5,
             preview_length=0)


@pytest.fixture(scope="module")
def bundled():
    return rnnlab.load("builtin:handwriting")


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    text = folder / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\nhello world, hello rnn.\n" * 60, encoding="utf-8")
    return rnnlab.train("charlm", str(folder / "run"), data=str(text), max_steps=30, seed=5, **SMALL)


def test_every_public_name_is_documented():
    for name in rnnlab.__all__:
        if name != "__version__":
            assert (getattr(rnnlab, name).__doc__ or "").strip(), name
    for method in ("sample", "stream", "write", "evaluate", "describe"):
        assert getattr(rnnlab.Run, method).__doc__.strip(), method


def test_write_gives_what_the_command_draws_byte_for_byte(bundled, tmp_path):
    written = bundled.write("Hello world, from rnnlab", seed=1)
    written.save(str(tmp_path / "hello.png"))
    written.save_attention(str(tmp_path / "attention.png"))
    assert main(["write", "Hello world, from rnnlab", "-o", str(tmp_path / "cli.png"), "--seed", "1",
                 "--show-attention", str(tmp_path / "cli-attention.png")]) == 0
    for api, cli, docs in (("hello.png", "cli.png", "hello.png"), ("attention.png", "cli-attention.png",
                                                                     "hello-attention.png")):
        assert (tmp_path / api).read_bytes() == (tmp_path / cli).read_bytes()
        assert same_picture(tmp_path / api, os.path.join(DOCS, docs))  # the README's, to another CPU's rounding


def test_handwriting_holds_lines_texts_stops_and_the_window(bundled, tmp_path):
    written = bundled.write("one line\nand another", bias=2.0, seed=3)
    assert written.texts == ["one line", "and another"] and written.stopped == [True, True]
    for line, phi, text in zip(written.lines, written.attention, written.texts):
        assert line.dtype == np.float32 and line.ndim == 2 and line.shape[1] == 3
        assert phi.shape == (len(line), len(text) + 1)
        assert set(np.unique(line[:, 2])) <= {0.0, 1.0} and line[-1, 2] == 1.0
    svg = written._repr_svg_()
    written.save(str(tmp_path / "two.svg"))
    assert svg == (tmp_path / "two.svg").read_text(encoding="utf-8") and svg.startswith("<svg")
    assert bundled.write("one line\nand another", bias=2.0, seed=3).lines[1].tobytes() == written.lines[1].tobytes()


def test_styles_prime_the_hand_by_number_file_or_object(bundled, tmp_path):
    styles = bundled.styles
    assert styles and all(isinstance(s, rnnlab.Style) for s in styles)
    by_number = bundled.write("ink", style=1, seed=2)
    path = tmp_path / "style.json"
    path.write_text(json.dumps({"text": styles[1].text, "offsets": styles[1].offsets.tolist()}))
    by_object = bundled.write("ink", style=styles[1], seed=2)
    assert by_number.lines[0].tobytes() == by_object.lines[0].tobytes()
    by_file = bundled.write("ink", style=str(path), seed=2)  # thinned by the model's point_stride: other points
    assert by_file.lines[0].shape[1] == 3 and by_file.stopped == [True]
    assert by_number.lines[0].tobytes() != bundled.write("ink", seed=2).lines[0].tobytes()
    with pytest.raises(UserError, match=r"style 9: this model has 4 built-in styles \(0 to 3\)"):
        bundled.write("ink", style=9)


def test_a_synthesis_model_called_without_its_text_says_how(bundled):
    with pytest.raises(ShapeError, match=r"model\(x, model.start\(text, lengths\)\)"):
        bundled.model(torch.zeros(1, 4, 3))
    ids = bundled.vocab.encode(list("hi")).view(1, -1)
    params, state = bundled.model(torch.zeros(1, 4, 3), bundled.model.start(ids, torch.tensor([2])))
    assert params.shape == (1, 4, 121) and state.phi.shape == (1, 4, 3)


def test_sampling_text_matches_the_command_and_greedy_is_argmax(charlm_run, capsys):
    text = charlm_run.sample("the ", length=40, temperature=0.8, seed=7)
    assert text.startswith("the ") and len(text) == 44
    assert "".join(charlm_run.stream("the ", length=40, temperature=0.8, seed=7)) == text
    capsys.readouterr()
    assert main(["sample", charlm_run.path, "--prime", "the ", "--length", "40", "--temperature", "0.8",
                 "--seed", "7"]) == 0
    assert capsys.readouterr().out == text + "\n"
    greedy, model, vocab = charlm_run.sample(length=10, temperature=0), charlm_run.model, charlm_run.vocab
    ids = default_prime(vocab).tolist()
    with torch.no_grad():
        for _ in range(10):
            logits, _ = model(torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    assert greedy == vocab.decode(ids)


def test_evaluate_is_what_the_command_prints(charlm_run, capsys):
    result = charlm_run.evaluate()
    assert set(result) == {"loss", "bits_per_char", "tokens", "data"}
    assert result["bits_per_char"] == pytest.approx(result["loss"] / np.log(2))
    capsys.readouterr()
    assert main(["evaluate", charlm_run.path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == result
    assert charlm_run.describe(result).startswith(f"{result['data']}: {result['loss']:.4f} nats/char")


def test_library_errors_name_the_parameter(charlm_run, bundled):
    for kwargs, message in ((dict(top_k=-1), "top_k must be >= 0"), (dict(top_p=0), "top_p must be in"),
                            (dict(temperature=-1), "temperature must be >= 0"), (dict(seed=-1), "seed must be in"),
                            (dict(bias=1.0), "bias is for handwriting runs"), (dict(length=-1), "length must be >= 0")):
        with pytest.raises(UserError, match=message):
            charlm_run.sample(**kwargs)
    with pytest.raises(UserError, match="a charlm run cannot write a given text"):
        charlm_run.write("hello")
    with pytest.raises(UserError, match="a synthesis run does not generate text; write a text with it"):
        bundled.sample("hello")
    with pytest.raises(UserError, match="the text has 1 character the model's vocabulary lacks: '~'"):
        bundled.write("a~b")


def test_a_prediction_run_samples_strokes(tmp_path):
    run = rnnlab.train("handwriting", str(tmp_path / "hw"), max_steps=4, hidden_size=8, num_layers=1,
                       synthetic_lines=40, batch_size=8, eval_interval=4, sample_points=0)
    drawing = run.sample(length=25, seed=1, bias=0.5)
    assert isinstance(drawing, rnnlab.Handwriting) and drawing.attention is None
    assert drawing.texts == [""] and drawing.lines[0].shape == (25, 3)
    assert run.sample(length=25, seed=1, bias=0.5).lines[0].tobytes() == drawing.lines[0].tobytes()
    with pytest.raises(UserError, match="temperature is for text runs"):
        run.sample(length=5, temperature=0.5)
    with pytest.raises(UserError, match="an unconditional sample has no window to plot"):
        drawing.save_attention(str(tmp_path / "a.png"))


def test_saved_strokes_round_trip_as_json_and_npy(bundled, tmp_path):
    written = bundled.write("ab\ncd", seed=4)
    written.save(str(tmp_path / "w.json"))
    lines = json.loads((tmp_path / "w.json").read_text())["lines"]
    assert [line["text"] for line in lines] == ["ab", "cd"] and [line["stopped"] for line in lines] == written.stopped
    for line, offsets in zip(lines, written.lines):
        np.testing.assert_allclose(np.array(line["offsets"]), offsets, atol=5e-5)
    written.save(str(tmp_path / "w.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), written.page()[0].astype(np.float32))
    with pytest.raises(UserError, match=r"saved as \.svg, \.png, \.json or \.npy"):
        written.save(str(tmp_path / "w.gif"))


def test_using_the_api_changes_nothing_the_user_owns(bundled, charlm_run, tmp_path):
    torch.set_num_threads(2)
    backend, rng = matplotlib.get_backend(), torch.get_rng_state()
    bundled.write("state", seed=1).save(str(tmp_path / "s.png"))
    charlm_run.sample(length=20, seed=1)
    rnnlab.plot(charlm_run.path, str(tmp_path / "curves.png"))
    assert torch.get_num_threads() == 2  # one thread while sampling, the caller's setting afterwards
    assert matplotlib.get_backend() == backend
    assert torch.equal(torch.get_rng_state(), rng)
    torch.set_num_threads(1)


def test_train_takes_typed_overrides_and_refuses_unknown_keys(tmp_path, charlm_run):
    assert charlm_run.config.max_steps == 30 and charlm_run.config.seed == 5
    assert charlm_run.summary["steps"] == 30 and charlm_run.metadata["step"] == "30"
    with pytest.raises(UserError, match="unknown config key hiden_size"):
        rnnlab.train("charlm", str(tmp_path / "x"), hiden_size=3)
    with pytest.raises(UserError, match="already holds a charlm run; resume it"):
        rnnlab.train("charlm", charlm_run.path, max_steps=30)
    with pytest.raises(UserError, match="unknown task 'charnn'"):
        rnnlab.train("charnn", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_presets_and_configure():
    presets = rnnlab.presets("wordlm")
    assert list(presets) == ["zaremba-small", "zaremba-medium", "zaremba-large", "medium-tied"]
    assert all(isinstance(p, rnnlab.Preset) and p.source for p in presets.values())
    config = rnnlab.configure("wordlm", "zaremba-medium", dropout=0.4)
    assert (config.hidden_size, config.dropout, config.lr) == (650, 0.4, 35.0)
    with pytest.raises(UserError, match="it is a preset of synthesis: rnnlab train synthesis --preset synthesis-cpu"):
        rnnlab.configure("handwriting", "synthesis-cpu")


def test_a_config_that_no_longer_fits_its_weights_is_caught_before_a_model_is_built(charlm_run, tmp_path, monkeypatch):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(charlm_run.path, damaged)
    header = json.loads((damaged / "config.json").read_text())
    header["config"]["hidden_size"] = 4000  # 16x the weights, were the model built
    (damaged / "config.json").write_text(json.dumps(header))
    built = []
    original = rnnlab.TASKS["charlm"].build_model
    monkeypatch.setattr(rnnlab.TASKS["charlm"], "build_model",
                        classmethod(lambda cls, c, v: built.append(torch.empty(0).device.type) or original(c, v)))
    with pytest.raises(rnnlab.CheckpointError, match=r"rnn.rnn.weight_ih_l0 is \[64, 30\] in the weights but "
                                                     r"\[16000, 30\] by the config"):
        rnnlab.load(str(damaged))
    assert built == ["meta"]  # only the shapes, on torch's meta device: nothing allocated
    header["config"]["hidden_size"] = 10**6
    (damaged / "config.json").write_text(json.dumps(header))
    with pytest.raises(rnnlab.CheckpointError, match="hidden_size must be at most 65,536, got 1,000,000"):
        rnnlab.load(str(damaged))
