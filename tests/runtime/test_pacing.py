"""The pacer keeps absolute deadlines: a late tick does not push the schedule back, and lateness is measured."""

from signalwise.runtime.live.pacing import Pacer


class FakeClock:
    """A clock the test moves; sleeping moves it by the asked time plus a fixed oversleep."""

    def __init__(self, oversleep_s=0.0):
        self.now = 100.0
        self.oversleep_s = oversleep_s
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s + self.oversleep_s


def test_deadlines_are_absolute_and_lateness_is_measured():
    clock = FakeClock(oversleep_s=0.002)
    pacer = Pacer(10.0, start_sim_s=0.0, clock=clock, sleep=clock.sleep)
    assert abs(pacer.wait_until(1.0) - 0.002) < 1e-9  # due at 100.1, woke 2 ms late
    assert abs(clock.slept[0] - 0.1) < 1e-9
    clock.now += 0.5  # a tick whose work overran by far
    late = pacer.wait_until(2.0)  # due at 100.2
    assert abs(late - (clock.now - 100.2)) < 1e-9 and len(clock.slept) == 1  # no sleep when already late
    clock.now = 100.25
    pacer.wait_until(3.0)  # due at 100.3: the schedule did not move back
    assert abs(clock.slept[-1] - 0.05) < 1e-9


def test_unpaced_never_sleeps_and_rebase_restarts_the_schedule():
    clock = FakeClock()
    pacer = Pacer(None, 0.0, clock=clock, sleep=clock.sleep)
    assert pacer.wait_until(1e6) == 0.0 and not clock.slept
    pacer.set_speed(1.0, sim_s=50.0)
    clock.now += 0.0
    pacer.wait_until(51.0)
    assert abs(clock.slept[-1] - 1.0) < 1e-9
