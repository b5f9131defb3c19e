"""The job an output records, and how two jobs are compared: what ``--resume`` trusts.

An output's ``tilerun`` record holds ``job``: everything that changes a value it holds — the
input's and the model's *content* digests, the options, the layout — and ``fingerprint``, a
hash of it. ``--resume`` keeps an unfinished store's chunks, or answers "nothing to do" for a
complete one, only when the fingerprints match; otherwise it refuses with what differs
(:func:`differences`).

The input is identified by its content, not its size and time stamp: ``cp -p``, ``rsync`` and
re-downloads rewrite a file and restore both. :func:`files_digest` reads the input's files (a
GeoTIFF's, and a VRT's sources, as GDAL lists them; a slide's) once and takes their CRC-32C
(hardware-accelerated, ~3 GB/s); a run computes it in a background thread while the model's
backend is chosen, so it costs little of the run's wall time (see ``bench_integrity.py``). An
in-memory numpy array is digested the same way; a remote input (``s3://…``, ``https://…``) is
identified by its e-tag, size and version id as its store reports them; a dask array has no
digest (its name stands in).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

#: the job record's key of the input's content digest
INPUT_DIGEST = "input_digest"
#: read size for file digests
BLOCK = 8 << 20
#: how a difference is named in a refusal
LABELS = {"input_digest": "the input's content", "model_digest": "the model's weights or spec",
          "input_stat": "the input's size or time stamp", "model_stat": "the model file",
          "input": "the input", "model": "the model"}


def file_digest(path: Path) -> str:
    """CRC-32C of a file's bytes, with its size (``crc32c:…:size``)."""
    crc, size = 0, 0
    with open(path, "rb") as file:
        while block := file.read(BLOCK):
            crc = google_crc32c.extend(crc, block)
            size += len(block)
    return f"crc32c:{crc:08x}:{size}"


def files_digest(paths: Sequence[Path]) -> dict[str, str]:
    """:func:`file_digest` of each file that can be read, by its path relative to the first
    one's folder (a missing VRT source is left out: whatever reads it fails, so no chunk holds
    its pixels, and it may be restored before ``--resume``)."""
    digests = {}
    folder = Path(paths[0]).absolute().parent if paths else Path()
    for path in paths:
        absolute = Path(path).absolute()
        name = absolute.relative_to(folder) if absolute.is_relative_to(folder) else absolute
        try:
            digests[str(name)] = file_digest(path)
        except OSError:
            continue
    return digests


def array_digest(array: np.ndarray) -> dict[str, str]:
    """The same digest of an in-memory array (its bytes, shape and type)."""
    view = np.ascontiguousarray(array).view()
    view.flags.writeable = False
    crc = google_crc32c.value(view)
    crc = google_crc32c.extend(crc, f"|{array.shape}|{array.dtype}|".encode())
    return {"<array>": f"crc32c:{crc:08x}:{array.nbytes}"}


def object_version(url: str) -> dict[str, str] | None:
    """A remote input's identity from its store: e-tag, size and version id (``s3://``,
    ``gs://``, ``az://``, ``http(s)://``); None when the store says nothing (no credentials for
    a listing, a server without ``HEAD``)."""
    import obstore
    from obstore.exceptions import BaseError
    from obstore.store import from_url

    head, _, name = url.rpartition("/")
    try:
        meta = obstore.head(from_url(head), name)
    except (BaseError, OSError, ValueError, RuntimeError):
        return None
    return {url: f"etag:{meta.get('e_tag')}:{meta.get('size')}:{meta.get('version')}"}


def input_digest(source: Any, files: Sequence[Path] | None = None) -> dict[str, str] | None:
    """The content digest of a source: its files' (``files``, else it lists them), its
    in-memory array's, or a remote object's e-tag and version; None if it has none (a dask
    array, a GDAL ``/vsi…/`` path)."""
    files = source.content_files() if files is None else files
    if files:
        return files_digest(files)
    url = getattr(source, "path", None) if getattr(source, "remote", False) else None
    if isinstance(url, str) and "://" in url:
        return object_version(url)
    array = source.in_memory()
    return array_digest(array) if array is not None else None


def start_input_digest(source: Any) -> concurrent.futures.Future[dict[str, str] | None]:
    """:func:`input_digest` in a background thread (file reads and CRC release the GIL). The
    files are listed here, in the calling thread: listing opens the input, and the readers'
    warnings are silenced process-wide while it does (see ``quiet_readers``)."""
    files = source.content_files()
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tilerun-digest")
    future = pool.submit(input_digest, source, files or ())
    pool.shutdown(wait=False)
    return future


def file_stats(source: Any) -> dict[str, tuple[int, int]]:
    """Size and modification time (ns) of each of the source's files, taken as a run starts,
    so that a file rewritten *while* the run reads it is noticed before the output is
    published (:func:`changed_file`); the content digest answers for what happens between
    runs."""
    stats = {}
    for path in source.content_files() or ():
        try:
            stat = Path(path).stat()
        except OSError:
            continue
        stats[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return stats


def changed_file(stats: Mapping[str, tuple[int, int]]) -> str | None:
    """The first file of :func:`file_stats` whose size or time stamp moved since, or None."""
    for name, (size, mtime) in stats.items():
        try:
            stat = Path(name).stat()
        except OSError:
            return name
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
            return name
    return None


def inputs_match(before: Any, now: Any) -> bool:
    """Whether the input digested ``now`` is the one digested ``before``: every file read
    then is unchanged (a file missing then may have appeared)."""
    if not isinstance(before, dict) or not isinstance(now, dict):
        return before == now
    return all(now.get(name) == digest for name, digest in before.items())


def same_job(stored: Mapping[str, Any], attrs: Mapping[str, Any]) -> bool:
    """Whether the record ``stored`` is of the job whose attributes are ``attrs``: the same
    fingerprint (options, model, layout) and the same input content."""
    before, now = stored.get("job"), attrs.get("job")
    if stored.get("fingerprint") != attrs.get("fingerprint") or not isinstance(before, dict) \
            or not isinstance(now, dict):
        return False
    return inputs_match(before.get(INPUT_DIGEST), now.get(INPUT_DIGEST))


def model_digest(model: Any) -> str:
    """The model's weights (its file, else its parameters and buffers) and its spec (the
    normalisation and everything else the run takes from it)."""
    path = Path(model.name)
    if path.is_file():
        weights = file_digest(path)
    else:
        import torch

        crc = 0
        for name, tensor in model.module.state_dict().items():
            raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
            raw.flags.writeable = False
            crc = google_crc32c.extend(crc, name.encode())
            crc = google_crc32c.extend(crc, raw)
        weights = f"crc32c:{crc:08x}:module"
    spec = hashlib.sha256(repr(model.spec).encode()).hexdigest()[:8]
    return f"{weights}/spec:{spec}"


def fingerprint(job: Mapping[str, Any]) -> str:
    """A short hash of the job record but the input's digest (compared by
    :func:`inputs_match`)."""
    rest = {k: v for k, v in job.items() if k != INPUT_DIGEST}
    text = json.dumps(rest, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plain(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job as stored (JSON types: tuples become lists), to compare with a stored one."""
    return dict(json.loads(json.dumps(job, sort_keys=True, default=str)))


def differences(stored: Mapping[str, Any], current: Mapping[str, Any], shown: int = 3) -> str:
    """What differs between a stored record's job and the current one, in a few words: e.g.
    ``the input's content differs (crc32c:1a… then, crc32c:9f… now)``."""
    before, now = stored.get("job"), current.get("job")
    if not isinstance(before, dict) or not isinstance(now, dict):
        return "input, model or options differ"
    now = plain(now)
    keys = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if INPUT_DIGEST in keys and inputs_match(before.get(INPUT_DIGEST), now.get(INPUT_DIGEST)):
        keys.remove(INPUT_DIGEST)
    if not keys:
        return "its tilerun version's record differs"
    parts = [_difference(k, before.get(k), now.get(k)) for k in keys[:shown]]
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return "; ".join(parts) + more


def _difference(key: str, before: Any, now: Any) -> str:
    if key == INPUT_DIGEST and isinstance(before, dict) and isinstance(now, dict):
        changed = [Path(n).name for n, d in before.items() if now.get(n) != d]
        gone = [Path(n).name for n in before if n not in now]
        what = ", ".join(f"{n} is gone" if n in gone else f"{n} was rewritten"
                         for n in changed[:2])
        return f"the input's content differs ({what}; size and time stamp are not trusted)"
    return f"{LABELS.get(key, key)} differs ({_short(before)} then, {_short(now)} now)"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "…"
