"""The sub-commands of ``rnnlab`` (cli.py parses the arguments): each is a thin layer over the public API
(``run.py``: ``load``, ``Run.sample`` / ``write`` / ``evaluate``, ``train``, ``plot``), adding only what a
command line has: flags checked before any work, text streamed to stdout, files named by ``-o``.
"""

import json
import logging
import shlex
import sys

from . import run as api
from .config import parse_set
from .errors import UserError

log = logging.getLogger(__name__)

FLUSH_EVERY = 64  # tokens between flushes of a sample: a pipe or a terminal sees it grow, without a syscall per token


def next_hint(task, path: str) -> str:
    """The command to try after training a run of ``task`` into ``path``."""
    where = shlex.quote(path)
    return {"text": f"rnnlab sample {where}",
            "strokes": f"rnnlab sample {where} -o sample.svg",
            "handwriting": f"rnnlab write \"Hello\" --model {where} -o hello.png",
            "translation": f"rnnlab translate {where} \"TEXT\"",
            "": f"rnnlab evaluate {where}"}[task.generates]


def train(args) -> None:
    from tqdm.contrib.logging import logging_redirect_tqdm
    from contextlib import nullcontext

    if args.nproc is not None and args.nproc != 1:
        from .distributed import launch

        status = launch(args.nproc, _without_nproc(args.argv))
        if status:
            raise SystemExit(status)
        return

    flags = {k: v for k, v in (("max_steps", args.max_steps), ("device", args.device), ("seed", args.seed),
                               ("threads", args.threads)) if v is not None}
    sets = parse_set(args.set)
    if args.data is not None:  # --data over a --set data=...: either is train's data= (a path is stored absolute)
        sets["data"] = args.data
    with logging_redirect_tqdm() if sys.stderr.isatty() else nullcontext():
        run = api.train(args.task, args.out, preset=args.preset, resume=args.resume, force=args.force,
                        config=args.config, **{**sets, **flags})
    summary = run.summary
    log.info("done: %d steps in %.1f s, best validation loss %.4f, %d non-finite steps skipped; next: %s",
             summary["steps"], summary["seconds"], summary["best_valid_loss"], summary["skipped_steps"],
             next_hint(run.task, args.out))


def _without_nproc(argv: list) -> list:
    """``argv`` less its ``--nproc N`` (or ``--nproc=N``): the command each process of the job runs."""
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            kept.append(word)
    return kept


def presets(args) -> None:
    """One line per preset: task, name, source (``*`` marks a task's default)."""
    tasks = [args.task] if args.task else list(api.TASKS)
    width = max(len(name) for task in tasks for name in api.presets(task)) + 2
    for task in tasks:
        default = api.task_named(task).default_preset
        for name, preset in api.presets(task).items():
            mark = "*" if name == default else " "
            print(f"{task:<12}{name:<{width}}{mark} {preset.source}")


def config(args) -> None:
    print(api.config_toml(args.task, args.preset, args.config, **parse_set(args.set)), end="")


def sample(args) -> None:
    run = api.load(args.run, device=args.device)
    if run.task.generates == "strokes":
        _sample_strokes(run, args)
        return
    if (args.output or args.bias) and run.task.generates == "text":  # other runs refuse in stream(), naming their use
        raise UserError(f"{'-o' if args.output else '--bias'} is for handwriting runs; {args.run} samples text to "
                        f"stdout (redirect it: > out.txt; --temperature, --top-k and --top-p shape it)")
    if args.num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.prime == "":
        raise UserError("--prime is empty; give at least one token, or leave --prime out")
    out = sys.stdout
    generator = api.generator(run, args.seed)  # one stream of random numbers for all the samples
    for i in range(args.num_samples):
        if i:
            out.write("\n" + "-" * 40 + "\n")
        pieces = run.stream(args.prime or "", args.length, args.temperature, args.top_k, args.top_p, generator,
                            args.threads or 1)
        for n, piece in enumerate(pieces):
            out.write(piece)
            if n % FLUSH_EVERY == 0:
                out.flush()
        out.write("\n")
        out.flush()


def _sample_strokes(run, args) -> None:
    """Handwriting prediction: ``--length`` points, unconditional, drawn to ``-o`` (.svg or .png)."""
    from .draw import stroke_image_format

    if not args.output:
        raise UserError("a handwriting run draws its sample: give -o out.svg (or .png)")
    if args.num_samples != 1:
        raise UserError("--num-samples is for text runs; a handwriting run draws one unconditional sample")
    stroke_image_format(args.output)  # a bad extension or folder fails before sampling
    drawing = run.sample(args.prime or "", args.length, args.temperature, args.top_k, args.top_p, args.seed, args.bias,
                         args.threads or 1)
    drawing.save(args.output)
    print(f"wrote {args.output}")


def write(args) -> None:
    """Text -> handwriting with a synthesis run (the bundled model by default), drawn to ``-o``."""
    import os

    from .draw import handwriting_format, image_format

    handwriting_format(args.output)  # every check before the model is loaded or anything is written
    if args.show_attention:
        image_format(args.show_attention, "--show-attention")
        if os.path.realpath(args.show_attention) == os.path.realpath(args.output):  # links too
            raise UserError(f"-o and --show-attention are both {args.output}; give the attention plot another name")
    run = api.load(args.model, device=args.device)
    written = run.write(args.text, args.bias, args.style, args.seed, args.wrap, args.threads or 1)
    written.save(args.output)
    print(f"wrote {args.output}")
    if args.show_attention:
        written.save_attention(args.show_attention)
        print(f"wrote {args.show_attention}")


def read(args) -> None:
    """A strokes file -> its text, a line of text per line of ink."""
    from .ink import read_strokes

    lines = read_strokes(args.file)  # a bad file fails before the model is loaded
    run = api.load(args.model, device=args.device)
    print("\n".join(run.read_lines(lines, args.beam, args.lm_weight, args.threads or 1)))


def translate(args) -> None:
    """Text (or stdin's lines) -> its translation, a line for each non-blank line."""
    text = args.text if args.text is not None else sys.stdin.read()
    run = api.load(args.run, device=args.device)
    print(run.translate(text, args.beam, args.length_penalty, args.threads or 1))


def evaluate(args) -> None:
    legibility_only = {"--texts": args.texts, "--bias": args.bias, "--lines": args.lines or None}
    if not args.legibility and any(v is not None for v in legibility_only.values()):
        raise UserError(f"{', '.join(k for k, v in legibility_only.items() if v is not None)} "
                        f"{'is' if sum(v is not None for v in legibility_only.values()) == 1 else 'are'} for "
                        f"--legibility; add it, or drop them")
    if args.legibility:
        return _legibility(args)
    run = api.load(args.run, device=args.device)
    result = run.evaluate(args.data, args.split)
    print(json.dumps(result) if args.json else run.describe(result))


def _legibility(args) -> None:
    from . import legibility
    from .writing import check_bias

    if args.split != "valid":
        raise UserError("--legibility writes the validation texts (or --texts FILE); drop --split")
    if args.lines < 0:
        raise UserError(f"--lines must be >= 0 (0: all), got {args.lines}")
    biases = args.bias if args.bias is not None else legibility.BIASES
    for bias in biases:
        check_bias(bias)
    writer = api.load(args.run, device=args.device)
    legibility.check_writer(writer)
    reader = api.load(args.reader, device=args.device)
    texts = legibility.file_texts(args.texts) if args.texts else legibility.validation_texts(reader, args.data)
    result = legibility.measure(writer, reader, texts, biases, args.seed, args.lines)
    print(json.dumps(result) if args.json else legibility.describe(result))


def serve(args) -> None:
    from .serve import serve

    serve(args.model, args.host, args.port, args.threads or 1, args.workers, args.time_limit, args.device)


def download(args) -> None:
    from .data.download import download

    print(download(args.name, args.dir))


def plot(args) -> None:
    api.plot(args.run, args.output, args.attention)
    print(f"wrote {args.output}")


def gradients(args) -> None:
    from .config import check_seed
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
