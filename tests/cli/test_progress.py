"""The live progress line: epochs counted as in the log and history.csv, an ETA without the setup, 80 columns;
any command's fields shown as text, never as markup."""
import pytest
from rich.console import Console

from fastscratch.cli import progress, train


def console(width):
    return Console(width=width, record=True, force_terminal=True, highlight=False, markup=False)


def render(line, completed, **fields):
    line.update(completed, **fields)
    line.console.print(line.progress.make_tasks_table(line.progress.tasks))
    return line.console.export_text().rstrip("\n")


@pytest.mark.parametrize("num_epochs, done, loss, accuracy, seconds, eta", [
    (500, 1, "4.436700", "12.19%", "5.95", "estimating…"),
    (500, 500, "0.045963", "94.83%", "0.29", "0:00:00"),
    (5000, 4999, "1.61235e+06", "100.00%", "12.34", "17:08:12"),  # ReLU-sized loss, slow epochs
])
def test_the_training_line_fits_in_80_columns_with_every_field_whole(num_epochs, done, loss, accuracy, seconds,
                                                                      eta):
    line = render(train.epoch_line(console(80), num_epochs), done, loss=loss, accuracy=accuracy, seconds=seconds,
                  eta=eta)
    assert len(line) <= 80 and "\n" not in line
    assert f"Epoch {done:>{len(str(num_epochs))}}/{num_epochs}" in line  # the number the log line prints
    assert f"loss {loss} acc {accuracy} {seconds}s/ep 0:00:00 ETA {eta}" in line  # elapsed not cut to 0:00:…


def test_labels_and_fields_are_shown_as_written_never_as_markup_or_format():
    """A study's name or a hint may hold brackets and braces: `pip install -e '.[peers]'` must stay whole."""
    line = progress.LiveLine(console(100), 40, "seed [bold]{x}", ["{counts}"], count=False,
                             label_style="bold", counts="make peers or pip install -e '.[peers]'", eta="?")
    text = render(line, 3)
    assert text.startswith("seed [bold]{x} ") and "pip install -e '.[peers]' " in text and text.endswith("ETA ?")
    assert "3/40" not in text  # count=False: the fields say the counts


def test_a_line_on_a_console_that_is_not_a_terminal_draws_nothing(capsys):
    with progress.LiveLine(Console(force_terminal=False), 3, "Epoch", ["{loss}"], loss="-") as line:
        line.update(1, loss="0.5")
    assert capsys.readouterr().out == ""


def test_eta_waits_for_an_epoch_after_the_first():
    assert progress.eta([9.0], 500) == "estimating…"  # the first epoch holds the setup (and a first compilation)
    assert progress.eta([9.0, 0.3], 500) == "0:02:29"  # 498 epochs at 0.3 s, the first ignored
    assert progress.eta([9.0, 0.3, 0.5], 500) == "0:03:19"  # 497 at the mean 0.4 s
    assert progress.eta([9.0], 1) == "0:00:00"


def test_eta_follows_the_last_20_epochs():
    assert progress.eta([9.0] + [10.0] * 10 + [1.0] * 20, 131) == "0:01:40"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def log_lines(total, interval=10.0, **kwargs):
    import io
    stream = io.StringIO()
    clock = Clock()
    done = {"n": 0}
    lines = progress.LogLines(Console(file=stream, force_terminal=False, width=60), total, "s[1]",
                              lambda: f"{done['n']} ok", lambda: None if not done["n"] else 7.0,
                              interval=interval, clock=clock, **kwargs)
    return lines, stream, clock, done


def said(stream):
    return [line.split(",")[0] for line in stream.getvalue().splitlines()]


def test_log_lines_at_each_tenth_at_most_one_per_interval():
    """A first line; then a line when a further tenth is reached and the interval has passed since the last
    one: a tenth reached sooner is said by the next update after it; the last state at stop."""
    lines, stream, clock, done = log_lines(20)
    lines.start()
    for n, seconds in [(1, 5), (2, 5), (3, 5), (4, 1), (5, 20), (6, 1), (10, 3), (11, 11), (19, 30)]:
        clock.now += seconds
        done["n"] = n
        lines.update(n)
    assert said(stream) == ["s[1]: 0/20 (0%)", "s[1]: 2/20 (10%)", "s[1]: 5/20 (25%)", "s[1]: 11/20 (55%)",
                            "s[1]: 19/20 (95%)"]
    lines.stop()
    lines.stop()
    assert said(stream)[-1] == "s[1]: 19/20 (95%)"  # stop says nothing new when the last line was the state
    assert stream.getvalue().splitlines()[-1] == "s[1]: 19/20 (95%), 19 ok, elapsed 0:01:21, ETA 0:00:07"


def test_log_lines_with_interval_zero_say_every_tenth_and_the_end():
    lines, stream, clock, done = log_lines(4, interval=0)
    with lines:
        for n in range(1, 4):
            lines.update(n)
        done["n"] = 4
        lines.update(4)
    assert said(stream) == ["s[1]: 0/4 (0%)", "s[1]: 1/4 (25%)", "s[1]: 2/4 (50%)", "s[1]: 3/4 (75%)",
                            "s[1]: 4/4 (100%)"]
    assert stream.getvalue().splitlines()[0] == "s[1]: 0/4 (0%), 0 ok, elapsed 0:00:00, ETA ?"


def test_log_lines_keep_a_silent_log_alive():
    """Nothing finishes for 6 intervals: a line anyway, so a log (or a CI job watching for output) sees the
    command alive; real time, small interval."""
    import io
    import time
    stream = io.StringIO()
    lines = progress.LogLines(Console(file=stream, force_terminal=False), 5, "long", lambda: "0 ok",
                              lambda: None, interval=0.02)
    with lines:
        deadline = time.monotonic() + 10
        while len(stream.getvalue().splitlines()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert said(stream)[:3] == ["long: 0/5 (0%)"] * 3


def test_log_lines_say_nothing_on_a_terminal_or_a_quiet_console(capsys):
    import io
    for console in (Console(file=io.StringIO(), force_terminal=True), Console(file=io.StringIO(), quiet=True)):
        with progress.LogLines(console, 3, "s", lambda: "", lambda: None, interval=0) as lines:
            lines.update(3)
        assert console.file.getvalue() == "" and lines.thread is None
