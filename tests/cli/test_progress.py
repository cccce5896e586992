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
