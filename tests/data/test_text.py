"""Text data (``rnnlab/data/text.py``): the TBPTT stream layout of its docstring, vocabularies, the errors of
reading a file, and the built-in tiny Shakespeare as published."""

import json
import torch
import pytest

from rnnlab.data.text import TokenStream, Vocab, read_text
from rnnlab.errors import UserError


def test_stream_layout_rows_are_contiguous_and_windows_continue():
    ids = torch.arange(26)
    s = TokenStream(ids, batch_size=4, seq_len=2)
    assert s.row_len == 6
    assert s.rows.tolist() == [list(range(r * 6, r * 6 + 6)) for r in range(4)]
    x0, y0 = s.window(0)
    x1, y1 = s.window(1)
    assert x0.tolist() == [[0, 1], [6, 7], [12, 13], [18, 19]]
    assert torch.equal(y0, x0 + 1)
    # Row r of window 1 continues exactly where row r of window 0 stopped: the carried state is the right context.
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)
    assert s.full_windows == 2 and s.windows == 3  # 5 predictions per row: 2 full windows + 1 short one
    x2, y2 = s.window(2)
    assert x2.tolist() == [[4], [10], [16], [22]] and y2.tolist() == [[5], [11], [17], [23]]
    # Every prediction is made exactly once over all windows.
    assert sum(s.window(k)[1].numel() for k in range(s.windows)) == s.tokens == 20


def test_vocab_round_trip_and_unknown_characters():
    v = Vocab.from_text("hello")
    assert v.tokens == ["e", "h", "l", "o"]
    assert v.decode(v.encode("hole")) == "hole"
    assert Vocab.from_data(json.loads(v.to_json())).tokens == v.tokens
    with pytest.raises(UserError, match=r"3 characters .* 'a', 'z', 'x'"):
        v.encode("hazex", "the prime")


def test_read_text_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_text(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(UserError, match="empty"):
        read_text(str(tmp_path / "empty.txt"))
    (tmp_path / "bin").write_bytes(b"abc\x00\x01\x02")
    with pytest.raises(UserError, match="binary"):
        read_text(str(tmp_path / "bin"))
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8.*offset 3"):
        read_text(str(tmp_path / "latin1.txt"))
    with pytest.raises(UserError, match="is a folder; give the path of a UTF-8 text file"):
        read_text(str(tmp_path))


def test_builtin_tiny_shakespeare_is_the_published_file():
    import hashlib

    text = read_text("builtin:tinyshakespeare")
    assert len(text) == 1_115_394 and len(set(text)) == 65
    assert hashlib.sha256(text.encode()).hexdigest() == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
