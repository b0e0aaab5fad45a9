"""Config dataclasses <-> JSON-ready dicts, for checkpoints and run folders.

``to_dict`` is ``dataclasses.asdict`` plus a ``"type"`` tag on every field declared as a union of
dataclasses (e.g. ``backbone: ResNetConfig | SwinConfig`` -> ``{"type": "resnet", ...}``);
``from_dict`` rebuilds the tree from the type hints (lists become tuples where typed so) and names
any field that does not fit in a one-line OvavssError.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import OvavssError

T = TypeVar("T")


def _members(hint: Any) -> tuple[Any, ...]:
    """The types of a union hint (``X | Y | None`` -> (X, Y)), or (hint,)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(arg for arg in typing.get_args(hint) if arg is not type(None))
    return (hint,)


def _tag(cls: type) -> str:
    return cls.__name__.removesuffix("Config").lower()


def to_dict(config: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(config))
    data: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            tagged = sum(dataclasses.is_dataclass(m) for m in _members(hints[field.name])) > 1
            data[field.name] = {"type": _tag(type(value)), **to_dict(value)} if tagged else to_dict(value)
        else:
            data[field.name] = copy.deepcopy(value)
    return data


def from_dict(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    if not isinstance(data, Mapping):
        raise OvavssError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise OvavssError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        classes = [m for m in _members(hints[name]) if dataclasses.is_dataclass(m)]
        if classes and value is not None:
            value = dict(value)
            if len(classes) > 1:  # a tagged union
                tags = {_tag(c): c for c in classes}
                tag = value.pop("type", None)
                if tag not in tags:
                    raise OvavssError(f"{where}.{name}: type must be one of {', '.join(tags)}, got {tag!r}")
                classes = [tags[tag]]
            value = from_dict(classes[0], value, f"{where}.{name}")
        elif isinstance(value, list) and any(typing.get_origin(m) is tuple for m in _members(hints[name])):
            value = tuple(value)
        values[name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise OvavssError(f"{where}: {error}") from None
