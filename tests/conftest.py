import pytest

TINY = ["hidden_size=16", "num_layers=1", "seq_len=8", "batch_size=4", "eval_interval=10", "log_interval=5",
        "preview_length=20"]


@pytest.fixture
def text_file(tmp_path):
    """A small UTF-8 text: a few repeated English lines (about 4k characters)."""
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\nhello world, hello rnn.\n" * 60, encoding="utf-8")
    return str(path)
