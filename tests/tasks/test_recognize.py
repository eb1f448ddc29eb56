"""rnnlab.tasks.recognize: a small BiLSTM learns to read synthetic Hershey lines it never saw; the run reads
strokes files and handwriting through the API and ``rnnlab read``; resume; legibility; the bad inputs."""

import json
import math

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab import legibility
from rnnlab.cli import main
from rnnlab.data import hershey
from rnnlab.errors import UserError
from rnnlab.reading import error_rates

from conftest import check_resume_is_bit_identical, fails

# Measured on this project's VM (one thread): these settings leave CTC's all-blank plateau after about 450
# steps and read held-out lines at 0.2 % CER by 750, in about 45 s.
READER = dict(synthetic_lines=600, hidden_size=48, num_layers=2, conv_channels=32, batch_size=16, lr=1e-2,
              lr_schedule="constant", precision="fp32", dropout=0.0, lm_order=4, max_steps=750,
              eval_interval=250, log_interval=50, seed=1337, device="cpu")


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    return rnnlab.train("recognize", str(tmp_path_factory.mktemp("reader") / "run"), **READER)


def test_a_small_bilstm_learns_to_read_hershey_lines_it_never_saw(reader):
    valid = [r for r in reader.folder.read_metrics()[0] if r["split"] == "valid"]
    assert valid[0]["cer"] > 0.9  # step 250: still on the plateau, reading (almost) nothing
    assert valid[-1]["cer"] < 0.05 and valid[-1]["lines"] == 60
    scored = reader.evaluate()
    assert scored["best_path_cer"] == pytest.approx(valid[-1]["cer"])  # the run's best weights: its last
    assert scored["cer"] < 0.05 and scored["wer"] < 0.2 and scored["unreachable"] == 0
    assert scored["decoder"] == "beam 16, language model x 0.5"
    # lines of a seed it never trained on, each in a random style
    lines = hershey.random_lines(20, np.random.default_rng(99))
    texts = reader.read_lines([line.offsets for line in lines], beam=0)
    assert error_rates([line.text for line in lines], texts)["cer"] < 0.05


def test_read_takes_handwriting_arrays_and_strokes_files(reader, tmp_path):
    lines = hershey.random_lines(3, np.random.default_rng(5))
    texts = reader.read_lines([line.offsets for line in lines])
    drawn = rnnlab.Handwriting([l.text for l in lines], [l.offsets for l in lines], [True] * 3)
    assert reader.read(drawn) == "\n".join(texts)
    assert reader.read(lines[0].offsets) == texts[0]
    drawn.save(str(tmp_path / "x.json"))
    assert reader.read(str(tmp_path / "x.json")) == "\n".join(texts)
    style = tmp_path / "style.json"
    style.write_text(json.dumps({"text": "ignored", "offsets": lines[1].offsets.tolist()}))
    assert main(["read", str(style), "--model", reader.path]) == 0
    screen = np.cumsum(lines[1].offsets[:, :2] * [3, -3], axis=0)  # pixels, y down
    assert reader.read(rnnlab.ink.from_screen(np.c_[screen, lines[1].offsets[:, 2]])) == texts[1]


def test_rnnlab_read_prints_each_lines_text(reader, tmp_path, capsys):
    lines = hershey.random_lines(2, np.random.default_rng(6))
    rnnlab.Handwriting([l.text for l in lines], [l.offsets for l in lines], [True] * 2).save(str(tmp_path / "x.json"))
    capsys.readouterr()
    assert main(["read", str(tmp_path / "x.json"), "--model", reader.path, "--beam", "0"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == reader.read_lines([l.offsets for l in lines], beam=0)
    assert error_rates([l.text for l in lines], printed)["cer"] < 0.1


def test_the_language_model_is_the_training_transcriptions(reader):
    lm = reader.model.language_model()
    assert lm is not None and lm.order == 4 and reader.config.lm_entries == len(lm.grams)
    total = sum(count for gram, count in lm.grams.items())
    assert total == 540 * 0 + sum(len(text) for text in _training_texts(reader))  # one 4-gram per character


def _training_texts(run):
    from rnnlab.tasks.pen import load_lines

    return [text for text, _ in load_lines(run.config)[0]]


def test_bad_reads_are_one_line(reader, tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"offsets": [[1, 2]]}')
    (tmp_path / "nan.json").write_text('{"offsets": [[0, 0, 0], [NaN, 1, 1]]}')
    fails(capsys, ["read", str(tmp_path / "missing.json"), "--model", reader.path], "missing.json")
    fails(capsys, ["read", str(tmp_path / "bad.json"), "--model", reader.path], "must hold")
    fails(capsys, ["read", str(tmp_path / "nan.json"), "--model", reader.path], "NaN is not a JSON number")
    lines = hershey.random_lines(1, np.random.default_rng(1))
    rnnlab.Handwriting(["x"], [lines[0].offsets], [True]).save(str(tmp_path / "ok.json"))
    fails(capsys, ["read", str(tmp_path / "ok.json"), "--model", reader.path, "--beam", "-1"], "beam")
    fails(capsys, ["read", str(tmp_path / "ok.json"), "--model", reader.path, "--lm-weight", "1000"], "lm_weight")
    fails(capsys, ["read", str(tmp_path / "ok.json"), "--model", "builtin:handwriting"],
          "does not read handwriting", "rnnlab train recognize")


def test_resume_is_bit_identical(tmp_path):
    check_resume_is_bit_identical("recognize", tmp_path, **dict(READER, synthetic_lines=40, hidden_size=8, conv_channels=4))


def test_legibility_reads_back_what_a_writer_wrote(reader, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("the quick fox\n\nhello world\nQ[\n")  # "[" cannot be written: left out
    writer = rnnlab.load("builtin:handwriting")
    result = legibility.measure(writer, reader, legibility.file_texts(str(texts)), biases=(3.0,))
    assert result["lines"] == 2 and "real" not in result and result["decoder"] == "best path"
    again = legibility.measure(writer, reader, legibility.file_texts(str(texts)), biases=(3.0,))
    assert again == result  # the same seed writes the same lines
    # the error rates are the reader's on exactly what the writer wrote with that seed
    written = writer.write("the quick fox\nhello world", bias=3.0, seed=torch.Generator().manual_seed(0))
    expected = error_rates(["the quick fox", "hello world"], reader.read_lines(written.lines, beam=0, lm_weight=0))
    assert result["written"] == [{"bias": 3.0, **expected}]
    capsys.readouterr()
    assert main(["evaluate", "builtin:handwriting", "--legibility", "--texts", str(texts), "--reader", reader.path,
                 "--bias", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == result
    assert main(["evaluate", "builtin:handwriting", "--legibility", "--texts", str(texts), "--reader", reader.path,
                 "--bias", "3", "1"]) == 0
    table = capsys.readouterr().out
    assert "written at bias 3 " in table and "written at bias 1 " in table and "CER" in table


def test_legibility_beside_the_readers_own_validation_lines(reader):
    writer = rnnlab.load("builtin:handwriting")
    texts = legibility.validation_texts(reader, None)  # the reader's synthetic validation lines
    result = legibility.measure(writer, reader, texts, biases=(3.0,))
    assert result["lines"] == 60 == len(texts.texts)  # every one can be written
    best_path = reader.evaluate()
    assert result["real"] == {"cer": best_path["best_path_cer"], "wer": best_path["best_path_wer"]}
    assert result["written"][0]["cer"] > result["real"]["cer"]  # IAM-OnDB's hand is not the Hershey font it knows


def test_bad_legibility_requests_are_one_line(reader, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("hello\n")
    fails(capsys, ["evaluate", reader.path, "--texts", str(texts)], "--texts is for --legibility")
    fails(capsys, ["evaluate", reader.path, "--legibility", "--texts", str(texts)], "synthesis run")
    fails(capsys, ["evaluate", "builtin:handwriting", "--legibility", "--texts", str(texts), "--reader",
                   "builtin:handwriting"], "--reader must be a recognize run")
    fails(capsys, ["evaluate", "builtin:handwriting", "--legibility", "--texts", str(texts), "--reader", reader.path,
                   "--bias", "-1"], "--bias")
    (tmp_path / "empty.txt").write_text("\n \n")
    fails(capsys, ["evaluate", "builtin:handwriting", "--legibility", "--texts", str(tmp_path / "empty.txt"),
                   "--reader", reader.path], "holds no text")
    fails(capsys, ["evaluate", "builtin:handwriting", "--legibility", "--reader", "builtin:recognizer"],
          "ships without its data")
    with pytest.raises(UserError, match="--legibility measures a synthesis run"):
        legibility.measure(reader, reader, legibility.file_texts(str(texts)))


def test_lines_too_short_for_their_text_are_skipped_in_training_and_counted_in_validation(caplog):
    from rnnlab.reading import needed_frames
    from rnnlab.tasks.recognize import Config, Recognize

    keys = dict(synthetic_lines=40, hidden_size=4, num_layers=1, conv_channels=2, batch_size=4, lm_order=2)
    # Hershey lines take about 30 points a character; 40 points a frame leave most lines short of frames
    with caplog.at_level("INFO"):
        task = Recognize(Config(**keys, frame_stride=40))
    assert "training lines: too few points for their text at frame_stride 40" in caplog.text
    assert all(math.ceil(len(f) / 40) >= needed_frames(text) for text, f in task.train)
    model = Recognize.build_model(task.config, task.vocab)
    scored = task.evaluate(model)
    short = sum(math.ceil(len(f) / 40) < needed_frames(text) for text, f in task.valid)
    assert short > 0 and scored["unreachable"] == short and scored["lines"] == len(task.valid) == 4
    assert math.isfinite(scored["loss"])
    with pytest.raises(UserError, match="none of the 36 training lines has enough points"):
        Recognize(Config(**keys, frame_stride=10_000))
