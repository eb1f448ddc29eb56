"""Word-level corpora laid out as three splits (Penn Treebank, WikiText-2, or any folder like them).

Tokens are the whitespace-split words of each line plus one ``<eos>`` at its end, blank lines included:
the convention of Zaremba et al., the TF PTB tutorial and pytorch/examples, which gives PTB's
929,589 / 73,760 / 82,430 tokens and WikiText-2's 2,088,628 / 217,646 / 245,569.
"""

import os

from ..errors import UserError
from .text import EOS, UNK, Vocab, read_text

SPLITS = ("train", "valid", "test")
# File names per split, in the order they are looked for: PTB's, then WikiText's / pytorch/examples'.
LAYOUTS = ({s: f"ptb.{s}.txt" for s in SPLITS}, {s: f"{s}.txt" for s in SPLITS})


def split_paths(folder: str, needed: tuple = SPLITS) -> dict:
    """The split files of ``folder``: ``ptb.{train,valid,test}.txt`` or ``{train,valid,test}.txt``; each of
    ``needed`` must be there (training needs all three; scoring a trained run, only its split)."""
    if not os.path.isdir(folder):
        state = "is not a folder" if os.path.lexists(folder) else "does not exist"
        raise UserError(f"data folder {folder} {state}; give a folder with train/valid/test files, "
                        f"or a dataset name (ptb, wikitext-2)")
    for layout in LAYOUTS:
        paths = {s: os.path.join(folder, name) for s, name in layout.items()}
        present = [s for s, p in paths.items() if os.path.lexists(p)]  # reading says what is wrong with one
        missing = [s for s in needed if s not in present]
        if present and missing:
            why = "a word corpus needs all three splits" if needed == SPLITS else f"the {needed[0]} split is scored"
            raise UserError(f"data folder {folder} lacks {', '.join(os.path.basename(paths[s]) for s in missing)}; "
                            f"{why}")
        if present:
            return {s: paths[s] for s in needed}
    ptb, other = ("/".join(layout[s] for s in needed) for layout in LAYOUTS)
    raise UserError(f"data folder {folder} holds neither {ptb} nor {other}")


def tokenize(text: str) -> list:
    return [word for line in text.splitlines() for word in (*line.split(), EOS)]


def load_corpus(folder: str, vocab: Vocab | None = None, splits: tuple = SPLITS) -> tuple[Vocab, dict]:
    """Read ``splits`` of ``folder``; return the vocabulary (from the training split, in order of first
    appearance, unless given) and each split's ids. A valid/test word missing from the vocabulary maps to
    ``<unk>`` when the vocabulary has it, else it is an error that names the words."""
    assert vocab is not None or "train" in splits, "the vocabulary comes from the training split"
    paths = split_paths(folder, splits)
    words = {s: tokenize(read_text(paths[s])) for s in splits}
    vocab = vocab or Vocab(list(dict.fromkeys(words["train"])), "word")
    unknown = UNK if UNK in vocab.index else None
    # read_text has refused empty files already
    return vocab, {s: vocab.encode(words[s], paths[s], unknown=unknown) for s in splits}
