"""The explorer's decode line: first come first served, a streamed decode
keeps its place between instalments, and an abandoned place is given up."""

import threading
import time

from ui.decode_line import DecodeLine


def _run(line, ticket, name, log, instalments=3, work_s=0.02):
    for i in range(instalments):
        with line.turn(ticket, poll_s=0.01):
            log.append((name, i))
            time.sleep(work_s)
    line.leave(ticket)


def test_decodes_are_served_in_order_of_arrival_and_never_interleave():
    line, log = DecodeLine(), []
    tickets = [line.join() for _ in range(4)]  # arrival order 0..3
    threads = [threading.Thread(target=_run, args=(line, t, f"d{t}", log)) for t in reversed(tickets)]  # started in reverse
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert [name for name, _ in log] == [f"d{t}" for t in tickets for _ in range(3)]
    assert len(line) == 0


def test_an_abandoned_place_is_given_up_after_the_grace_period():
    line, log = DecodeLine(grace_s=0.2), []
    gone = line.join()
    with line.turn(gone):  # one instalment, then the visitor leaves without leave()
        pass
    waiting = line.join()
    start = time.monotonic()
    _run(line, waiting, "next", log, instalments=1)
    assert 0.15 < time.monotonic() - start < 2 and log == [("next", 0)]
    assert line.ahead_of(gone) == 0 and len(line) == 0


def test_the_wait_callback_says_how_many_are_ahead():
    line, seen = DecodeLine(), []
    first, second = line.join(), line.join()
    release = threading.Event()

    def hold():
        with line.turn(first):
            release.wait(5)
        line.leave(first)

    th = threading.Thread(target=hold)
    th.start()
    time.sleep(0.05)
    threading.Timer(0.3, release.set).start()
    with line.turn(second, on_wait=seen.append, poll_s=0.05):
        pass
    th.join(5)
    assert seen and set(seen) == {1}
