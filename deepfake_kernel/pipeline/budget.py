"""Time budget: pace a run so it always ends in time and every video gets a row.

The budget knows a ladder of levels, from the configuration asked for down to the light preset (fewer frames,
the lightest member, face detection on every 4th frame at reduced size) and below. Before each video it picks
the richest level whose estimated cost, times the videos still to do, fits the time left (minus a safety reserve); when not even the lightest level fits one more video it answers
``None`` and the caller writes the fallback score. Estimates start from measured seconds per video and fall
back to scaling the slowest measured level by its share of frames and models.
"""
from __future__ import annotations

import dataclasses
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
    """One rung of the ladder (also a named preset): frames per video, the members to run, and face detection on
    every ``detect_every``-th frame resized to ``detect_long_side`` pixels. ``decode_ahead``: how many of the next
    videos are decoded in the background while this one is scored (how it runs, not what it scores)."""

    frames: int
    models: tuple[str, ...]
    detect_every: int = 1
    detect_long_side: int = 1000
    name: str = field(default="", compare=False)
    decode_ahead: int = field(default=1, compare=False)

    def relative_cost(self, top: "Level") -> float:
        """Rough share of ``top``'s cost: decoding scales with frames, detection with the frames it runs on and
        their pixels, the members with frames and their count (weights 0.3 / 0.3 / 0.4)."""
        def detection(level: Level) -> float:
            return level.frames / level.detect_every * level.detect_long_side ** 2

        return (0.3 * self.frames / top.frames + 0.3 * detection(self) / detection(top)
                + 0.4 * self.frames * len(self.models) / (top.frames * max(1, len(top.models))))

    def describe(self) -> str:
        text = f"{self.frames} frames x {len(self.models)} models"
        if self.detect_every > 1 or self.detect_long_side != 1000:
            text += f", detection every {self.detect_every} at {self.detect_long_side}px"
        return text


PRESET_NAMES = ("full", "light")


def presets(models: list[str], lightest: str) -> dict[str, Level]:
    """``full``: every member, 32 frames, MTCNN on every frame at 1000 px, the next video decoded meanwhile.
    ``light`` (CPUs, tight budgets): the lightest member, 16 frames, MTCNN on every 4th frame at 640 px with the
    tracks interpolated between; decoding dominates it, so the next *two* videos are decoded meanwhile, each on one
    FFmpeg thread (two videos at once use two cores better than one video on FFmpeg's threads: docs/bench.md)."""
    return {"full": Level(32, tuple(models), name="full"),
            "light": Level(16, (lightest,), detect_every=4, detect_long_side=640, name="light", decode_ahead=2)}


MAX_DECODE_AHEAD = 8  # background decoders, each holding a video's frames


def check_decode_ahead(videos: int) -> None:
    """``--decode-ahead`` of ``predict`` and ``bench``: 1 to :data:`MAX_DECODE_AHEAD` (``ValueError`` otherwise)."""
    if not 1 <= videos <= MAX_DECODE_AHEAD:
        raise ValueError(f"--decode-ahead must lie in [1, {MAX_DECODE_AHEAD}] (--no-prefetch decodes nothing ahead), "
                         f"not {videos}")


def default_ladder(top: Level, light: Level | None = None) -> list[Level]:
    """``top`` → ``top`` at half the frames → the ``light`` preset → ``light`` at half, then a quarter of its
    frames; only rungs cheaper than the one above are kept."""
    light = light or Level(top.frames // 2, top.models[-1:], max(4, top.detect_every),
                           min(640, top.detect_long_side), name="light", decode_ahead=2)
    half = dataclasses.replace(top, frames=max(4, top.frames // 2), name=f"{top.name or 'top'}/2")
    candidates = [top, half, light, dataclasses.replace(light, frames=max(4, light.frames // 2),
                                                        name=f"{light.name or 'light'}/2"),
                  dataclasses.replace(light, frames=max(2, light.frames // 4), name=f"{light.name or 'light'}/4")]
    ladder = [top]
    for level in candidates[1:]:
        if level.relative_cost(top) < ladder[-1].relative_cost(top):
            ladder.append(level)
    return ladder


@dataclass
class TimeBudget:
    """Pace ``total_items`` over ``seconds``; call :meth:`choose` before and :meth:`record` after each item."""

    seconds: float | None
    total_items: int
    ladder: list[Level]
    reserve_fraction: float = 0.02
    min_reserve: float = 2.0
    trusted_samples: int = 5
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
        """Expected seconds per item at ``level``: its own mean once it has ``trusted_samples`` items, else every
        measurement so far (its own included) scaled by relative cost and pooled, so that one slow video at a
        level seen once does not keep the run off that level."""
        own = self.observed.get(level)
        if own is not None and own[1] >= self.trusted_samples:
            return own[0] / own[1]
        if not self.observed:
            return None
        top = self.ladder[0]
        scaled = sum(total * level.relative_cost(top) / known.relative_cost(top)
                     for known, (total, _) in self.observed.items())
        return scaled / sum(count for _, count in self.observed.values())

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
