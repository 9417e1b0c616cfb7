import dataclasses

import pytest

from deepfake_kernel.pipeline.budget import Level, TimeBudget, default_ladder, parse_duration, presets


def test_parse_duration():
    assert parse_duration("9h") == 9 * 3600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("90s") == parse_duration("90") == parse_duration(90) == 90
    assert parse_duration(None) is None
    with pytest.raises(ValueError):
        parse_duration("soon")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_ladder_runs_from_the_full_preset_down_through_the_light_one():
    named = presets(["xception", "resnet50", "effnet"], "effnet")
    ladder = default_ladder(named["full"], named["light"])
    assert ladder[0] == Level(32, ("xception", "resnet50", "effnet"))
    assert named["light"] in ladder and named["light"].detect_every == 4 and named["light"].detect_long_side == 640
    costs = [level.relative_cost(ladder[0]) for level in ladder]
    assert costs == sorted(costs, reverse=True) and len(set(costs)) == len(costs)  # every rung is cheaper
    assert ladder[-1].models == ("effnet",) and ladder[-1].detect_every == 4 and ladder[-1].frames < 16
    assert "detection every 4 at 640px" in named["light"].describe()
    # asked for the light preset, the ladder only thins its frames
    light_first = default_ladder(named["light"], named["light"])
    assert light_first[0] == named["light"] and all(l.models == ("effnet",) for l in light_first)


def test_ladder_degrades_then_skips():
    named = presets(["xception", "resnet50", "effnet"], "effnet")
    ladder = default_ladder(named["full"], named["light"])
    clock = FakeClock()
    budget = TimeBudget(100.0, 20, ladder, min_reserve=1.0, clock=clock)
    # full level costs 10 s: 20 videos cannot all run at it, so the budget degrades
    level = budget.choose()
    assert level == ladder[0]
    clock.now += 10
    budget.record(level, 10.0)
    degraded = budget.choose()
    assert degraded != ladder[0] and budget.estimate(degraded) < 10
    chosen = []
    while budget.done < 20:
        level = budget.choose()
        chosen.append(level)
        cost = 0.0 if level is None else 10.0 * level.relative_cost(ladder[0])
        clock.now += cost
        budget.record(level, cost)
    assert clock.now <= 100.0  # never past the budget
    assert None not in chosen[:5]


def test_skips_when_time_is_gone():
    clock = FakeClock()
    ladder = default_ladder(Level(8, ("m",)))
    budget = TimeBudget(10.0, 3, ladder, min_reserve=1.0, clock=clock)
    budget.record(budget.choose(), 4.0)
    clock.now = 9.5
    assert budget.choose() is None


def test_no_budget_always_full():
    ladder = default_ladder(Level(16, ("a", "b")))
    budget = TimeBudget(None, 5, ladder)
    assert budget.choose() == ladder[0]


def test_one_slow_video_does_not_keep_the_run_off_a_level():
    """A level seen once (and slowly) is estimated from every measurement, scaled by relative cost, until it has
    enough samples of its own; then its own mean rules."""
    top, cheap = Level(16, ("a",)), Level(4, ("a",))
    budget = TimeBudget(None, 100, [top, cheap], trusted_samples=3)
    budget.record(top, 40.0)  # an unusually long first video
    for _ in range(9):
        budget.record(cheap, 1.0)
    ratio = top.relative_cost(top) / cheap.relative_cost(top)
    assert budget.estimate(top) == pytest.approx((40.0 + 9 * 1.0 * ratio) / 10)
    assert budget.estimate(top) < 40.0 / 2
    assert budget.estimate(cheap) == pytest.approx(1.0)  # 9 samples of its own
    for _ in range(2):
        budget.record(top, 40.0)
    assert budget.estimate(top) == pytest.approx(40.0)  # now trusted


def test_the_light_preset_and_its_rungs_decode_two_videos_ahead():
    named = presets(["a", "b"], "a")
    assert named["full"].decode_ahead == 1 and named["light"].decode_ahead == 2
    assert named["light"] == dataclasses.replace(named["light"], decode_ahead=1)  # how it runs, not what it scores
    ladder = default_ladder(named["full"], named["light"])
    assert [level.decode_ahead for level in ladder] == [1, 1, 2, 2, 2]
