"""Time budget: pace a run so it always ends in time and every video gets a row.

The budget knows a ladder of levels, from the full configuration down to the lightest (fewer frames, fewer
models). Before each video it picks the richest level whose estimated cost, times the videos still to do,
fits the time left (minus a safety reserve); when not even the lightest level fits one more video it answers
``None`` and the caller writes the fallback score. Estimates start from measured seconds per video and fall
back to scaling the slowest measured level by its share of frames and models.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def parse_duration(text: str | float | int | None) -> float | None:
    """``"9h"``, ``"30m"``, ``"1h30m"``, ``"90s"`` or plain seconds → seconds (``None`` stays ``None``)."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    text = text.strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms]?)", text)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([hms]?)", "", text).strip():
        raise ValueError(f"cannot read duration {text!r}; use e.g. 9h, 30m, 1h30m, 90s or seconds")
    return sum(float(value) * _UNITS[unit] for value, unit in parts)


@dataclass(frozen=True)
class Level:
    """One rung of the ladder: frames per video and the member names to run."""

    frames: int
    models: tuple[str, ...]

    def relative_cost(self, top: "Level") -> float:
        """Rough share of the top level's cost: decoding and detection scale with frames, models with count."""
        return (self.frames / top.frames) * (0.5 + 0.5 * len(self.models) / max(1, len(top.models)))


def default_ladder(frames: int, models: list[str], light_model: str | None = None) -> list[Level]:
    """Full → half frames → half frames with the lightest member → a quarter of the frames with it."""
    light = (light_model or models[-1],)
    ladder = [Level(frames, tuple(models)), Level(max(4, frames // 2), tuple(models)),
              Level(max(4, frames // 2), light), Level(max(2, frames // 4), light)]
    unique = []
    for level in ladder:
        if level not in unique:
            unique.append(level)
    return unique


@dataclass
class TimeBudget:
    """Pace ``total_items`` over ``seconds``; call :meth:`choose` before and :meth:`record` after each item."""

    seconds: float | None
    total_items: int
    ladder: list[Level]
    reserve_fraction: float = 0.02
    min_reserve: float = 2.0
    clock: callable = time.monotonic
    started: float = field(default=0.0, init=False)
    observed: dict = field(default_factory=dict, init=False)
    done: int = field(default=0, init=False)
    slowest_item: float = field(default=0.0, init=False)

    def __post_init__(self):
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        return float("inf") if self.seconds is None else self.seconds - self.elapsed()

    def reserve(self) -> float:
        if self.seconds is None:
            return 0.0
        return max(self.min_reserve, self.reserve_fraction * self.seconds, self.slowest_item)

    def estimate(self, level: Level) -> float | None:
        """Expected seconds per item at ``level``: its measured mean, or scaled from a measured level."""
        if level in self.observed:
            total, count = self.observed[level]
            return total / count
        top = self.ladder[0]
        for known, (total, count) in self.observed.items():
            return total / count * level.relative_cost(top) / known.relative_cost(top)
        return None

    def choose(self) -> Level | None:
        """The richest level that lets every remaining item finish in time, or ``None`` to skip this item."""
        if self.seconds is None:
            return self.ladder[0]
        left = self.remaining() - self.reserve()
        items_left = max(1, self.total_items - self.done)
        for level in self.ladder:
            cost = self.estimate(level)
            if cost is None:  # nothing measured yet: try the top level if it can possibly fit
                return level if left > 0 else None
            if cost * items_left <= left:
                return level
        lightest = self.estimate(self.ladder[-1])
        return self.ladder[-1] if lightest is not None and lightest <= left else None

    def record(self, level: Level | None, seconds: float) -> None:
        self.done += 1
        if level is None:
            return
        total, count = self.observed.get(level, (0.0, 0))
        self.observed[level] = (total + seconds, count + 1)
        self.slowest_item = max(self.slowest_item, seconds)
