"""The live progress line of a long command (rich): a label, a bar, the command's own fields, elapsed, ETA.

One display for every command: ``fastscratch train`` shows
``Epoch 12/500 ━━━━━ loss 0.31 acc 91.2% 0.29s/ep 0:00:05 ETA 0:02:21``;
``fastscratch study run`` can show ``seed ━━━━━ 12 done, 0 failed, 28 remaining
0:01:10 ETA 0:03:00`` with the same class. Numbers are never cut: the bar
shrinks instead. Nothing is drawn on a quiet console or one that is not a
terminal (a log gets the command's own lines instead).
"""
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
