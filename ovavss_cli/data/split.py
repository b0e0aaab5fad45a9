"""The AVSBench-OV split (OV-AVSS): 40 base and 30 novel classes, and which clips each split keeps.

The class lists are fixed by the OV-AVSS test scripts (``classes.BASE_IDS`` / ``NOVEL_IDS``,
ovavss-spec.md §9.4). How the training clips were chosen is **not** fixed anywhere: the split
script was never released and the AVSBench-OV archive is only on Baidu/OneDrive (spec §10). The
paper says novel categories are "never seen nor heard during training". Two readings, as rules:

``exclude-novel`` (default; hypothesis H1 of spec §10.3)
    A train clip is kept only if none of its sounding objects (``a_obj``) is a novel class: a
    novel class is then neither seen (masks) nor heard (audio) in training. On the released
    metadata.csv this keeps 5,436 of 8,498 train clips.
``ignore-novel`` (H2)
    A train clip is also kept when it has at least one base sounding object next to novel ones;
    its novel classes are listed in ``ignored_novel.ignore_ids`` so that a trainer ignores their
    pixels. Novel sounds are then heard in training, but never supervised. 6,159 train clips.

Both rules keep train clips without any sounding object (the ``background`` and
``off-the-screen`` rows, 26 in the release): they contain no novel class, and their all-background
masks teach the model that a sound may have no visible source. Dropping them would give 5,410
(H1) and 6,133 (H2). val and test keep every clip under both rules.

Neither count matches the 8,019 train clips implied by the released LR schedule (96,228
iterations = 12 x 8,019), and no simple combination reproduces it, so the paper's exact rule
remains uncertain; settle it by counting the videos of ``avsbench_ov_train_base.json`` when the
archive is available.

The rule looks only at ``a_obj``: ground-truth pixels of classes a clip does not list (label noise)
are left to the trainer / evaluator. The JSON is deterministic: fixed key order, sorted uids, no
timestamps or absolute paths, so the same metadata gives a byte-identical file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text, refuse_overwrite
from ..errors import OvavssError
from .avsbench import SPLITS, AVSSDataset, ClipMeta, load_avss
from .classes import BASE_IDS, LABEL_NAMES, NOVEL_IDS

SPLIT_FORMAT = "ovavss-split/1"
DEFAULT_RULE = "exclude-novel"
#: rule name -> one-line description written into the JSON.
RULES: dict[str, str] = {
    "exclude-novel": (
        "train keeps a clip only if none of its sounding objects (a_obj) is a novel class (novel classes are never "
        "seen nor heard); clips without a sounding object are kept; val and test keep every clip"
    ),
    "ignore-novel": (
        "train keeps a clip if it has no novel sounding object or at least one base sounding object; the novel "
        "classes of kept clips are listed in ignored_novel.ignore_ids (their pixels are to be ignored); clips "
        "without a sounding object are kept; val and test keep every clip"
    ),
}
DEFAULT_SPLIT_FILE = "avsbench-ov-split.json"


@dataclass(frozen=True)
class OvSplit:
    """An open-vocabulary split: class sets and the clip uids of each split."""

    rule: str
    base_ids: tuple[int, ...]
    novel_ids: tuple[int, ...]
    splits: dict[str, tuple[str, ...]]  # "train" / "val" / "test" -> sorted uids
    ignore_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)  # train uid -> novel ids to ignore
    dropped_train: tuple[str, ...] = ()  # train uids of the metadata the rule removed

    def uids(self, split: str) -> tuple[str, ...]:
        if split not in self.splits:
            raise OvavssError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return self.splits[split]

    def ignored(self, uid: str) -> tuple[int, ...]:
        """Novel class ids whose pixels a trainer must ignore in train clip ``uid`` (``()`` if none)."""
        return self.ignore_ids.get(uid, ())

    @property
    def counts(self) -> dict[str, int]:
        counts = {name: len(uids) for name, uids in self.splits.items()}
        counts["train_dropped"] = len(self.dropped_train)
        counts["train_with_ignored_novel"] = len(self.ignore_ids)
        return counts


def _train_decision(clip: ClipMeta, rule: str, novel: frozenset[int]) -> tuple[bool, tuple[int, ...]]:
    """``(keep, novel ids to ignore)`` for one train clip under ``rule``."""
    novel_here = tuple(i for i in clip.sounding_ids if i in novel)
    if not novel_here:
        return True, ()
    if rule == "ignore-novel" and len(novel_here) < len(clip.sounding_ids):
        return True, novel_here
    return False, ()


def make_ov_split(dataset: AVSSDataset, rule: str = DEFAULT_RULE) -> OvSplit:
    """Apply ``rule`` (a key of :data:`RULES`) to the dataset's metadata, with the paper's base / novel classes."""
    if rule not in RULES:
        raise OvavssError(f"unknown split rule {rule!r}; expected one of {', '.join(RULES)}")
    novel = frozenset(NOVEL_IDS)
    kept: dict[str, list[str]] = {name: [] for name in SPLITS}
    ignore_ids: dict[str, tuple[int, ...]] = {}
    dropped: list[str] = []
    for clip in dataset.clips:
        keep, ignored = _train_decision(clip, rule, novel) if clip.split == "train" else (True, ())
        if not keep:
            dropped.append(clip.uid)
            continue
        kept[clip.split].append(clip.uid)
        if ignored:
            ignore_ids[clip.uid] = ignored
    return OvSplit(
        rule=rule,
        base_ids=tuple(sorted(BASE_IDS)),
        novel_ids=tuple(sorted(novel)),
        splits={name: tuple(sorted(uids)) for name, uids in kept.items()},
        ignore_ids=dict(sorted(ignore_ids.items())),
        dropped_train=tuple(sorted(dropped)),
    )


def _class_list(ids: Sequence[int]) -> list[dict]:
    return [{"id": i, "name": LABEL_NAMES[i]} for i in ids]


def split_to_json(split: OvSplit) -> str:
    """The split file's text: fixed key order, 2-space indent, trailing newline."""
    document = {
        "format": SPLIT_FORMAT,
        "name": "AVSBench-OV",
        "rule": split.rule,
        "rule_description": RULES[split.rule],
        "base_classes": _class_list(split.base_ids),
        "novel_classes": _class_list(split.novel_ids),
        "counts": split.counts,
        "splits": {name: list(split.splits[name]) for name in SPLITS},
        "ignored_novel": {
            "description": "train uid -> novel class ids present in the clip whose pixels are to be ignored",
            "ignore_ids": {uid: list(ids) for uid, ids in split.ignore_ids.items()},
        },
        "dropped": {"train": list(split.dropped_train)},
    }
    return json.dumps(document, indent=2) + "\n"


def write_split(split: OvSplit, path: str | Path, force: bool = False) -> Path:
    """Write the split JSON atomically; an existing file is kept unless ``force``."""
    path = Path(path)
    refuse_overwrite(path, force)
    atomic_write_text(path, split_to_json(split))
    return path


def make_split_file(
    root: str | Path, out: str | Path = DEFAULT_SPLIT_FILE, rule: str = DEFAULT_RULE, force: bool = False
) -> OvSplit:
    """``ovavss make-split``: read ``root``'s metadata, apply ``rule``, write ``out``."""
    out = Path(out)
    refuse_overwrite(out, force)  # before reading a large metadata file
    split = make_ov_split(load_avss(root), rule)
    write_split(split, out, force=force)
    return split


# ----------------------------------------------------------------------------------------------
# Reading a split file back


def _expect(condition: bool, message: str, path: Path) -> None:
    if not condition:
        raise OvavssError(message, path=path)


def _read_classes(document: dict, key: str, path: Path) -> tuple[int, ...]:
    entries = document.get(key)
    _expect(isinstance(entries, list) and bool(entries), f"{key} must be a non-empty list", path)
    ids = []
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        _expect(isinstance(entry, dict) and type(entry.get("id")) is int, f"{where} needs an integer id", path)
        class_index = entry["id"]
        _expect(1 <= class_index < len(LABEL_NAMES), f"{where}: id {class_index} is not a class id 1..70", path)
        name = entry.get("name")
        _expect(
            name == LABEL_NAMES[class_index],
            f"{where}: id {class_index} is {LABEL_NAMES[class_index]!r}, not {name!r}",
            path,
        )
        ids.append(class_index)
    _expect(len(set(ids)) == len(ids), f"{key} lists a class twice", path)
    return tuple(sorted(ids))


def _read_uids(value: object, where: str, path: Path) -> tuple[str, ...]:
    _expect(
        isinstance(value, list) and all(isinstance(uid, str) and uid for uid in value),
        f"{where} must be a list of uids",
        path,
    )
    _expect(len(set(value)) == len(value), f"{where} lists a uid twice", path)
    return tuple(value)


def _section(document: dict, key: str, sub: str, default: object, path: Path) -> object:
    """``document[key][sub]`` with a default when ``key`` is absent (optional parts of the file)."""
    section = document.get(key, {})
    _expect(isinstance(section, dict), f"{key} must be an object", path)
    return section.get(sub, default)


def load_split(path: str | Path) -> OvSplit:
    """Read and validate a split file written by ``make-split``; OvavssError naming the file if it is bad."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OvavssError("split file not found", path=path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OvavssError(f"not a valid JSON split file ({error})", path=path) from None
    except OSError as error:
        raise OvavssError(f"cannot read ({error.strerror})", path=path) from None
    _expect(isinstance(document, dict), "not a split file (expected a JSON object)", path)
    _expect(
        document.get("format") == SPLIT_FORMAT, f"format is {document.get('format')!r}, expected {SPLIT_FORMAT!r}", path
    )
    rule = document.get("rule")
    _expect(rule in RULES, f"unknown rule {rule!r}; expected one of {', '.join(RULES)}", path)
    base, novel = _read_classes(document, "base_classes", path), _read_classes(document, "novel_classes", path)
    _expect(not set(base) & set(novel), "base_classes and novel_classes overlap", path)
    splits = document.get("splits")
    _expect(
        isinstance(splits, dict) and set(splits) == set(SPLITS), "splits must have exactly train, val and test", path
    )
    uids = {name: _read_uids(splits[name], f"splits.{name}", path) for name in SPLITS}
    ignored = _section(document, "ignored_novel", "ignore_ids", {}, path)
    _expect(isinstance(ignored, dict), "ignored_novel.ignore_ids must be an object", path)
    train = set(uids["train"])
    ignore_ids: dict[str, tuple[int, ...]] = {}
    for uid, ids in ignored.items():
        where = f"ignored_novel.ignore_ids[{uid!r}]"
        _expect(uid in train, f"{where}: not a train clip", path)
        valid = isinstance(ids, list) and bool(ids) and all(type(i) is int and i in novel for i in ids)
        _expect(valid, f"{where} must be a non-empty list of novel class ids", path)
        ignore_ids[uid] = tuple(ids)
    dropped = _read_uids(_section(document, "dropped", "train", [], path), "dropped.train", path)
    return OvSplit(rule, base, novel, uids, ignore_ids, dropped)
