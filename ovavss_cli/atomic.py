"""Writes that never leave a half-written file behind: write to a temporary sibling, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import OvavssError


def _umask() -> int:
    # os.umask can only be read by setting it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_permissions(path: Path, mode: int) -> None:
    """mkstemp / mkdtemp create private (0600 / 0700) entries; give them what open() / mkdir() would."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    _normal_permissions(tmp_path, 0o666)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def temporary_dir_beside(path: str | Path) -> Path:
    """A new hidden folder next to ``path`` (``.<name>.*.tmp``), to be renamed to ``path`` once complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _normal_permissions(tmp, 0o777)
    return tmp


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success rename it to ``path``.

    ``path`` must not exist yet (callers check ``--force`` and remove it first). On failure the
    temporary directory is deleted, so a reader never sees a half-filled output folder.
    """
    tmp = temporary_dir_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def refuse_overwrite(path: str | Path, force: bool) -> None:
    """Before any work: OvavssError if ``path`` is a folder, or an existing file and ``force`` is off."""
    path = Path(path)
    if path.is_dir():
        raise OvavssError("is a directory; give a file name", path=path)
    if path.exists() and not force:
        raise OvavssError("already exists; pass --force to overwrite", path=path)


def refuse_force_without_output(force: bool, outputs: dict[str, str | Path | None]) -> None:
    """``--force`` only overwrites the optional outputs named in ``outputs`` (option -> path or None): given
    with none of them, it would do nothing, so it is refused with one line."""
    if force and all(path is None for path in outputs.values()):
        raise OvavssError(f"--force: only with {' / '.join(outputs)} (the file it lets you overwrite)")


def refuse_existing_folder(path: str | Path) -> None:
    """Before any work: OvavssError if the output folder ``path`` already exists."""
    if Path(path).exists():
        raise OvavssError("already exists; choose another output folder or remove it", path=path)


# ---------------------------------------------------------------------------------------------
# output folders


def unique_folder(parent: Path, name: str, taken: Sequence[Path] = (), skip_existing: bool = True) -> Path:
    """``parent/name``, else ``name-1``, ``name-2``, ...: the first not in ``taken`` (nor on disk, by default)."""
    candidate, number = parent / name, 0
    while candidate in taken or (skip_existing and candidate.exists()):
        number += 1
        candidate = parent / f"{name}-{number}"
    return candidate


def output_or_sibling(out: Path | None, source: Path, suffix: str) -> Path:
    """``out`` as given, else a new ``<source><suffix>`` folder beside ``source`` (numbered, never existing)."""
    return Path(out) if out is not None else unique_folder(source.parent, source.name + suffix)


@contextlib.contextmanager
def output_folder(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``path`` when the block succeeds.

    An existing ``path`` is an error unless ``force``; then it is replaced only after the new
    folder is complete (on failure the old one is left as it was).
    """
    if path.exists() and not force:
        raise OvavssError("output folder already exists (pass --force to replace it, or choose another --out)", path)
    if path.exists() and not path.is_dir():
        raise OvavssError("exists and is not a folder", path=path)
    set_aside: Path | None = None
    try:
        with atomic_dir(path) as tmp:
            yield tmp
            if path.exists():  # --force: move the old results away only now that the new ones are complete
                set_aside = path.with_name(f".{path.name}.replaced-{os.getpid()}")
                os.replace(path, set_aside)
    except BaseException:
        if set_aside is not None and not path.exists():
            os.replace(set_aside, path)
        raise
    if set_aside is not None:
        shutil.rmtree(set_aside, ignore_errors=True)
