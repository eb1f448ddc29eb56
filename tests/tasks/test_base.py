"""tasks/base.py: every task implements the whole protocol, so generic code can call any member of any task:
presets with sources, a model called as its task documents, batches, a finite loss, evaluation, a result
that prints, and generation that works or refuses in one line naming what the run can do."""

import math
from types import SimpleNamespace

import pytest
import torch

from rnnlab.errors import UserError
from rnnlab.tasks import TASKS
from rnnlab.tasks.base import GENERATES, Preset, Task

from conftest import fails, write_corpus

TINY_KEYS = {
    "charlm": dict(hidden_size=8, num_layers=1, seq_len=8, batch_size=4, preview_length=0),
    "wordlm": dict(hidden_size=8, embedding_size=8, num_layers=1, seq_len=4, batch_size=2, eval_batch_size=2,
                   preview_length=0),
    "classify": dict(hidden_size=8, train_size=40, valid_size=10, seq_len=6),
    "handwriting": dict(hidden_size=8, num_layers=1, synthetic_lines=20, batch_size=4, sample_points=0),
    "synthesis": dict(hidden_size=8, num_layers=2, synthetic_lines=20, batch_size=4, sample_points=0),
    "recognize": dict(hidden_size=8, num_layers=2, conv_channels=4, synthetic_lines=20, batch_size=4, lm_order=3,
                      precision="fp32"),
    "seq2seq": dict(hidden_size=8, embedding_size=4, batch_size=4, valid_pairs=10, max_length=5),
}


@pytest.fixture
def data(tmp_path, text_file):
    words = "the cat sat on the mat\nthe dog sat on the log\n" * 20
    return {"charlm": text_file, "wordlm": write_corpus(tmp_path / "corpus", words, words, words)}


def _config(name, data):
    task = TASKS[name]
    config = task.presets[task.default_preset].config
    from rnnlab.config import override

    return override(config, {**TINY_KEYS[name], **({"data": data[name]} if name in data else {})}, "test")


def test_every_task_implements_every_member():
    assert sorted(TASKS) == ["charlm", "classify", "handwriting", "recognize", "seq2seq", "synthesis", "wordlm"]
    for name, task in TASKS.items():
        assert issubclass(task, Task) and not task.__abstractmethods__, name
        assert task.name == name and task.generates in GENERATES and "state" in task.model_signature
        assert task.default_preset in task.presets
        for preset in task.presets.values():
            assert isinstance(preset, Preset) and preset.source.strip()
            assert isinstance(preset.config, task.Config)
            preset.config.validate()


@pytest.mark.parametrize("name", sorted(TINY_KEYS))
def test_a_task_trains_evaluates_describes_and_generates_through_the_protocol(name, data):
    spec = TASKS[name]
    torch.manual_seed(0)
    task = spec(_config(name, data))
    model = spec.build_model(task.config, task.vocab)
    assert task.steps_per_epoch >= 1
    batch, reset = task.train_batch(0)
    assert reset is True  # step 0 starts every kind of task afresh
    loss, state, tokens = task.loss(model, batch, None)
    assert loss.dim() == 0 and math.isfinite(loss.item()) and tokens > 0
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    result = task.evaluate(model)
    assert math.isfinite(result["loss"])
    assert isinstance(spec.loss_unit(task.vocab), str) and spec.loss_unit(task.vocab)
    assert task.preview(model, 1, None) == ""  # nothing to draw without a folder or with previews off
    run = SimpleNamespace(model=model, config=task.config, vocab=task.vocab, name="a run", builtin=False)
    scored = spec.evaluate_run(run)
    if name == "wordlm":  # one row through the whole split, where training validates on eval_batch_size rows
        assert scored["loss"] == pytest.approx(result["loss"], rel=0.1)
    else:  # the very split training validates on
        assert scored["loss"] == pytest.approx(result["loss"], rel=1e-6)
    assert spec.describe(scored, task.vocab).strip()

    generator = torch.Generator().manual_seed(0)
    attempts = {
        "text": lambda: "".join(spec.sample_text(model, task.config, task.vocab, "", 5, 1.0, 0, 1.0, generator)),
        "strokes": lambda: spec.sample_strokes(model, task.config, 5, 0.0, generator),
        "handwriting": lambda: list(spec.write_stream(model, task.config, task.vocab, ["ab"], 0.0, generator))[-1],
        "translation": lambda: spec.translate(model, task.config, task.vocab, ["ab"], 2, 0.0),
    }
    for kind, attempt in attempts.items():
        if kind == spec.generates:
            assert attempt() is not None
        else:
            with pytest.raises(UserError, match=f"a {name} run (does not|cannot)"):
                attempt()


def test_the_tasks_of_whole_pen_lines_refuse_the_compile_key_in_one_line(tmp_path, capsys):
    """torch.compile traces the recurrent layers a point at a time, so a line's first step would compile for
    minutes (tasks/base.py, LONG_LINES): those tasks refuse compile=true naming the way out, before anything
    is written. (The suite never compiles, so the other tasks' compiled steps are not run here.)"""
    refused = sorted(name for name, task in TASKS.items() if task.compile_refused)
    assert refused == ["handwriting", "recognize", "synthesis"]
    for name in refused:
        out = tmp_path / name
        keys = [f"{key}={value}" for key, value in TINY_KEYS[name].items()]
        fails(capsys, ["train", name, "--set", *keys, "compile=true", "--max-steps", "1", "--out", str(out),
                       "--device", "cpu"], f"compile=true does not suit the {name} task", "one point at a time",
              "--set compile=false")
        assert not out.exists()
