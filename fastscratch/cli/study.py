"""``fastscratch study run|report|compare``: the command line of comparison studies."""
import argparse
import sys

from fastscratch.cli.options import EXIT_INTERRUPTED
from fastscratch.cli.options import size as _size

EXIT_FAILED_CELLS = 1


def add_study_parser(commands):
    """Add ``study`` and its subcommands to the ``commands`` of ``fastscratch``'s parser."""
    study = commands.add_parser(
        "study", help="run, report and compare comparison studies (needs fastscratch[study])",
        description="Comparison studies: a declared grid of implementations and settings run on Dask, "
                    "every timing checked against the reference, results kept in DIR/results.jsonl.")
    sub = study.add_subparsers(dest="study_command", metavar="SUBCOMMAND", required=True)

    run = sub.add_parser("run", help="run the cells of SPEC not yet in DIR",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                         description="Run the cells of the study SPEC (TOML) that DIR/results.jsonl does not hold "
                                     "yet; the same command again resumes. Ctrl-C keeps every finished cell.")
    run.add_argument("spec", metavar="SPEC", help="the study's TOML file")
    run.add_argument("--out", required=True, metavar="DIR", help="results directory (created if missing)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on this Dask scheduler (tcp://HOST:8786) instead of a local cluster")
    where.add_argument("--workers", type=_size, default=None, metavar="N",
                       help="local worker processes (default 1); more than one shares the machine's cores, "
                            "for outcome studies only: their timings are marked shared")
    run.add_argument("--retry-failed", action="store_true", help="run failed cells again")
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.set_defaults(run=_run, parser=run)

    report = sub.add_parser("report", help="write DIR/report.md and its charts")
    report.add_argument("dir", metavar="DIR")
    report.set_defaults(run=_report, parser=report)

    compare = sub.add_parser("compare", help="ratio per cell of B against A; flag changes beyond the noise",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    compare.add_argument("a", metavar="DIR_A")
    compare.add_argument("b", metavar="DIR_B")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance of the Mann-Whitney U test")
    compare.add_argument("--factor", type=float, default=1.1, help="smallest ratio worth flagging (asv's default)")
    compare.set_defaults(run=_compare, parser=compare)
    return study


def _needs_extra():
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("fastscratch study needs Dask: pip install 'fastscratch[study]'", file=sys.stderr)
        return False
    return True


def _run(args, parser):
    from fastscratch.study import spec
    try:
        study = spec.load(args.spec)
    except spec.SpecError as err:
        parser.error(str(err))
    if not _needs_extra():
        return 2
    from rich.console import Console
    from fastscratch.study import results, run
    console = Console(stderr=True)
    display = _Display(None if args.quiet else console, study)
    try:
        progress = run.run(study, args.out, scheduler=args.scheduler, workers=args.workers,
                           retry_failed=args.retry_failed, on_start=display.start, on_result=display.update)
    except (run.ClusterError, results.BusyError, OSError, ValueError) as err:  # e.g. an unusable --out
        display.stop()
        console.print(f"fastscratch study run: {err}", style="red")
        return EXIT_FAILED_CELLS
    except KeyboardInterrupt:
        display.stop()
        console.print(f"interrupted: every finished cell is in {args.out}/results.jsonl; "
                      "run the same command again to resume", style="yellow")
        return EXIT_INTERRUPTED
    display.stop()
    console.print(f"{progress.done} cell-repeats run ({progress.failed} failed), {progress.skipped} already in "
                  f"{args.out}/results.jsonl")
    return EXIT_FAILED_CELLS if progress.failed else 0


class _Display:
    """A live line: cells done / failed / remaining and the ETA; failures printed as they land."""

    def __init__(self, console, study):
        self.console, self.study, self.live, self.task = console, study, None, None

    def start(self, progress):
        if self.console is None:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        self.live = Progress(TextColumn(f"[bold]{self.study.name}"), BarColumn(),
                             TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                             TextColumn("ETA {task.fields[eta]}"), console=self.console)
        self.task = self.live.add_task("", total=progress.total, counts=self._counts(progress), eta="?")
        self.live.start()

    @staticmethod
    def _counts(progress):
        return (f"{progress.done} done, {progress.failed} failed, {progress.remaining} remaining"
                + (f" ({progress.skipped} from before)" if progress.skipped else ""))

    def update(self, record, progress):
        if self.live is None:
            return
        if record["status"] != "ok":
            self.console.print(f"[red]failed[/] {record['implementation']} {record['dtype']} "
                               f"{record['hidden']} batch {record['batch_size']} repeat {record['repeat']}: "
                               f"{record['error']}")
        eta = progress.eta()
        self.live.update(self.task, completed=progress.done, counts=self._counts(progress),
                         eta="?" if eta is None else f"{int(eta // 60)}:{int(eta % 60):02d}")

    def stop(self):
        if self.live is not None:
            self.live.stop()


def _report(args, parser):
    from fastscratch.study import report
    try:
        path = report.write(args.dir)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(path)
    return 0


def _compare(args, parser):
    from fastscratch.study import compare
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha must be between 0 and 1, got {args.alpha}")
    if not args.factor >= 1:
        parser.error(f"--factor must be >= 1, got {args.factor}")
    try:
        rows = compare.compare(args.a, args.b, alpha=args.alpha, factor=args.factor)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(compare.format_table(rows, args.alpha, args.factor))
    return 0
