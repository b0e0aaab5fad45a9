"""The user's vocabulary for ``ovavss predict``: the names the model may give to sounding objects.

Two spellings of ``--vocab``:

* ``"dog, siren, church bell"``: comma-separated names;
* ``"@names.txt"``: one name per line (UTF-8). Blank lines are layout, not names, and are skipped;
  commas inside a line belong to the name.

Whitespace around and inside a name is normalised to single spaces. Empty names (``"dog,,siren"``),
an empty vocabulary and duplicates are errors. Duplicates are found case-insensitively because
CLIP's tokenizer lower-cases its input: "Dog" and "dog" would be one text embedding under two ids.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OvavssError
from .classes import NUM_LABELS

#: Label maps are 8-bit palette PNGs whose ids 1..70 index the vocabulary (0 = background).
MAX_VOCAB_SIZE = NUM_LABELS - 1


def parse_vocab(spec: str) -> tuple[str, ...]:
    """Parse ``--vocab``: ``"a, b, c"`` or ``"@file.txt"``; returns the names in the user's order."""
    spec = spec.strip()
    if spec.startswith("@"):
        return _validate(_read_vocab_file(Path(spec[1:])), source=spec[1:], file_lines=True)
    return _validate(spec.split(","), source="--vocab", file_lines=False)


def _read_vocab_file(path: Path) -> list[str]:
    if not path.is_file():
        raise OvavssError("vocabulary file not found", path=path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate the BOM some editors write
    except UnicodeDecodeError:
        raise OvavssError("vocabulary file is not UTF-8 text", path=path) from None
    return text.splitlines()


def _validate(raw_names: list[str], source: str, file_lines: bool) -> tuple[str, ...]:
    names: list[str] = []
    first_seen: dict[str, str] = {}
    for position, raw in enumerate(raw_names, start=1):
        name = " ".join(raw.split())
        where = f"line {position}" if file_lines else f"name {position}"
        if not name:
            if file_lines:
                continue
            raise OvavssError(f"{where} is empty (names are separated by single commas)", path=source)
        key = name.casefold()
        if key in first_seen:
            raise OvavssError(f"{where} '{name}' repeats {first_seen[key]} (names are case-insensitive)", path=source)
        first_seen[key] = where
        names.append(name)
    if not names:
        raise OvavssError("the vocabulary is empty; give at least one name", path=source)
    if len(names) > MAX_VOCAB_SIZE:
        raise OvavssError(f"{len(names)} names given; at most {MAX_VOCAB_SIZE} are supported", path=source)
    return tuple(names)
