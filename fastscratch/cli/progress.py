"""The progress of a long command: a live line on a terminal (rich), plain lines now and then in a log.

One display for every command: ``fastscratch train`` shows
``Epoch 12/500 ━━━━━ loss 0.31 acc 91.2% 0.29s/ep 0:00:05 ETA 0:02:21``;
``fastscratch study run`` can show ``seed ━━━━━ 12 done, 0 failed, 28 remaining
0:01:10 ETA 0:03:00`` with the same class. Numbers are never cut: the bar
shrinks instead. Nothing is drawn on a quiet console or one that is not a
terminal (a log gets the command's own lines instead). A command without
lines of its own (``study run``, whose steps can take minutes) gives a log
:class:`LogLines` instead.
"""
import threading
import time

from fastscratch.cli.text import duration


class LiveLine:
    """One live line for a task of ``total`` steps.

    ``label`` is shown as given (no rich markup: a study's name may hold
    ``[``), in ``label_style``; ``count`` adds ``done/total`` after it.
    ``parts`` are rich format strings over the task's fields, written
    ``{name}`` (markup such as ``[red]{loss}[/]`` allowed; a field's value is
    never read as markup); ``fields`` are their first values, ``eta``
    included (default "estimating…").

    Use it as a context manager, or call ``start`` and ``stop``; ``update``
    sets the steps done and any fields; ``print`` writes a line above it.
    """

    def __init__(self, console, total, label, parts=(), *, count=True, label_style="", **fields):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column

        whole = {"table_column": Column(no_wrap=True)}  # numbers are never cut; the bar shrinks instead
        label = label.replace("{", "{{").replace("}", "}}")  # the label is text, not a format string
        columns = [TextColumn(label, style=label_style, markup=False, **whole)]
        if count:
            columns.append(MofNCompleteColumn(**whole))
        columns.append(BarColumn(bar_width=None))
        columns += [TextColumn(_fields_of_task(part), **whole) for part in parts]
        columns += [TimeElapsedColumn(**whole), TextColumn("ETA {task.fields[eta]}", **whole)]
        self.console = console
        self.progress = Progress(*columns, console=console,
                                 disable=console.quiet or not console.is_terminal)
        fields.setdefault("eta", "estimating…")
        self.task = self.progress.add_task(label, total=total, **{k: _plain(v) for k, v in fields.items()})

    def update(self, completed, **fields):
        self.progress.update(self.task, completed=completed, **{k: _plain(v) for k, v in fields.items()})

    def print(self, *args, **kwargs):
        self.console.print(*args, **kwargs)

    def start(self):
        self.progress.start()
        return self

    def stop(self):
        self.progress.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class LogLines:
    """Progress as plain lines, for a console that is not a terminal (a log file, a pipe, a CI job).

    Each line reads ``LABEL: DONE/TOTAL (PCT%), TEXT, elapsed H:MM:SS, ETA
    ETA``, ``text`` and ``eta`` being callables read when the line is printed.
    ``start`` prints the first line. After ``update``, a line is printed
    when the count has reached a further tenth (``step``) of the total and at
    least ``interval`` seconds have passed since the last line (a tenth reached
    sooner is said by the first update after that); while no line is printed
    for ``6 * interval`` seconds, one is printed anyway, cells finished or not,
    so a log shows the command is alive (``interval=0``: every tenth at once,
    and no such line). ``stop`` prints the last state unless it was just said.
    A quiet console or a terminal (where the live line is) gets nothing.
    """

    def __init__(self, console, total, label, text, eta, *, interval=10.0, step=0.1, clock=time.monotonic):
        self.console, self.total, self.label, self.text, self.eta = console, total, label, text, eta
        self.interval, self.step, self.clock = interval, step, clock
        self.enabled = not console.quiet and not console.is_terminal
        self.done = self.said_done = 0
        self.said_at = self.started = None
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = None

    def start(self):
        if self.enabled:
            self.started = self.clock()
            self._say()
            if self.interval > 0:
                self.thread = threading.Thread(target=self._keep_alive, name="fastscratch-progress", daemon=True)
                self.thread.start()
        return self

    def update(self, done):
        if not self.enabled:
            return
        with self.lock:
            self.done = done
            if self._tenth(done) > self._tenth(self.said_done) and self.clock() - self.said_at >= self.interval:
                self._say()

    def stop(self):
        if not self.enabled or self.stopped.is_set():
            return
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        with self.lock:
            if self.done != self.said_done:
                self._say()

    def _tenth(self, done):
        return int(done / self.total / self.step + 1e-9) if self.total else 0

    def _keep_alive(self):
        quiet = 6 * self.interval
        while not self.stopped.wait(max(0.0, self.said_at + quiet - self.clock())):
            with self.lock:
                if self.clock() - self.said_at >= quiet:
                    self._say()

    def _say(self):
        """Print the line (the lock held, or before the thread starts)."""
        now = self.clock()
        percent = int(100 * self.done / self.total) if self.total else 100
        eta = self.eta()
        self.console.print(f"{self.label}: {self.done}/{self.total} ({percent}%), {self.text()}, elapsed "
                           f"{duration(now - self.started)}, ETA {'?' if eta is None else duration(eta)}",
                           markup=False, highlight=False)
        self.said_done, self.said_at = self.done, now

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _fields_of_task(part):
    """``"loss [red]{loss}[/]"`` as rich's ``"loss [red]{task.fields[loss]}[/]"``."""
    import string

    out = []
    for text, name, spec, conversion in string.Formatter().parse(part):
        out.append(text.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            out.append("{task.fields[" + name + "]" + (f"!{conversion}" if conversion else "")
                       + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def _plain(value):
    """A field's value as text that rich shows as it is: ``[peers]`` is not markup."""
    from rich.markup import escape

    return escape(str(value))


def eta(seconds_per_step, total):
    """The time left, from the last 20 steps after the first (which holds the setup), as ``h:mm:ss``."""
    remaining = total - len(seconds_per_step)
    if remaining == 0:
        return duration(0)
    recent = seconds_per_step[1:][-20:]
    if not recent:
        return "estimating…"
    return duration(remaining * sum(recent) / len(recent))
