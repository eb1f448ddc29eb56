"""The runs a server serves, by name: the bundled handwriting model and the run folders named on the command
line (``--model [NAME=]PATH``). Requests choose among them by name only, so nothing a client sends reaches
the file system beyond these folders.

Each run is loaded once, at start-up. A run named while it is still training, before its first weights, is
served for its metrics, and loaded the first time a request needs its model (its weights of that moment).
"""

from dataclasses import dataclass, field
import os
import re
import threading

from ..errors import UserError
from ..folder import BUILTIN_RUNS, RunFolder
from ..run import Run, load, task_named
from .fields import BadRequest

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # a run's name in a request and in a URL path
USES = {"handwriting": "writes text (POST /api/write)", "text": "samples text (POST /api/sample)",
        "strokes": "draws unconditional strokes (rnnlab sample)", "": "scores data (rnnlab evaluate)",
        "reads": "reads handwriting (POST /api/read)", "translation": "translates (rnnlab translate)"}


@dataclass
class Served:
    """One served run: its ``name`` in requests, its ``folder``, its task, and its ``Run`` once loaded."""

    name: str
    folder: RunFolder
    task: type
    device: str
    vocab: object = None            # its vocabulary (read at start-up: a damaged one is refused there)
    _run: Run | None = None
    _loading: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _listed_styles: list | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """What requests may ask of it: a ``Task.generates``, or "reads" for a recognize run."""
        return "reads" if self.task.name == "recognize" else self.task.generates

    @property
    def run(self) -> Run:
        """The loaded run (loaded now if it was still training at start-up)."""
        with self._loading:
            if self._run is None:
                if not self.folder.has_weights():
                    raise BadRequest(f"{self.name} is still training and has no weights yet; ask again after its "
                                     f"first evaluation", 409)
                self._run = load(self.folder.path, self.device)
            return self._run

    def _styles(self, run) -> list:
        """The run's styles as the listing gives them, read from its folder once."""
        if run is None:
            return []
        if self._listed_styles is None:
            self._listed_styles = [{"text": s.text, "offsets": s.offsets.astype(float).round(2).tolist()}
                                   for s in run.styles]
        return self._listed_styles

    def describe(self) -> dict:
        """What ``GET /api/models`` says of this run."""
        run = self._run
        vocab = self.vocab
        char = vocab.kind == "char"
        styles = self._styles(run)
        step = str(run.metadata.get("step", "")) if run else ""
        return {"name": self.name, "task": self.task.name, "kind": self.kind, "loaded": run is not None,
                "step": int(step) if step.isdigit() else None,
                "parameters": sum(p.numel() for p in run.model.parameters()) if run else None,
                "alphabet": "".join(vocab.tokens) if char and self.kind in ("handwriting", "text") else None,
                "tokens": vocab.kind if self.kind == "text" else None, "styles": styles,
                "text_length": getattr(run.config, "max_text_length", None) if run else None,
                "metrics": self.folder.has_metrics()}


class Catalog:
    """The served runs by name, in the order given (the bundled model first)."""

    def __init__(self, served: list[Served]):
        self.served = {s.name: s for s in served}

    @classmethod
    def open(cls, models: list[str], builtin: bool = True, device: str = "cpu") -> "Catalog":
        """The bundled model (unless not ``builtin``) and each of ``models``: ``PATH`` (named after its
        folder) or ``NAME=PATH``. A name given twice, or a folder that holds no run, is a UserError."""
        entries = [(name, name) for name in BUILTIN_RUNS] if builtin else []
        for spec in models:
            name, _, path = spec.partition("=") if "=" in spec and not os.path.exists(spec) else ("", "", spec)
            name = name or os.path.basename(os.path.normpath(path))
            if not NAME.fullmatch(name):
                raise UserError(f"--model {spec}: {name!r} cannot name a model in a request; name it: "
                                f"--model NAME={path} (letters, digits, '.', '_', '-')")
            if name in dict(entries):
                raise UserError(f"--model {spec}: the name {name!r} is taken by {dict(entries)[name]}; name this one: "
                                f"--model OTHER={path}")
            entries.append((name, path))
        served = []
        for name, path in entries:
            folder = RunFolder(path)
            task = task_named(folder.read_header()["task"])
            entry = Served(name, folder, task, device, folder.read_vocab())
            if folder.has_weights():
                entry._run = load(path, device)
            served.append(entry)
        return cls(served)

    def get(self, name: str, kind: str | None = None) -> Served:
        """The run called ``name``; with ``kind`` (a ``Task.generates``), one that generates that."""
        served = self.served.get(name)
        if served is None:
            raise BadRequest(f"no model named {name[:64]!r}; the models: {', '.join(self.served)}", 404)
        if kind is not None and served.kind != kind:
            raise BadRequest(f"{name} is a {served.task.name} run, which {USES[served.kind]}; pick a model that "
                             f"{USES[kind].split(' (')[0]}")
        return served

    def default(self, kind: str) -> Served:
        """The first run that generates ``kind``, for a request that names no model."""
        for served in self.served.values():
            if served.kind == kind:
                return served
        raise BadRequest(f"no served model {USES[kind].split(' (')[0]}; start the server with one: "
                         f"rnnlab serve --model RUN")

    def metrics(self, name: str) -> Served:
        served = self.get(name)
        if not served.folder.has_metrics():
            raise BadRequest(f"{name} has no training metrics (a bundled model, or a run copied without them)", 404)
        return served

    def describe(self) -> dict:
        return {"models": [s.describe() for s in self.served.values()]}
