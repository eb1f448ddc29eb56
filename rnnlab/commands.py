"""The sub-commands of ``rnnlab`` (cli.py parses the arguments): each takes the parsed ``args``, checks them,
and raises ``UserError`` before writing anything when they cannot hold.
"""

from contextlib import nullcontext
import json
import logging
import os
import sys

import torch

from . import checkpoint
from .config import check_seed, override, parse_set, resolve
from .errors import UserError
from .train import resolve_device

log = logging.getLogger(__name__)

FLUSH_EVERY = 64  # tokens between flushes of a sample: a pipe or a terminal sees it grow, without a syscall per token


def train(args) -> None:
    from .tasks import TASKS
    from .train import train as run_training

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
        summary = run_training(model, task, config, args.out, resume=args.resume, saved=saved, start=start)
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


def sample(args) -> None:
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
    generator = _sampling_generator(run.model, args.seed)
    out = sys.stdout
    for i in range(args.num_samples):
        if i:
            out.write("\n" + "-" * 40 + "\n")
        out.write(run.vocab.decode(prime.tolist()))
        for n, token in enumerate(generate(run.model, prime, args.length, args.temperature, args.top_k,
                                           args.top_p, generator), 1):
            out.write(run.vocab.piece(token))
            if n % FLUSH_EVERY == 0:
                out.flush()
        out.write("\n")
        out.flush()


def _sampling_generator(model, seed: int | None) -> torch.Generator:
    """A generator on ``model``'s device seeded with ``seed`` (random when None). On CPU, one thread: sampling
    one token or point at a time is latency-bound, and a second OpenMP thread only adds synchronisation
    (char-rnn: 8k vs 5k chars/s, benchmarks/results.md)."""
    device = next(model.parameters()).device
    if device.type == "cpu":
        torch.set_num_threads(1)
    generator = torch.Generator(device)
    generator.manual_seed(seed if seed is not None else torch.seed())
    return generator


def _sample_strokes(run, args) -> None:
    """Handwriting: ``--length`` points, unconditional, drawn to ``-o`` (.svg or .png)."""
    from .draw import save_strokes, stroke_image_format
    from .writing import check_bias

    if not args.output:
        raise UserError("a handwriting run draws its sample: give -o out.svg (or .png)")
    text_only = [flag for flag, given in (("--prime", args.prime is not None), ("--num-samples", args.num_samples != 1),
                                          ("--temperature", args.temperature != 1.0), ("--top-k", args.top_k != 0),
                                          ("--top-p", args.top_p != 1.0)) if given]
    if text_only:
        raise UserError(f"{', '.join(text_only)} {'is' if len(text_only) == 1 else 'are'} for text runs; a handwriting "
                        f"run draws one unconditional sample, shaped by --bias (to write a text: rnnlab write)")
    if args.length < 1:
        raise UserError(f"--length {args.length}: a drawing needs at least 1 point")
    stroke_image_format(args.output)  # a bad extension or folder fails before sampling
    check_bias(args.bias)
    generator = _sampling_generator(run.model, args.seed)
    save_strokes(run.task.write(run.model, run.config, args.length, args.bias, generator), args.output)
    print(f"wrote {args.output}")


def write(args) -> None:
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
    generator = _sampling_generator(run.model, args.seed)
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


def evaluate(args) -> None:
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
        baseline = f" (always answering 1: {result['baseline_mse']:.5f})" if result["baseline_mse"] is not None else ""
        print(f"{result['data']}: mean squared error {result['mse']:.5f}{baseline} over {result['sequences']:,} "
              f"sequences")
    elif "nats_per_line" in result:
        print(f"{result['data']} ({result['split']}): {result['nats_per_line']:.1f} nats per line, "
              f"{result['nats_per_point']:.4f} per point, over {result['lines']:,} lines")
    elif "perplexity" in result:
        print(f"{result['data']} ({result['split']}): perplexity {result['perplexity']:.2f}, "
              f"{result['loss']:.4f} nats/word over {result['tokens']:,} tokens")
    else:
        print(f"{result['data']}: {result['loss']:.4f} nats/char, {result['bits_per_char']:.4f} bits/char "
              f"over {result['tokens']:,} characters")


def download(args) -> None:
    from .data.download import download

    print(download(args.name, args.dir))


def plot(args) -> None:
    from .draw import plot_curves

    plot_curves(args.run, args.output)
    print(f"wrote {args.output}")


def gradients(args) -> None:
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
