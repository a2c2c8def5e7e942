"""manifest.sha256: one ``<sha256>  <relative path>`` line per file, in sha256sum's format.

``cd <export> && sha256sum -c manifest.sha256`` verifies an export by hand. Paths use ``/``, are
relative to the export directory, never contain a backslash or a line break (so sha256sum's
escaped form is never needed), and are sorted.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from vsms.disks.api import ProgressFn
from vsms.disks.copy import sha256_file
from vsms.disks.digests import DigestBook
from vsms.errors import JobCancelled, VsmsError
from vsms.exportdir.layout import MANIFEST, q
from vsms.exportdir.tree import rel_path_problem

_LINE = re.compile(r"([0-9A-Fa-f]{64}) [ *](.+)")
_FIX = f"restore {MANIFEST} from the original export or export the virtual machine again"


def format_manifest(digests: dict[str, str]) -> bytes:
    """The manifest text for ``digests`` (relative path -> hex sha256), sorted by path."""
    return "".join(f"{digests[rel]}  {rel}\n" for rel in sorted(digests)).encode("utf-8")


def parse_manifest(data: bytes) -> tuple[dict[str, str], list[str]]:
    """Entries (relative path -> lower-case hex sha256) and a sentence for every bad line.

    Paths that are absolute, contain ``..`` or are otherwise unclean are reported and left out;
    whether a path resolves inside the export is the reader's check (it needs the directory).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {}, [f"{MANIFEST} is not UTF-8 text: {_FIX}"]
    entries: dict[str, str] = {}
    problems: list[str] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        problems.append(f"{MANIFEST} lists no files: {_FIX}")
    for number, line in enumerate(lines, 1):
        match = _LINE.fullmatch(line)
        if match is None:
            problems.append(f"{MANIFEST} line {number} is not '<sha256>  <relative path>': {_FIX}")
            continue
        digest, rel = match.group(1).lower(), match.group(2)
        why = rel_path_problem(rel)
        if why is None and rel == MANIFEST:
            why = "is the manifest itself"
        if why is not None:
            problems.append(f"{MANIFEST} line {number} names {q(rel)}, which {why}: {_FIX}")
        elif rel in entries:
            problems.append(f"{MANIFEST} line {number} lists {q(rel)} a second time: {_FIX}")
        else:
            entries[rel] = digest
    return entries, problems


def hash_files(directory: Path, rels: list[str], *, progress: ProgressFn | None = None,
               cancel: threading.Event | None = None,
               problems: list[str] | None = None,
               book: DigestBook | None = None) -> dict[str, str]:
    """sha256 of each file (relative path -> hex digest), in the order given.

    ``progress`` receives the bytes of data read so far over all files (holes in sparse files
    are not read, so the last value is at most the total size); ``cancel`` makes the hashing
    raise JobCancelled (both pass through to vsms.disks.copy.sha256_file). When ``problems`` is
    given, a file that cannot be read is reported there and left out instead of raising.
    ``book`` gives the digests of files this host hashed before and has not seen change.
    """
    done = 0
    digests: dict[str, str] = {}
    for rel in rels:
        base = done

        def step(n: int, base: int = base) -> None:
            nonlocal done
            done = max(done, base + n)
            if progress is not None:
                progress(done)

        try:
            digests[rel] = sha256_file(str(directory / rel), progress=step, cancel=cancel,
                                       book=book)
        except JobCancelled:
            raise
        except VsmsError as exc:
            if problems is None:
                raise
            problems.append(f"{q(rel)} cannot be read to check its checksum ({exc}): "
                            "make it readable by the service")
    return digests
