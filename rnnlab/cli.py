"""The ``rnnlab`` command: train, sample, write, evaluate, plot, gradients, data download.

User errors (``rnnlab.errors.UserError``) become one line on stderr and exit status 2, with nothing
written; seeds, devices and logging are set here and nowhere else.
"""

import argparse
from contextlib import nullcontext
import json
import logging
import os
import re
import sys

import torch

from . import __version__, checkpoint
from .config import check_seed, override, parse_set, resolve
from .errors import UserError
from .train import resolve_device

log = logging.getLogger("rnnlab")


def _train(args) -> None:
    from .tasks import TASKS
    from .train import train

    module = TASKS[args.task]
    extra = {k: v for k, v in (("max_steps", args.max_steps), ("device", args.device), ("seed", args.seed)) if v is not None}
    if args.data is not None:
        # A path is stored absolute, so evaluate finds it from anywhere; a name (builtin:..., ptb) as it is.
        extra["data"] = os.path.abspath(args.data) if os.path.exists(args.data) else args.data
    if not args.out.strip():
        raise UserError("--out is empty; give the run folder, for example --out runs/mine")
    if args.resume and args.force:
        raise UserError("--resume continues the run in --out and --force replaces it; pass one of them")
    header = _existing_run(args.out, args.force)
    vocab = saved = None
    if args.resume:
        if header is None:
            raise UserError(f"--resume: {args.out} holds no run to resume; drop --resume to start one")
        if header["task"] != args.task:
            raise UserError(f"--resume: {args.out} holds a {header['task']} run, not a {args.task} one")
        if args.preset or args.config:
            raise UserError("--resume continues the run's own config; drop --preset/--config (use --set to change keys)")
        config = override(module.Config(), header["config"], f"{args.out}/config.json")
        config = override(config, {**parse_set(args.set), **extra}, "--set")
        config.validate()
        vocab = checkpoint.read_vocab(args.out)
        saved = checkpoint.load_train_state(args.out)  # read now: a damaged one fails before anything is written
    else:
        if header is not None and not args.force:
            raise UserError(f"--out {args.out} already holds a {header['task']} run; pass --resume to continue it "
                            f"or --force to replace it, or choose another --out")
        config = resolve(module.PRESETS, args.preset or module.DEFAULT_PRESET, args.config, args.set, extra)
    resolve_device(config.device)  # --device cuda without a GPU fails before the data is read
    torch.manual_seed(config.seed)
    task = module.Task(config, vocab)  # on resume, data outside the run's vocabulary is refused here
    config = task.config  # a task may fill in what it learnt from the data (handwriting: normalisation)
    model = module.build_model(config, task.vocab)
    params = sum(p.numel() for p in model.parameters())
    log.info("%s: %s parameters, preset %s, run folder %s", args.task, f"{params:,}",
             args.preset or ("(resumed)" if args.resume else module.DEFAULT_PRESET), args.out)

    def start() -> None:
        # Called by train() once everything is checked (a resumed state fits the model and the optimiser):
        # a command that fails before this leaves the run folder as it was.
        if not args.resume:
            _clear_run(args.out)
        checkpoint.save_run_files(args.out, args.task, config, task.vocab)

    with _tqdm_logging():
        summary = train(model, task, config, args.out, resume=args.resume, saved=saved, start=start)
    log.info("done: %d steps in %.1f s, best validation loss %.4f, %d non-finite steps skipped; next: rnnlab %s %s",
             summary["steps"], summary["seconds"], summary["best_valid_loss"], summary["skipped_steps"],
             "sample" if hasattr(module, "default_prime") or hasattr(module, "write") else "evaluate", args.out)


def _existing_run(out: str, force: bool = False):
    """The header of the run in ``out``, or None when there is none worth keeping (with ``force``, a damaged
    one is replaced too)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a folder for the run")
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"--out {out}: {parent} is a file, so the run folder cannot be made there")
    if not os.path.exists(os.path.join(out, checkpoint.CONFIG)):
        return None
    if not any(os.path.exists(os.path.join(out, name)) for name in (checkpoint.WEIGHTS, checkpoint.TRAIN_STATE)):
        return None  # a run that stopped before its first checkpoint: nothing in it to keep or resume
    try:
        return checkpoint.read_header(out)
    except UserError:
        if force:
            return None
        raise


def _clear_run(out: str) -> None:
    """Remove the files of a previous run (only reached with --force or for a new folder)."""
    for name in (checkpoint.WEIGHTS, checkpoint.TRAIN_STATE, checkpoint.METRICS):
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)


def _tqdm_logging():
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm() if sys.stderr.isatty() else nullcontext()


def _sample(args) -> None:
    from .sampling import check_options, generate

    check_options(args.temperature, args.top_k, args.top_p)
    if args.length < 0 or args.num_samples < 1:
        raise UserError("--length must be >= 0 and --num-samples >= 1")
    check_seed(args.seed)
    run = checkpoint.load_run(args.run, device=_device(args.device))
    if hasattr(run.task, "write"):
        _sample_strokes(run, args)
        return
    if not hasattr(run.task, "default_prime"):
        raise UserError(f"{args.run} holds a {run.task.NAME} run, which has no text sampling")
    if args.output or args.bias:
        raise UserError(f"{'-o' if args.output else '--bias'} is for handwriting runs; {args.run} samples text to "
                        f"stdout (redirect it: > out.txt; --temperature, --top-k and --top-p shape it)")
    if args.prime is not None and not run.vocab.tokenize(args.prime):
        raise UserError("--prime is empty; give at least one token, or leave --prime out")
    prime = run.task.default_prime(run.vocab) if args.prime is None else \
        run.vocab.encode(run.vocab.tokenize(args.prime), "the prime")
    device = next(run.model.parameters()).device
    if device.type == "cpu":
        # One token at a time is latency-bound: a second OpenMP thread only adds synchronisation
        # (char-rnn: 8k vs 5k chars/s, benchmarks/results.md).
        torch.set_num_threads(1)
    generator = torch.Generator(device)
    generator.manual_seed(args.seed if args.seed is not None else torch.seed())
    out = sys.stdout
    for i in range(args.num_samples):
        if i:
            out.write("\n" + "-" * 40 + "\n")
        out.write(run.vocab.decode(prime.tolist()))
        for n, token in enumerate(generate(run.model, prime, args.length, args.temperature, args.top_k,
                                           args.top_p, generator), 1):
            out.write(run.vocab.piece(token))
            if n % 64 == 0:
                out.flush()
        out.write("\n")
        out.flush()


def _sample_strokes(run, args) -> None:
    """Handwriting: ``--length`` points, unconditional, drawn to ``-o`` (.svg or .png)."""
    from .draw import save_strokes, stroke_image_format
    from .writing import check_bias

    if not args.output:
        raise UserError("a handwriting run draws its sample: give -o out.svg (or .png)")
    if args.prime is not None or args.num_samples != 1:
        raise UserError("--prime and --num-samples are for text runs; a handwriting run draws one unconditional "
                        "sample (to write a text: rnnlab write)")
    if args.length < 1:
        raise UserError(f"--length {args.length}: a drawing needs at least 1 point")
    stroke_image_format(args.output)  # a bad extension or folder fails before sampling
    check_bias(args.bias)
    generator = torch.Generator(next(run.model.parameters()).device)
    generator.manual_seed(args.seed if args.seed is not None else torch.seed())
    save_strokes(run.task.write(run.model, run.config, args.length, args.bias, generator), args.output)
    print(f"wrote {args.output}")


def _write(args) -> None:
    """Text -> handwriting with a synthesis run (the bundled model by default), drawn to ``-o``."""
    from .draw import image_format, plot_attention, save_strokes, stroke_image_format
    from .writing import check_bias, check_texts, layout_page, load_style, split_lines, write_lines

    stroke_image_format(args.output)  # every check before the model is loaded or anything is written
    if args.show_attention:
        image_format(args.show_attention, "--show-attention")
    check_bias(args.bias)
    check_seed(args.seed)
    run = checkpoint.load_run(args.model, device=_device(args.device))
    if not getattr(run.config, "window_gaussians", 0):
        raise UserError(f"{args.model} is not a handwriting synthesis run (train one with: rnnlab train handwriting "
                        f"--preset graves-synthesis), so it cannot write a given text")
    lines = split_lines(args.text, args.wrap)
    check_texts(lines, run.vocab, run.config.max_text_length)
    style = load_style(args.style, run.path, run.vocab, run.config.point_stride) if args.style is not None else None
    if next(run.model.parameters()).device.type == "cpu":
        torch.set_num_threads(1)  # one point at a time is latency-bound (see _sample)
    generator = torch.Generator(next(run.model.parameters()).device)
    generator.manual_seed(args.seed if args.seed is not None else torch.seed())
    written = write_lines(run.model, run.config, run.vocab, lines, args.bias, generator, style)
    page, line_height = layout_page(written.lines)
    save_strokes(page, args.output, writing_size=line_height)
    for text, stopped in zip(written.texts, written.stopped):
        if not stopped:
            log.warning("the line %r did not reach its end before the cap of points and was cut there", text)
    print(f"wrote {args.output}")
    if args.show_attention:
        plot_attention(written, args.show_attention)
        print(f"wrote {args.show_attention}")


def _evaluate(args) -> None:
    run = checkpoint.load_run(args.run, device=_device(args.device))
    result = run.task.evaluate_run(run, args.data, args.split)
    if args.json:
        print(json.dumps(result))
    elif "accuracy" in result:
        print(f"{result['data']}: accuracy {result['accuracy']:.4f} ({result['tokens']:,} scored), loss {result['loss']:.4f}")
        names = run.vocab.labels
        width = max(len(n) for n in names) + 1
        print("confusion (rows: true, columns: predicted)")
        print(" " * width + "".join(f"{n[:8]:>9}" for n in names))
        for name, row in zip(names, result["confusion"]):
            print(f"{name:<{width}}" + "".join(f"{c:>9,}" for c in row))
    elif "mse" in result:
        print(f"{result['data']}: mean squared error {result['mse']:.5f} over {result['sequences']:,} sequences")
    elif "nats_per_line" in result:
        print(f"{result['data']} ({result['split']}): {result['nats_per_line']:.1f} nats per line, "
              f"{result['nats_per_point']:.4f} per point, over {result['lines']:,} lines")
    elif "perplexity" in result:
        print(f"{result['data']} ({result['split']}): perplexity {result['perplexity']:.2f}, "
              f"{result['loss']:.4f} nats/word over {result['tokens']:,} tokens")
    else:
        print(f"{result['data']}: {result['loss']:.4f} nats/char, {result['bits_per_char']:.4f} bits/char "
              f"over {result['tokens']:,} characters")


def _download(args) -> None:
    from .data.download import download

    print(download(args.name, args.dir))


def _plot(args) -> None:
    from .draw import plot_curves

    plot_curves(args.run, args.output)
    print(f"wrote {args.output}")


def _gradients(args) -> None:
    from .draw import image_format, plot_gradient_norms
    from .gradients import measure

    if args.length < 2:
        raise UserError(f"--length {args.length}: use at least 2 steps so there is a gradient to carry back")
    if args.steps < 0:
        raise UserError(f"--steps {args.steps}: the number of training steps cannot be negative")
    check_seed(args.seed)
    image_format(args.output)  # a bad extension fails now, not after seconds of training
    result = measure(args.cell, args.length, seed=args.seed, steps=args.steps, chrono=not args.torch_init)
    plot_gradient_norms(result, args.output)
    if args.json:
        print(json.dumps(result))
    log.info("wrote %s", args.output)


def _device(name: str) -> str:
    return str(resolve_device(name))


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (``--help`` shows the usage)."""

    def error(self, message):
        self.exit(2, f"rnnlab: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown option is reported by the subcommand it was given to (its --help)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            subcommands = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
            owner = subcommands[0].choices[parsed.command] if subcommands else self
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def parser() -> argparse.ArgumentParser:
    from .data.download import DATASETS
    from .tasks import TASKS

    p = _Parser(prog="rnnlab", description="Train, evaluate and sample recurrent sequence models.")
    p.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model into a run folder")
    t.add_argument("task", choices=sorted(TASKS))
    t.add_argument("--data", help="charlm: a UTF-8 text (default: built-in tiny Shakespeare); "
                                  "wordlm: a folder of train/valid/test files or a dataset name (default: ptb)")
    t.add_argument("--preset", help="named configuration (default: the task's default preset)")
    t.add_argument("--config", help="TOML file of config keys, applied over the preset")
    t.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="override config keys")
    t.add_argument("--out", required=True, help="run folder to write")
    t.add_argument("--max-steps", type=int, help="stop after this many optimiser steps in all (0: the config's epochs)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--force", action="store_true", help="replace the run in --out")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="the config's device key (auto: cuda when available)")
    t.add_argument("--seed", type=int, help="the config's seed key: same seed, same run")
    t.set_defaults(run_command=_train)

    s = sub.add_parser("sample", help="generate text (or unconditional handwriting) from a trained run")
    s.add_argument("run", metavar="RUN_DIR")
    s.add_argument("--prime", help="text to start from (default: a newline)")
    s.add_argument("--length", type=int, default=500, help="tokens (handwriting: points) to generate (default 500)")
    s.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1)")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest (0 = all)")
    s.add_argument("--top-p", type=float, default=1.0, help="sample within probability mass p (1 = all)")
    s.add_argument("--seed", type=int, help="same seed, same text (default: random)")
    s.add_argument("--num-samples", type=int, default=1, help="texts to generate, each from the prime (default 1)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    s.add_argument("-o", "--output", help="handwriting: the drawing to write (.svg or .png)")
    s.add_argument("--bias", type=float, default=0.0, help="handwriting: Graves' sampling bias (0 = plain)")
    s.set_defaults(run_command=_sample)

    from .checkpoint import BUILTIN_HANDWRITING

    w = sub.add_parser("write", help="write a text as handwriting (Graves' synthesis network)")
    w.add_argument("text", help="the text; a newline (or a typed \\n) starts a new line on the page")
    w.add_argument("-o", "--output", required=True, help="the drawing to write (.svg or .png)")
    w.add_argument("--model", default=BUILTIN_HANDWRITING,
                   help=f"a synthesis run folder (default: {BUILTIN_HANDWRITING}, the bundled model)")
    w.add_argument("--bias", type=float, default=1.5,
                   help="Graves' sampling bias: 0 = as varied as the data, larger = neater (default 1.5)")
    w.add_argument("--style", help="prime with a style: the number of one of the model's styles, or a JSON file "
                                  "{\"text\": ..., \"offsets\": [[dx, dy, end_of_stroke], ...]}")
    w.add_argument("--wrap", type=int, default=0, metavar="N",
                   help="break lines at spaces into lines of at most N characters (default 0: only at newlines)")
    w.add_argument("--seed", type=int, help="same seed, same writing (default: random)")
    w.add_argument("--show-attention", metavar="FILE", help="also plot the window weights (time x characters)")
    w.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    w.set_defaults(run_command=_write)

    e = sub.add_parser("evaluate", help="score a trained run on its validation split or on --data")
    e.add_argument("run", metavar="RUN_DIR")
    e.add_argument("--data", help="charlm: a text to score instead of the validation split; "
                                  "wordlm: a corpus folder or dataset name instead of the run's")
    e.add_argument("--split", choices=["valid", "test", "all"], default="valid",
                   help="wordlm: valid or test; handwriting: valid, or all = every line at --data (default valid)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    e.set_defaults(run_command=_evaluate)

    pl = sub.add_parser("plot", help="plot the loss curves of a run")
    pl.add_argument("run", metavar="RUN_DIR")
    pl.add_argument("-o", "--output", default="curves.png", help="image to write (.png, .svg, .pdf)")
    pl.set_defaults(run_command=_plot)

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
    gr.set_defaults(run_command=_gradients)

    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("download", help="fetch a public dataset into the cache ($RNNLAB_DATA or ~/.cache/rnnlab)")
    dl.add_argument("name", choices=sorted(DATASETS))
    dl.add_argument("--dir", help="cache folder to use instead")
    dl.set_defaults(run_command=_download)
    return p


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


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        args.run_command(args)
    except UserError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnlab: interrupted; a training run continues from its last checkpoint with --resume", file=sys.stderr)
        return 130
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
