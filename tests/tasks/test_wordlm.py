"""The word LM task (``rnnlab/tasks/wordlm.py``): Zaremba's presets and their per-token units (the very same
SGD update as the TF tutorial), evaluation equal to the tutorial's token-by-token test, learning on a PTB
slice, and its command-line paths: train, sample and evaluate a toy corpus, a dataset name that is not a
word corpus, a corpus the run's vocabulary does not cover.

Reading corpora (counts, layouts, bad folders) is in tests/data/test_words.py.
"""

import json
import math
import os

import pytest
import torch
from torch.nn import functional as F

import rnnlab
from rnnlab.cli import main
from rnnlab.config import override
from rnnlab.data.text import Vocab
from rnnlab.data.words import load_corpus
from rnnlab.errors import UserError
from rnnlab.folder import RunFolder
from rnnlab.optim import build_optimizer
from rnnlab.tasks.lm import eval_stream, evaluate_stream
from rnnlab.tasks.wordlm import PRESETS, Config, WordLM
from rnnlab.loop import train, train_step

from conftest import fails, shared_data, write_corpus

SENTENCES = ["the company said it expects profits to rise", "the market fell as investors sold shares",
             "the bank said profits rose in the quarter", "investors expect the market to rise"]


def toy_corpus(folder):
    lines = [SENTENCES[i % 4] + (" <unk>" if i % 7 == 0 else "") for i in range(400)]
    return write_corpus(folder, "\n".join(lines) + "\n", "\n".join(lines[:60]) + "\n", "\n".join(lines[60:120]) + "\n")


def test_presets_are_zaremba_in_per_token_units():
    table = {  # TF tutorial: init_scale, max_grad_norm, num_steps, hidden, max_epoch, max_max_epoch, keep_prob, lr_decay
        "zaremba-small": (0.1, 5, 20, 200, 4, 13, 1.0, 0.5),
        "zaremba-medium": (0.05, 5, 35, 650, 6, 39, 0.5, 0.8),
        "zaremba-large": (0.04, 10, 35, 1500, 14, 55, 0.35, 1 / 1.15),
    }
    for name, (scale, norm, steps, hidden, max_epoch, epochs, keep, decay) in table.items():
        c = PRESETS[name].config
        assert (c.init, c.init_scale, c.forget_bias, c.num_layers, c.batch_size) == ("uniform", scale, 0.0, 2, 20)
        assert (c.seq_len, c.hidden_size, c.embedding_size, c.epochs, c.decay_after) == (steps, hidden, hidden, epochs, max_epoch)
        assert c.dropout == pytest.approx(1 - keep) and c.lr_decay == pytest.approx(decay)
        assert (c.optimizer, c.lr_schedule) == ("sgd", "step")
        assert c.lr == pytest.approx(1.0 * steps) and c.clip == pytest.approx(norm / steps)


@pytest.mark.parametrize("clipped", [False, True])
def test_per_token_units_give_the_tutorials_sgd_update(clipped):
    """SGD lr 1.0 on the loss summed over time and averaged over the batch, clipped at max_grad_norm,
    equals rnnlab's per-token mean with lr T and clip max_grad_norm / T."""
    torch.manual_seed(0)
    T, B, V, max_norm = 6, 3, 13, (0.05 if clipped else 1e9)
    config = override(Config(), {"hidden_size": 8, "embedding_size": 8, "num_layers": 2, "seq_len": T,
                                        "batch_size": B, "optimizer": "sgd", "lr": 1.0 * T, "clip": max_norm / T,
                                        "init": "uniform", "init_scale": 0.1}, "test")
    model = WordLM.build_model(config, Vocab([str(i) for i in range(V)], "word"))
    reference = WordLM.build_model(config, Vocab([str(i) for i in range(V)], "word"))
    reference.load_state_dict(model.state_dict())
    x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))

    logits, _ = reference(x)
    loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction="sum") / B  # TF: sum over time, mean over batch
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm)
    assert (norm > max_norm) == clipped
    with torch.no_grad():
        for p in reference.parameters():
            p -= 1.0 * p.grad

    class Task:
        def loss(self, model, batch, state):
            logits, state = model(batch[0], state)
            return F.cross_entropy(logits.reshape(-1, V), batch[1].reshape(-1)), state, batch[1].numel()

    params = list(model.parameters())
    train_step(model, Task(), (x, y), None, build_optimizer(params, config), params, config)
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


def test_windowed_evaluation_equals_the_tutorials_token_by_token_test():
    """One row, state carried through the whole text, windows of seq_len == batch 1 x 1 step (the TF tutorial's test)."""
    vocab, ids = load_corpus(shared_data("ptb"))
    text = ids["test"][:1200]
    config = override(Config(), {"hidden_size": 32, "embedding_size": 32, "seq_len": 35, "cell": "lstm",
                                        "init": "uniform", "init_scale": 0.1, "dropout": 0.5}, "test")
    torch.manual_seed(0)
    model = WordLM.build_model(config, vocab).eval()
    windowed = evaluate_stream(model, eval_stream(text, config, rows=1))
    total, state = 0.0, None
    with torch.no_grad():
        for t in range(text.numel() - 1):
            logits, state = model(text[t : t + 1].view(1, 1), state)
            total -= torch.log_softmax(logits[0, 0].double(), -1)[text[t + 1]].item()
    assert windowed["tokens"] == text.numel() - 1
    assert windowed["loss"] == pytest.approx(total / (text.numel() - 1), rel=1e-4)


def test_a_small_model_learns_on_a_ptb_slice(tmp_path):
    ptb = shared_data("ptb")
    lines = {s: open(os.path.join(ptb, f"ptb.{s}.txt")).readlines() for s in ("train", "valid", "test")}
    folder = write_corpus(tmp_path / "slice", "".join(lines["train"][:3000]), "".join(lines["valid"][:200]),
                          "".join(lines["test"][:200]), names=("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"))
    config = override(Config(), {"data": folder, "hidden_size": 64, "embedding_size": 64, "num_layers": 1,
                                        "seq_len": 20, "batch_size": 20, "optimizer": "adam", "lr": 3e-3, "clip": 1.0,
                                        "max_steps": 150, "eval_interval": 150, "preview_length": 0,
                                        "device": "cpu"}, "test")
    torch.manual_seed(0)
    task = WordLM(config)
    model = WordLM.build_model(config, task.vocab)
    before = task.evaluate(model)["perplexity"]
    folder = RunFolder(str(tmp_path / "run"))
    with folder.training():
        summary = train(model, task, config, folder)
    after = math.exp(summary["best_valid_loss"])
    # Untrained: about the vocabulary size; a unigram model of PTB is about 700; 150 steps go well below both.
    assert before > 0.8 * len(task.vocab) and after < 450, (before, after)


def test_cli_train_sample_evaluate_on_a_toy_corpus(tmp_path, capsys):
    folder = toy_corpus(tmp_path / "corpus")
    out = str(tmp_path / "run")
    assert main(["train", "wordlm", "--data", folder, "--out", out, "--max-steps", "60", "--set",
                 "hidden_size=24", "embedding_size=24", "seq_len=10", "batch_size=8", "optimizer=adam", "lr=0.01",
                 "clip=1", "eval_interval=30", "tied=true"]) == 0
    capsys.readouterr()
    assert main(["sample", out, "--prime", "the company said", "--length", "12", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the company said ") and text.endswith("\n")
    generated = text[len("the company said "):-1]  # each word prints with a space after it, <eos> as a newline
    assert len(generated.split()) + generated.count("\n") == 12
    assert main(["evaluate", out, "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["tokens"] == 60 * 1 + sum(
        len(SENTENCES[i % 4].split()) + (i % 7 == 0) for i in range(60, 120)) - 1
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"])) and result["perplexity"] < 10
    run = rnnlab.load(out)
    assert run.model.decoder.weight is run.model.embedding.weight  # tied survives the round trip

    assert main(["sample", out, "--prime", "the zebra said quagga"]) == 2
    assert "'zebra', 'quagga'" in capsys.readouterr().err


def test_a_dataset_name_that_is_not_a_word_corpus_points_to_charlm(tmp_path, capsys):
    fails(capsys, ["train", "wordlm", "--data", "tinyshakespeare", "--out", str(tmp_path / "out")],
          "tinyshakespeare is a text for a character model", "rnnlab train charlm")
    assert not os.path.exists(tmp_path / "out")


def test_evaluating_a_corpus_with_another_vocabulary_is_an_error(tmp_path, capsys):
    folder = write_corpus(tmp_path / "c", "a b c\n" * 200, "a b\n" * 20, "c a\n" * 20)
    out = str(tmp_path / "run")
    assert main(["train", "wordlm", "--data", folder, "--out", out, "--max-steps", "5", "--set", "hidden_size=8",
                 "embedding_size=8", "seq_len=5", "batch_size=4", "eval_interval=5"]) == 0
    other = write_corpus(tmp_path / "other", "a b c\n", "a b\n", "x y\n")
    capsys.readouterr()
    assert main(["evaluate", out, "--data", other, "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "'x', 'y'" in err and len(err.strip().splitlines()) == 1

    # Scoring reads only the split it scores: a folder of just test.txt scores as the whole corpus does.
    only_test = tmp_path / "only-test"
    only_test.mkdir()
    (only_test / "test.txt").write_text("c a\n" * 20)
    scores = []
    for data in (folder, str(only_test)):
        assert main(["evaluate", out, "--data", data, "--split", "test", "--json"]) == 0
        scores.append(json.loads(capsys.readouterr().out)["loss"])
    assert scores[0] == scores[1]
    assert main(["evaluate", out, "--data", str(only_test), "--split", "valid"]) == 2
    assert "lacks valid.txt; the valid split is scored" in capsys.readouterr().err


def test_split_all_is_refused_for_a_word_model():
    with pytest.raises(UserError, match="--split all: a wordlm run scores its corpus' valid or test split"):
        WordLM.evaluate_run(None, split="all")
