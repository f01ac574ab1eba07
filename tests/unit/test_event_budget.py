"""The websocket's event budget: bursts are dropped, only a flood that persists closes
the connection. Time is simulated (no sleeping)."""

from __future__ import annotations

from authdemo.ui.bridge import EventBudget, Verdict

RATE = 20  # AUTHDEMO_WS_EVENTS_PER_SECOND's default


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def budget(clock: SimulatedClock) -> EventBudget:
    return EventBudget(RATE, burst=2 * RATE, clock=clock)


def send_for(seconds: float, per_second: float, clock: SimulatedClock) -> list[Verdict]:
    """Evenly spaced events at ``per_second`` for ``seconds``; the verdicts until a close."""
    meter = budget(clock)
    verdicts: list[Verdict] = []
    for _ in range(int(seconds * per_second)):
        clock.now += 1 / per_second
        verdicts.append(meter.admit())
        if verdicts[-1] is Verdict.CLOSE:
            break
    return verdicts


def test_a_steady_80_percent_of_the_budget_for_a_minute_is_all_accepted() -> None:
    verdicts = send_for(60, 0.8 * RATE, SimulatedClock())
    assert set(verdicts) == {Verdict.ACCEPT}


def test_80_percent_of_the_budget_in_bursts_past_the_allowance_is_never_closed() -> None:
    """A 4-second burst every 5 seconds (16/s on average): each burst overflows the
    allowance and loses events, but the losses do not add up over the connection's life."""
    clock = SimulatedClock()
    meter = budget(clock)
    verdicts: list[Verdict] = []
    for _ in range(12):  # a minute
        for _ in range(4 * RATE):  # 80 events at once
            verdicts.append(meter.admit())
        clock.now += 5
    assert Verdict.DROP in verdicts  # the bursts are more than the allowance...
    assert Verdict.CLOSE not in verdicts  # ...but never a flood


def test_twice_the_budget_for_a_minute_is_throttled_but_not_closed() -> None:
    verdicts = send_for(60, 2 * RATE, SimulatedClock())
    assert Verdict.DROP in verdicts and Verdict.CLOSE not in verdicts


def test_three_times_the_budget_sustained_is_closed_within_seconds() -> None:
    clock = SimulatedClock()
    start = clock.now
    verdicts = send_for(60, 3 * RATE, clock)
    assert verdicts[-1] is Verdict.CLOSE
    assert clock.now - start < 15


def test_a_tight_loop_flood_is_closed_at_once() -> None:
    clock = SimulatedClock()
    start = clock.now
    verdicts = send_for(10, 10_000, clock)
    assert verdicts[-1] is Verdict.CLOSE
    assert clock.now - start < 0.1


def test_a_flood_is_closed_even_after_a_long_quiet_life() -> None:
    clock = SimulatedClock()
    meter = budget(clock)
    for _ in range(3600):  # an hour of one event per second
        clock.now += 1
        assert meter.admit() is Verdict.ACCEPT
    verdicts = []
    for _ in range(10_000):
        clock.now += 0.0001
        verdicts.append(meter.admit())
        if verdicts[-1] is Verdict.CLOSE:
            break
    assert verdicts[-1] is Verdict.CLOSE
