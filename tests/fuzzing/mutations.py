"""Seeded mutations of real frames, for fuzzing a running server over its websocket.

The same seed gives the same frames, so a failure can be replayed. Mutations are text-level
(flip, insert, delete, repeat a span), JSON-level (a value swapped for one of another type,
a key added or dropped), splices of two frames, and deep wrapping.
"""

import json
import random
from typing import Any

ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**31, 2**63, 2**64 + 1, -(2**70), 1.5, 1e308, -0.0, "",
    "x" * 300, "\u0000", "\ud7ff\u00e9\u4e2d", "2026-13-45T99:99:99Z", "Accepted", [], {},
    [[[[]]]], {"a": {"b": {"c": {}}}}, "[2, \"x\"]", "\\", "\"",
]
SPECIAL = [*'[]{}",:0123456789-.eE tfn\\', "\u00e9", "\u4e2d", "\t", "\n"]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*path, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _json_mutation(rng: random.Random, frame: str) -> str:
    try:
        value = json.loads(frame)
    except ValueError:
        return frame
    path = rng.choice(_paths(value)[1:] or [()])  # the frame itself stays an array
    roll = rng.random()
    if roll < 0.6:
        value = _replace(value, path, rng.choice(ODD_VALUES))
    elif roll < 0.8 and path:
        parent = path[:-1]
        target = value
        for step in parent:
            target = target[step]
        target = dict(target) if isinstance(target, dict) else list(target)
        del target[path[-1]]
        value = _replace(value, parent, target)
    else:
        extra = {"surprise": rng.choice(ODD_VALUES)}
        node = value
        for step in path:
            node = node[step]
        if isinstance(node, dict):
            value = _replace(value, path, {**node, **extra})
    return json.dumps(value, ensure_ascii=rng.random() < 0.5)


def _text_mutation(rng: random.Random, frame: str) -> str:
    if not frame:
        return rng.choice(SPECIAL)
    i = rng.randrange(len(frame))
    j = min(len(frame), i + rng.randint(1, 8))
    roll = rng.random()
    if roll < 0.3:
        return frame[:i] + rng.choice(SPECIAL) + frame[i + 1:]
    if roll < 0.55:
        return frame[:i] + rng.choice(SPECIAL) + frame[i:]
    if roll < 0.8:
        return frame[:i] + frame[j:]
    return frame[:j] + frame[i:j] * rng.randint(1, 4) + frame[j:]


def mutate(rng: random.Random, seeds: list[str]) -> str:
    frame = rng.choice(seeds)
    for _ in range(rng.randint(1, 2)):
        roll = rng.random()
        if roll < 0.65:  # mostly readable frames: they reach validation and the handlers
            frame = _json_mutation(rng, frame)
        elif roll < 0.88:
            frame = _text_mutation(rng, frame)
        elif roll < 0.96:
            other = rng.choice(seeds)
            frame = frame[:rng.randrange(len(frame) + 1)] + other[rng.randrange(len(other)):]
        else:
            depth = rng.choice([10, 40, 200, 260, 600])
            frame = "[" * depth + frame + "]" * depth
    return frame
