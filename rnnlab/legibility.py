"""Legibility as a measured property of a writer: a synthesis run writes texts, a recogniser reads them back,
and the character error rate of that reading is set beside the recogniser's on real lines of the same texts.

    texts ----------- writer.write(bias b) --> written lines -- reader --> CER at bias b
      \\__ the data's real lines of those texts ------------------ reader --> CER on real lines

The reading is the best path (no beam, no language model): a language model would correct what the writer
got wrong, which is what this measures. Texts longer than the writer's longest training line, or with a
character it cannot write, are left out and counted.
"""

from dataclasses import dataclass
import logging

import torch
from tqdm import tqdm

from .errors import UserError
from .files import read_utf8
from .reading import error_rates

log = logging.getLogger(__name__)

BIASES = (0.0, 0.75, 1.5, 3.0)  # the README's table: plain sampling to Graves' neatest (§5.4)
BATCH_LINES = 16  # lines written together: the batch that keeps one CPU thread busy without long padding


@dataclass(frozen=True)
class Texts:
    """The texts to write, and the real lines that write them (offsets ``(N, 3)``), or None."""

    texts: list
    real: list | None
    source: str


def check_writer(writer) -> None:
    if writer.task.generates != "handwriting":
        raise UserError(f"--legibility measures a synthesis run's writing; {writer.name} is a {writer.task.name} run")


def check_reader(reader) -> None:
    if reader.task.name != "recognize":
        raise UserError(f"--reader must be a recognize run; {reader.name} is a {reader.task.name} run")


def validation_texts(reader, data: str | None) -> Texts:
    """The reader's validation lines, every point of them (its split of ``data`` by form, or of the data it
    was trained on: IAM-OnDB's is the writer's too, at the same ``valid_fraction``)."""
    from .tasks.pen import scored_lines

    check_reader(reader)
    lines, source = scored_lines(reader.task, reader, data, "valid")
    return Texts([text for text, _ in lines], [offsets for _, offsets in lines], f"{source} (validation)")


def file_texts(path: str) -> Texts:
    """The non-blank lines of a UTF-8 text file."""
    lines = read_utf8(path, "--texts file", "give a UTF-8 text file, one line of text per line", "texts.txt")
    texts = [line.strip() for line in lines.splitlines() if line.strip()]
    if not texts:
        raise UserError(f"--texts {path} holds no text; give a file with one line of text per line")
    return Texts(texts, None, path)


def measure(writer, reader, texts: Texts, biases=BIASES, seed: int = 0, limit: int = 0) -> dict:
    """The reader's error rates on ``texts`` written by ``writer`` at each bias, and on the real lines."""
    check_writer(writer)
    check_reader(reader)
    writable = set(writer.vocab.tokens)
    longest = writer.config.max_text_length
    kept = [i for i, text in enumerate(texts.texts) if set(text) <= writable and (not longest or len(text) <= longest)]
    if len(kept) < len(texts.texts):
        log.info("left out %d of %d texts: longer than %d characters or with characters %s cannot write",
                 len(texts.texts) - len(kept), len(texts.texts), longest, writer.name)
    kept = kept[:limit] if limit else kept
    if not kept:
        raise UserError(f"none of the {len(texts.texts)} texts can be written by {writer.name}")
    references = [texts.texts[i] for i in kept]
    result = {"writer": writer.name, "reader": reader.name, "texts": texts.source, "lines": len(kept),
              "decoder": "best path", "written": []}
    if texts.real is not None:
        read = reader.read_lines([texts.real[i] for i in kept], beam=0, lm_weight=0.0)
        result["real"] = error_rates(references, read)
    generator = torch.Generator().manual_seed(seed)
    for bias in biases:
        written = []
        for start in tqdm(range(0, len(references), BATCH_LINES), desc=f"writing at bias {bias:g}", unit="batch",
                          leave=False):
            batch = references[start : start + BATCH_LINES]
            written += writer.write("\n".join(batch), bias=bias, seed=generator).lines
        read = reader.read_lines(written, beam=0, lm_weight=0.0)
        result["written"].append({"bias": bias, **error_rates(references, read)})
    return result


def describe(result: dict) -> str:
    """A result of :func:`measure` as a small table."""
    rows = [f"{result['reader']} reading {result['lines']:,} texts of {result['texts']} ({result['decoder']}):",
            "  lines                          CER       WER"]
    if "real" in result:
        rows.append(f"  {'the real lines':<25}{100 * result['real']['cer']:6.2f} %  {100 * result['real']['wer']:6.2f} %")
    for entry in result["written"]:
        label = f"written at bias {entry['bias']:g}"
        rows.append(f"  {label:<25}{100 * entry['cer']:6.2f} %  {100 * entry['wer']:6.2f} %")
    return "\n".join(rows) + f"\n  (written by {result['writer']})"
