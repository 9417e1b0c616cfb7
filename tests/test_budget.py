import pytest

from deepfake_kernel.budget import Level, TimeBudget, default_ladder, parse_duration


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


def test_ladder_degrades_then_skips():
    ladder = default_ladder(32, ["xception", "resnet50", "effnet"], "effnet")
    assert ladder[0] == Level(32, ("xception", "resnet50", "effnet")) and ladder[-1] == Level(8, ("effnet",))
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
    ladder = default_ladder(8, ["m"])
    budget = TimeBudget(10.0, 3, ladder, min_reserve=1.0, clock=clock)
    budget.record(budget.choose(), 4.0)
    clock.now = 9.5
    assert budget.choose() is None


def test_no_budget_always_full():
    ladder = default_ladder(16, ["a", "b"])
    budget = TimeBudget(None, 5, ladder)
    assert budget.choose() == ladder[0]
