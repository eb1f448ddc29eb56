"""files.py: every write is whole or absent, a failed write names the user's path, and the temporary files of
killed processes are cleared while a live process's are left alone."""

import os
import subprocess
import sys

import pytest

from rnnlab.files import atomic_write, pid_alive, remove_stale_temps, temp_path, write_bytes, write_text


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "out.txt"
    write_text(str(path), "old")
    write_text(str(path), "new ü")
    assert path.read_text(encoding="utf-8") == "new ü"
    assert os.listdir(tmp_path) == ["out.txt"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.bin"
    write_bytes(str(path), b"old")

    def half_then_fail(tmp):
        with open(tmp, "wb") as f:
            f.write(b"ne")
        raise ValueError("the writer failed half-way")

    with pytest.raises(ValueError, match="half-way"):
        atomic_write(str(path), half_then_fail)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_an_os_error_names_the_destination_not_the_temporary_name(tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "x.txt"
    with pytest.raises(OSError) as raised:
        write_text(str(missing), "x")
    assert raised.value.filename == str(missing)


def test_pid_alive_tells_this_process_from_a_finished_one():
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())
    assert not pid_alive(0)


def test_stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = tmp_path / f".model.safetensors.{_dead_pid()}.tmp"
    live = tmp_path / os.path.basename(temp_path(str(tmp_path / "train_state.pt")))  # this process's own name
    mine = tmp_path / "notes.1.tmp"  # not a name rnnlab writes: the user's own file
    for path in (dead, live, mine):
        path.write_bytes(b"x")
    assert remove_stale_temps(str(tmp_path)) == [dead.name]
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, mine.name])
    assert remove_stale_temps(str(tmp_path / "absent")) == []
