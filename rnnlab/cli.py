"""The ``rnnlab`` command: train, sample, write, evaluate, plot, presets, config, gradients, serve, data download.

Argument parsing and error reporting; the sub-commands themselves are in commands.py. User errors
(``rnnlab.errors.UserError``) become one line on stderr and exit status 2, with nothing written; logging is
set up here and nowhere else.
"""

import argparse
from contextlib import nullcontext
import logging
import os
import re
import shlex
import signal
import sys

import torch

from . import commands
from .errors import TrainingInterrupted, UserError
from .threads import check_threads, threads
from .version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (``--help`` shows the usage)."""

    def error(self, message):
        self.exit(2, f"rnnlab: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown option is reported by the subcommand it was given to (its --help), and
        a task written after ``--set k=v`` (which takes every word up to the next option) is still the task."""
        parsed, extras = self.parse_known_args(_task_first(sys.argv[1:] if args is None else list(args)), namespace)
        if extras:
            subcommands = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
            owner = subcommands[0].choices[parsed.command] if subcommands else self
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def _task_first(argv: list) -> list:
    """``train --set lr=0.1 charlm ...`` as ``train charlm --set lr=0.1 ...``: a word without "=" among the
    values of --set that names a task is moved before the options (train and config only)."""
    from .tasks import TASKS

    if len(argv) < 2 or argv[0] not in ("train", "config") or argv[1] in TASKS:
        return argv
    rest, moved, in_set = [], [], False
    for word in argv[1:]:
        if word.startswith("-"):
            in_set = word == "--set"
        elif in_set and "=" not in word and word in TASKS and not moved:
            moved.append(word)
            continue
        rest.append(word)
    return [argv[0], *moved, *rest]


def parser() -> argparse.ArgumentParser:
    from .data.download import DATASETS
    from .folder import BUILTIN_RECOGNIZER, BUILTIN_RUNS
    from .tasks import TASKS

    p = _Parser(prog="rnnlab", description="Train, evaluate and sample recurrent sequence models.")
    p.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model into a run folder",
                       description="Train a model into a run folder. rnnlab presets [TASK] lists the named "
                                   "configurations; rnnlab config TASK [--preset P] [--set k=v ...] prints the "
                                   "config a training would use, as TOML (--config reads it back).")
    t.add_argument("task", choices=list(TASKS))
    t.add_argument("--data", help="charlm: a UTF-8 text (default: built-in tiny Shakespeare); "
                                  "wordlm: a folder of train/valid/test files or a dataset name (default: ptb); "
                                  "classify: a JSONL file (default: the preset's toy task); "
                                  "handwriting, synthesis: the IAM-OnDB folder or .tar.xz (default: synthetic "
                                  "Hershey lines)")
    t.add_argument("--preset", help="named configuration (default: the task's default preset; see rnnlab presets)")
    t.add_argument("--config", help="TOML file of config keys, applied over the preset")
    t.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="override config keys")
    t.add_argument("--out", required=True, help="run folder to write")
    t.add_argument("--max-steps", type=int, help="stop after this many optimiser steps in all (0: the config's epochs)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--force", action="store_true",
                   help="replace the run in --out (the old one stays until the new one saves its first checkpoint)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="the config's device key (auto: cuda when available)")
    t.add_argument("--seed", type=int, help="the config's seed key: same seed, same run")
    _threads(t, "the config's threads key (default: OMP_NUM_THREADS, else the cores not busy now)")
    t.add_argument("--nproc", type=int, metavar="N",
                   help="train in N processes on this machine (torchrun's agent; README: More than one process)")
    t.set_defaults(run_command=commands.train)

    s = sub.add_parser("sample", help="generate text (or unconditional handwriting) from a trained run")
    s.add_argument("run", metavar="RUN_DIR")
    s.add_argument("--prime", help="text to start from (default: a newline; <eos> for a word model)")
    s.add_argument("--length", type=int, default=500, help="tokens (handwriting: points) to generate (default 500)")
    s.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1)")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest (0 = all)")
    s.add_argument("--top-p", type=float, default=1.0, help="sample within probability mass p (1 = all)")
    s.add_argument("--seed", type=int, help="same seed, same text (default: random)")
    s.add_argument("--num-samples", type=int, default=1, help="texts to generate, each from the prime (default 1)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    s.add_argument("-o", "--output", help="handwriting: the drawing to write (.svg or .png)")
    s.add_argument("--bias", type=float, default=0.0, help="handwriting: Graves' sampling bias (0 = plain)")
    _threads(s, "CPU threads while sampling (default 1: the fastest for one token at a time)")
    s.set_defaults(run_command=commands.sample)

    builtin_handwriting = next(iter(BUILTIN_RUNS))

    w = sub.add_parser("write", help="write a text as handwriting (Graves' synthesis network)")
    w.add_argument("text", help="the text; a newline (or a typed \\n) starts a new line on the page")
    w.add_argument("-o", "--output", required=True,
                   help="the drawing to write (.svg or .png), or its strokes (.json, which rnnlab read reads, or .npy)")
    w.add_argument("--model", default=builtin_handwriting,
                   help=f"a synthesis run folder (default: {builtin_handwriting}, the bundled model)")
    w.add_argument("--bias", type=float, default=1.5,
                   help="Graves' sampling bias: 0 = as varied as the data, larger = neater (default 1.5)")
    w.add_argument("--style", help="prime with a style: the number of one of the model's styles, or a JSON file "
                                  "{\"text\": ..., \"offsets\": [[dx, dy, end_of_stroke], ...]}")
    w.add_argument("--wrap", type=int, default=0, metavar="N",
                   help="break lines at spaces into lines of at most N characters (default 0: only at newlines)")
    w.add_argument("--seed", type=int, help="same seed, same writing (default: random)")
    w.add_argument("--show-attention", metavar="FILE", help="also plot the window weights (time x characters)")
    w.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    _threads(w, "CPU threads while sampling (default 1: the fastest for one point at a time)")
    w.set_defaults(run_command=commands.write)

    r = sub.add_parser("read", help="print the text of handwriting (a recognize run: BiLSTM + CTC)")
    r.add_argument("file", help="a JSON strokes file: what rnnlab write -o x.json saves, or a --style file")
    r.add_argument("--model", default=BUILTIN_RECOGNIZER,
                   help=f"a recognize run folder (default: {BUILTIN_RECOGNIZER}, the bundled recogniser)")
    r.add_argument("--beam", type=int, help="prefixes of the beam search, 0 = the best path (default: the run's)")
    r.add_argument("--lm-weight", type=float, help="the character language model's weight, 0 = none (default: the run's)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    _threads(r, "CPU threads while reading (default 1)")
    r.set_defaults(run_command=commands.read)

    tr = sub.add_parser("translate", help="translate text with a seq2seq run (lines from stdin without TEXT)")
    tr.add_argument("run", metavar="RUN_DIR")
    tr.add_argument("text", nargs="?", help="the text: one translation per line (default: read stdin)")
    tr.add_argument("--beam", type=int, help="beam width, 1 = greedy (default: the run's)")
    tr.add_argument("--length-penalty", type=float, help="the beam's length penalty alpha (default: the run's)")
    tr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    _threads(tr, "CPU threads while decoding (default 1)")
    tr.set_defaults(run_command=commands.translate)

    e = sub.add_parser("evaluate", help="score a trained run on its validation split or on --data")
    e.add_argument("run", metavar="RUN_DIR")
    e.add_argument("--data", help="charlm: a text to score instead of the validation split; "
                                  "wordlm: a corpus folder or dataset name instead of the run's; "
                                  "classify: a JSONL file; handwriting, synthesis: the IAM-OnDB folder or .tar.xz "
                                  "(needed for builtin:handwriting)")
    e.add_argument("--split", choices=["valid", "test", "all"], default="valid",
                   help="wordlm: valid or test; seq2seq toy tasks: valid, or test = 10,000 pairs of their own; "
                        "handwriting: valid, or all = every line at --data (default valid)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--legibility", action="store_true",
                   help="a synthesis run: write texts, read them back with --reader, and report the error rates "
                        "beside the reader's on the real lines (README: Legibility)")
    e.add_argument("--texts", help="--legibility: a text file, one line per line (default: the validation "
                                   "transcriptions of --data)")
    e.add_argument("--reader", default=BUILTIN_RECOGNIZER,
                   help=f"--legibility: the recognize run that reads (default: {BUILTIN_RECOGNIZER})")
    e.add_argument("--bias", type=float, nargs="+", metavar="B",
                   help="--legibility: the biases to write at (default: 0 0.75 1.5 3)")
    e.add_argument("--lines", type=int, default=0, metavar="N", help="--legibility: the first N texts only (default: all)")
    e.add_argument("--seed", type=int, default=0, help="--legibility: the writing's seed (default 0)")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    _threads(e, "CPU threads (default: OMP_NUM_THREADS, else the cores not busy now)")
    e.set_defaults(run_command=commands.evaluate)

    pl = sub.add_parser("plot", help="plot the loss curves of a run")
    pl.add_argument("run", metavar="RUN_DIR")
    pl.add_argument("-o", "--output", default="curves.png", help="image to write (.png, .svg, .pdf)")
    pl.add_argument("--attention", metavar="TEXT",
                    help="a seq2seq run: plot the attention of its translation of TEXT (source x output) instead")
    pl.set_defaults(run_command=commands.plot)

    ps = sub.add_parser("presets", help="list the named configurations of every task (or of one), with sources")
    ps.add_argument("task", nargs="?", choices=list(TASKS))
    ps.set_defaults(run_command=commands.presets)

    c = sub.add_parser("config", help="print the config a training would use, as TOML, without training")
    c.add_argument("task", choices=list(TASKS))
    c.add_argument("--preset", help="named configuration (default: the task's default preset)")
    c.add_argument("--config", help="TOML file of config keys, applied over the preset")
    c.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="override config keys")
    c.set_defaults(run_command=commands.config)

    from .gradients import TRAIN_STEPS

    gr = sub.add_parser("gradients", help="plot ||dL/dh_t|| across a sequence, untrained and trained: vanishing gradients")
    gr.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="rnn")
    gr.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    gr.add_argument("--steps", type=int, default=TRAIN_STEPS, help=f"training steps on delayed recall (default {TRAIN_STEPS})")
    gr.add_argument("--seed", type=int, default=0)
    gr.add_argument("--torch-init", action="store_true",
                    help="keep torch's gate init instead of chrono init (the LSTM and GRU then vanish and fail too)")
    gr.add_argument("--json", action="store_true", help="also print the result as one JSON object")
    gr.add_argument("-o", "--output", default="gradients.png", help="image to write (.png, .svg, .pdf)")
    _threads(gr, "CPU threads (default: OMP_NUM_THREADS, else the cores not busy now)")
    gr.set_defaults(run_command=commands.gradients)

    from .serve import TIME_LIMIT_SECONDS

    sv = sub.add_parser("serve", help="a local web page: write as you type, sample text, watch training",
                        description="Serve the bundled handwriting model (and the runs named with --model) on a web "
                                    "page and an HTTP API (README: The web page). Open the URL it prints.")
    sv.add_argument("--model", action="append", default=[], metavar="[NAME=]RUN_DIR",
                    help="also serve this run folder, named after its folder (or NAME); repeat for several")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: any free port)")
    sv.add_argument("--workers", type=int, default=0,
                    help="generations at a time (default 0: one per CPU core); more wait in a line, then 429")
    sv.add_argument("--time-limit", type=float, default=TIME_LIMIT_SECONDS,
                    help=f"seconds one generation may take (default {TIME_LIMIT_SECONDS:g})")
    sv.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    _threads(sv, "CPU threads of each generation (default 1: the fastest for one token or point at a time)")
    sv.set_defaults(run_command=commands.serve)

    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("download", help="fetch a public dataset into the cache ($RNNLAB_DATA or ~/.cache/rnnlab)")
    dl.add_argument("name", choices=sorted(DATASETS))
    dl.add_argument("--dir", help="cache folder to use instead")
    dl.set_defaults(run_command=commands.download)
    return p


def _threads(p: argparse.ArgumentParser, meaning: str) -> None:
    p.add_argument("--threads", type=int, metavar="N", help=meaning)


def _out_of_memory(error: BaseException) -> bool:
    """An allocation the machine cannot make (CPU or GPU): a size to lower, not a bug in rnnlab."""
    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in str(error)


def _allocation(message: str) -> str:
    """" (asked for 1.5 GiB)" from torch's CPU or CUDA allocation error, or "" when it names no size."""
    if m := re.search(r"[Tt]ried to allocate (\d+) bytes", message):
        return f" (asked for {int(m.group(1)) / 2**30:,.1f} GiB)"
    if m := re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]iB)", message):
        return f" (asked for {m.group(1)})"
    return ""


def _interrupted(args, error: KeyboardInterrupt, quiet: bool) -> int:
    """One line for Ctrl-C or SIGTERM: for a training, what was saved and how to go on (``quiet``: a rank
    other than 0 of a torchrun job, for which rank 0 says it)."""
    status = 128 + (error.signal if isinstance(error, TrainingInterrupted) else signal.SIGINT)
    if quiet:
        return status
    if not isinstance(error, TrainingInterrupted):
        print("rnnlab: interrupted", file=sys.stderr)
    elif error.resumable:
        at = f" at step {error.step}" if error.step is not None else ""
        print(f"rnnlab: interrupted{at}; the run is saved: continue it with rnnlab train {args.task} "
              f"--out {shlex.quote(args.out)} --resume", file=sys.stderr)
    else:
        print("rnnlab: interrupted before the run's first checkpoint; nothing was saved (a run it was to "
              "replace is kept)", file=sys.stderr)
    return status


def _command_threads(args):
    """The CPU threads a command computes with: ``--threads N``, else the default of threads.py (sampling
    commands pick their own: one)."""
    count = getattr(args, "threads", None)
    if count is not None:
        check_threads(count, "--threads")
    return threads(count or 0) if args.command not in ("sample", "write", "read", "translate", "serve") else nullcontext()


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --nproc hands to the processes it starts
    # In a torchrun job only rank 0 reports progress; the others say only what goes wrong.
    quiet = os.environ.get("RANK", "0") not in ("", "0")
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        with _command_threads(args):
            args.run_command(args)
    except UserError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return _interrupted(args, e, quiet)
    except BrokenPipeError:
        sys.stderr.close()  # `rnnlab sample ... | head` is not an error
        return 0
    except (MemoryError, RuntimeError) as e:
        if not _out_of_memory(e):
            raise
        print(f"rnnlab: error: out of memory{_allocation(str(e))}; lower batch_size, hidden_size or seq_len "
              f"(--set KEY=VALUE)", file=sys.stderr)
        return 2
    except OSError as e:  # a folder that is not writable, a full disk: the environment, not rnnlab
        print(f"rnnlab: error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""), file=sys.stderr)
        return 2
    return 0
