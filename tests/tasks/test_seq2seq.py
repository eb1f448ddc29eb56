"""rnnlab.tasks.seq2seq: a small encoder-decoder learns to reverse; pairs from a file, split by source, with
BLEU against every reference; translate and the attention plot; resume; the bad inputs."""

import json

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.data import pairs as pairdata

from conftest import check_resume_is_bit_identical, fails

REVERSE = dict(max_length=8, hidden_size=64, embedding_size=32, batch_size=64, lr=3e-3, max_steps=400,
               eval_interval=200, valid_pairs=300, seed=3, device="cpu")


@pytest.fixture(scope="module")
def reverser(tmp_path_factory):
    return rnnlab.train("seq2seq", str(tmp_path_factory.mktemp("s2s") / "reverse"), **REVERSE)


def test_a_small_encoder_decoder_learns_to_reverse(reverser):
    valid = [r for r in reverser.folder.read_metrics()[0] if r["split"] == "valid"]
    assert valid[-1]["sequence_accuracy"] >= 0.95 and valid[-1]["token_accuracy"] >= 0.98
    assert "accuracy_by_length" not in valid[-1]  # the evaluation's, not the training log's
    assert reverser.translate("abcdefg\nhello") == "gfedcba\nolleh"
    scored = reverser.evaluate()
    assert scored["sequence_accuracy"] == pytest.approx(valid[-1]["sequence_accuracy"])
    by_length = scored["accuracy_by_length"]
    assert sorted(by_length) == list(range(1, 9))  # the validation set's lengths, 1 to max_length
    pairs = pairdata.toy_pairs("reverse", 300, np.random.default_rng([3, 1]), max_length=8)
    sources = {p.source for p in pairs}
    counts = {n: sum(len(s) == n for s in sources) for n in by_length}
    assert sum(by_length[n] * counts[n] for n in by_length) / len(sources) == pytest.approx(scored["sequence_accuracy"])
    assert rnnlab.load(reverser.path).translate("tqs", beam=4) == "sqt"


def test_a_toy_test_split_is_10000_pairs_of_their_own(reverser, capsys):
    capsys.readouterr()
    assert main(["evaluate", reverser.path, "--split", "test", "--json"]) == 0
    tested = json.loads(capsys.readouterr().out)
    assert tested["pairs"] == 10_000 and tested["data"] == "toy reverse (test)"
    assert tested["sequence_accuracy"] >= 0.9  # the same skill on pairs it was never validated on
    test = pairdata.toy_pairs("reverse", 10_000, np.random.default_rng([3, 2]), max_length=8)
    valid = pairdata.toy_pairs("reverse", 300, np.random.default_rng([3, 1]), max_length=8)
    assert tested["sources"] == len({p.source for p in test})
    assert [p.source for p in test[:300]] != [p.source for p in valid]  # another stream of the seed


def test_translate_reads_stdin_and_plots_the_attention(reverser, tmp_path, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("abc\n\nbcd\n"))
    capsys.readouterr()
    assert main(["translate", reverser.path]) == 0
    assert capsys.readouterr().out.splitlines() == ["cba", "dcb"]
    out = tmp_path / "align.png"
    assert main(["plot", reverser.path, "--attention", "abcdef", "-o", str(out)]) == 0
    assert out.stat().st_size > 1000
    (text, found), = reverser.translations("abcdef")
    assert text == "fedcba" and found.attention.shape == (7, 7)  # 6 letters and <eos>, each way
    torch.testing.assert_close(found.attention.sum(-1), torch.ones(7))
    assert int(found.attention[0].argmax()) == 5  # the first output letter looks at the last source letter


def test_pairs_from_a_file_split_by_source_with_bleu(tmp_path):
    lines = []
    for i in range(60):
        words = ["red", "green", "blue", "big", "small", "cat", "dog"]
        src = f"{words[i % 7]} {words[(i // 7) % 7]} {words[(i // 49) % 7]} ."
        lines.append(f"{src}\t{src.upper()}\tCC-BY attribution #{i}")
        lines.append(f"{src}\t{src.upper()} !\tCC-BY attribution #{i}b")  # a second reference
    data = tmp_path / "pairs.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = rnnlab.train("seq2seq", str(tmp_path / "run"), data=str(data), level="word", hidden_size=32,
                       embedding_size=16, batch_size=16, max_steps=200, eval_interval=100, valid_fraction=0.3, lr=3e-3,
                       device="cpu", seed=1)
    scored = run.evaluate()
    assert 0.0 <= scored["bleu"] <= 100.0 and scored["pairs"] == 2 * scored["sources"]
    train, valid = pairdata.split_by_source(pairdata.read_pairs(str(data)), 0.3, 1)
    assert scored["pairs"] == len(valid) and not {p.source for p in train} & {p.source for p in valid}
    assert "CC-BY" not in run.vocab.tokens and "attribution" not in run.vocab.tokens  # never read as text
    check_parts_add_up(run, valid)


def check_parts_add_up(run, pairs):
    """A job of several processes scores each part of the sources and adds up the parts' sums: for three
    uneven parts that gives exactly one process's figures, BLEU and accuracy by length included."""
    from rnnlab.tasks import seq2seq

    config = run.config
    whole = seq2seq.score(run.model, config, run.vocab, pairs, 2, 0.6, by_length=True)
    references = {}
    for p in pairs:
        references.setdefault(p.source, []).append(p.target)
    sources = list(references)
    longest = max(len(pairdata.tokenize(s, "word")) for s in sources)
    cuts = [0, 1, len(sources) // 2, len(sources)]  # a part of one source, and two larger ones
    parts = [seq2seq.part_sums(run.model, config, run.vocab, {s: references[s] for s in sources[a:b]}, 2, 0.6,
                               longest) for a, b in zip(cuts, cuts[1:])]
    added = {name: sum(part[name] for part in parts) for name in parts[0]}
    pooled = seq2seq.summary(added, config, len(sources), len(pairs), by_length=True)
    assert pooled.pop("accuracy_by_length") == pytest.approx(whole.pop("accuracy_by_length"))
    assert pooled == pytest.approx(whole)
    assert 0 < whole["bleu"] < 100
    # and BLEU from a part alone is not the whole's: the check above can fail
    alone = seq2seq.summary(parts[2], config, len(sources), len(pairs), by_length=False)["bleu"]
    assert alone != pytest.approx(whole["bleu"])


def test_resume_is_bit_identical(tmp_path):
    check_resume_is_bit_identical("seq2seq", tmp_path, **dict(REVERSE, hidden_size=8, embedding_size=4, valid_pairs=10))


def test_bad_inputs_are_one_line(reverser, tmp_path, capsys):
    fails(capsys, ["translate", reverser.path, "  \n"], "empty")
    fails(capsys, ["translate", reverser.path, "abc", "--beam", "0"], "beam must be between 1")
    fails(capsys, ["translate", reverser.path, "abc", "--length-penalty", "-1"], "length_penalty")
    fails(capsys, ["translate", "builtin:handwriting", "abc"], "does not translate", "rnnlab train seq2seq")
    bad = tmp_path / "bad.tsv"
    bad.write_text("one\tun\ntwo deux\n", encoding="utf-8")
    fails(capsys, ["train", "seq2seq", "--data", str(bad), "--out", str(tmp_path / "x")], "line 2")
    fails(capsys, ["evaluate", reverser.path, "--data", str(bad), "--split", "test"], "--split must be valid",
          "pairs from a file")
    fails(capsys, ["train", "seq2seq", "--out", str(tmp_path / "y"), "--set", "toy=divide"], "toy")
    fails(capsys, ["train", "seq2seq", "--out", str(tmp_path / "z"), "--set", "attention=dot"], "attention")
    fails(capsys, ["train", "seq2seq", "--preset", "eng-fra", "--out", str(tmp_path / "w")], "give --data FILE")
    fails(capsys, ["plot", "builtin:handwriting", "--attention", "abc", "-o", str(tmp_path / "a.png")],
          "does not translate")
    no_attention = rnnlab.train("seq2seq", str(tmp_path / "none"), **dict(REVERSE, max_steps=2, eval_interval=2,
                                hidden_size=8, embedding_size=4, valid_pairs=4, attention="none"))
    fails(capsys, ["plot", no_attention.path, "--attention", "abc", "-o", str(tmp_path / "b.png")],
          "without attention")
    assert json.loads((tmp_path / "none" / "config.json").read_text())["config"]["attention"] == "none"


def test_bleu_of_tokens_does_not_warn_about_tokenised_text(capsys, caplog):
    from rnnlab.tasks.seq2seq import bleu

    assert bleu(["the cat sat on the mat ."] * 120, [["the cat sat on the mat ."]] * 120) == pytest.approx(100.0)
    assert "detokenize" not in capsys.readouterr().err + caplog.text  # sacrebleu's warning, by default


def test_bleu_counts_every_reference_of_a_source():
    import sacrebleu

    from rnnlab.tasks.seq2seq import bleu

    hypotheses = ["the cat sat on the mat", "a dog ran in the park today"]
    references = [["the cat sat on the mat", "a cat sat on a mat"], ["the dog ran in the park today"]]
    expected = sacrebleu.corpus_bleu(hypotheses, [[r[0] for r in references], ["a cat sat on a mat", None]],
                                     tokenize="none").score
    assert bleu(hypotheses, references) == pytest.approx(expected)
    one = bleu(hypotheses, [[r[0]] for r in references])
    assert bleu(hypotheses, references) >= one  # a second reference can only help
    assert bleu(["x y z w"], [["x y z w"]]) == pytest.approx(100.0)
