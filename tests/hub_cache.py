"""Build a Hugging Face Hub cache on disk, as huggingface_hub lays it out, so hub tests run offline."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


def add_to_hub_cache(cache_dir: Path, repo_id: str, files: dict[str, Path], revision: str = "main") -> Path:
    """Place ``files`` (name in repo -> local file) in ``cache_dir`` as snapshot of ``repo_id``@``revision``."""
    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    for name, source in files.items():
        blob = repo_dir / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, blob)
        target = repo_dir / "snapshots" / commit / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(blob)
    return repo_dir / "snapshots" / commit
