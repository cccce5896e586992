"""``fastscratch study run|report|compare``: the command line of comparison studies."""
import os
import shlex
import signal
import sys

from fastscratch._interrupt import StopSignals
from fastscratch.cli import text
from fastscratch.cli.options import EXIT_FAILED, EXIT_USAGE, HelpFormatter, exit_code_of, seconds, size


def add_study_parser(commands):
    """Add ``study`` and its subcommands to the ``commands`` of ``fastscratch``'s parser."""
    study = commands.add_parser(
        "study", help="run, report and compare comparison studies (needs Dask)",
        description="Comparison studies: a declared grid of implementations and settings run on Dask, "
                    "every timing checked against the reference, results kept in DIR/results.jsonl.")
    sub = study.add_subparsers(dest="study_command", metavar="SUBCOMMAND", required=True)

    run = sub.add_parser("run", help="run the cells of SPEC not yet in DIR",
                         formatter_class=HelpFormatter,
                         description="Run the cells of the study SPEC (TOML) that DIR/results.jsonl does not hold "
                                     "yet; the same command again resumes. Ctrl-C keeps every finished cell.")
    run.add_argument("spec", metavar="SPEC", help="the study's TOML file")
    run.add_argument("--out", required=True, metavar="DIR", help="results directory (created if missing)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on this Dask scheduler (tcp://HOST:8786) instead of a local cluster")
    where.add_argument("--workers", type=size, default=None, metavar="N",
                       help="local worker processes (default 1); more than one shares the machine's cores, "
                            "for outcome studies only (timings marked shared), unless --cpus-per-worker pins them")
    run.add_argument("--cpus-per-worker", type=size, default=None, metavar="C",
                     help="bind each of the --workers local worker processes to C CPUs of its own, so timed cells "
                          "run side by side; a calibration cell, timed alone and with every worker busy, measures "
                          "what the neighbours cost (in the report)")
    run.add_argument("--retry-failed", action="store_true", help="run failed cells again")
    run.add_argument("--progress-interval", type=seconds, default=10.0, metavar="SECONDS",
                     help="where stderr is not a terminal (a log, a pipe, CI), progress is a plain line at each "
                          "tenth of the cell-repeats, at most one per SECONDS, and one after 6 x SECONDS without "
                          "any; on a terminal it is a live line")
    run.add_argument("--quiet", action="store_true", help="no progress display (failures and the summary remain)")
    run.set_defaults(run=_run, parser=run)

    report = sub.add_parser("report", help="write DIR/report.md and its charts")
    report.add_argument("dir", metavar="DIR")
    report.set_defaults(run=_report, parser=report)

    compare = sub.add_parser("compare", help="ratio per cell of B against A; flag changes beyond the noise",
                             description="Per cell both studies ran: its time in B against A, and its time "
                                         "against the same study's reference cell (the speed-up), which a change "
                                         "of the machine's load moves far less; a cell is flagged only when both "
                                         "changed beyond --factor with p < --alpha. Cells of one study only are "
                                         "listed.",
                             formatter_class=HelpFormatter)
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
        print(f"fastscratch study needs Dask: `{sys.executable} -m pip install 'dask[distributed]' threadpoolctl` "
              "(in a clone of fastscratch: `pip install -e '.[study]'`)", file=sys.stderr)
        return False
    return True


def _run(args, parser):
    from fastscratch.study import spec
    try:
        study = spec.load(args.spec)
    except spec.SpecError as err:
        parser.error(str(err))
    if args.cpus_per_worker is not None and args.scheduler is not None:
        parser.error("--cpus-per-worker pins the local workers: it does not combine with --scheduler")
    if not _needs_extra():
        return EXIT_USAGE
    from rich.console import Console
    from fastscratch.study import results, run
    if args.cpus_per_worker is not None:  # CPUs this machine lacks: refused before anything starts
        try:
            run.pinned_sets(args.workers or 1, args.cpus_per_worker, study.max_threads)
        except run.ClusterError as err:
            parser.error(f"argument --cpus-per-worker: {err}")
    console = Console(stderr=True, soft_wrap=True)  # no wrapping at 80 columns when redirected
    _say_missing(console, study, args.scheduler)
    _say_no_gpu(console, study, args.scheduler)
    skipped = []
    display = _Display(console, study, skipped, live=not args.quiet, interval=args.progress_interval)
    # SIGTERM (kill, timeout, a batch scheduler's end of the job) and SIGHUP stop the study as Ctrl-C does:
    # what is left is cancelled, the local cluster is shut down, and the same command resumes.
    stop = StopSignals()
    try:
        with stop:
            progress = run.run(study, args.out, scheduler=args.scheduler, workers=args.workers,
                               cpus_per_worker=args.cpus_per_worker, retry_failed=args.retry_failed,
                               on_start=display.start, on_result=display.update,
                               skipped=skipped)
    except run.SchedulerLost as err:
        display.stop()
        _say(console, f"fastscratch study run: {err}. Every finished cell is in {args.out}/results.jsonl; once the "
                      f"scheduler is back, resume with:\n  {_resume_command(args)}", style="red")
        return EXIT_FAILED
    except (run.ClusterError, results.BusyError, OSError, ValueError) as err:  # e.g. an unusable --out
        display.stop()
        _say(console, f"fastscratch study run: {err}", style="red")
        return EXIT_FAILED
    except KeyboardInterrupt:
        display.stop()
        signum = stop.received or signal.SIGINT
        how = "interrupted" if signum == signal.SIGINT else f"terminated by {signum.name}"
        if os.path.exists(os.path.join(args.out, results.FILENAME)):
            _say(console, f"{how}: every finished cell is in {args.out}/results.jsonl; "
                          "run the same command again to resume", style="yellow")
        else:  # the writer gave back what it had created
            _say(console, f"{how} before any cell finished: nothing was written", style="yellow")
        return exit_code_of(signum)
    display.stop()
    _say_skipped(console, skipped)
    _say(console, f"{progress.done} cell-repeats run ({progress.failed} failed), {progress.skipped} already in "
                  f"{args.out}/results.jsonl")
    if progress.failed_in_file:
        _say(console, f"{progress.failed_in_file} cell-repeats of this study are recorded as failed (their errors: "
                      f"`fastscratch study report {args.out}`); once their cause is fixed, run them again with:\n"
                      f"  {_resume_command(args, retry_failed=True)}", style="yellow")
    return EXIT_FAILED if progress.failed_in_file else 0


def _say_missing(console, study, scheduler):
    """Before running: which implementations of the study cannot be imported here, and how to install them."""
    from fastscratch import implementations
    absent = {}
    for cell in study.cells:
        for package in implementations.missing(cell.implementation):
            absent.setdefault(package, set()).add(cell.implementation)
    if not absent:
        return
    cells = sum(study.repeats for cell in study.cells
                if any(cell.implementation in names for names in absent.values()))
    where = ("the workers need them too" if scheduler else "")
    _say(console, f"note: {', '.join(sorted(absent))} {'is' if len(absent) == 1 else 'are'} not installed here, so "
                  f"the {cells} cell-repeats of {', '.join(sorted(set().union(*absent.values())))} will fail. Install "
                  f"{'it' if len(absent) == 1 else 'them'} with {implementations.install_hint(sorted(absent))}"
                  f"{'; ' + where if where else ''}, then run with --retry-failed.", style="yellow")


def _say(console, text, style=None):
    """Print ``text`` as it is: paths and hints such as ``'.[peers]'`` are not rich markup."""
    console.print(text, style=style, markup=False, highlight=False)


def _say_skipped(console, skipped):
    for line in skipped:
        _say(console, f"skipped {line}; its cell counts as not run", style="yellow")
    skipped.clear()


def _say_no_gpu(console, study, scheduler):
    """Before running locally: the cuda cells that will fail for want of an NVIDIA driver on this machine."""
    from fastscratch.implementations.devices import nvidia_driver
    cuda = sum(study.repeats for cell in study.cells if cell.device == "cuda")
    if cuda and scheduler is None and nvidia_driver() is None:
        _say(console, f"note: no NVIDIA GPU driver is loaded on this machine, so the {cuda} cell-repeats on device "
                      "'cuda' will fail (each recorded with the reason); the others run.", style="yellow")


def _resume_command(args, retry_failed=None):
    words = ["fastscratch", "study", "run", args.spec, "--out", args.out]
    if args.scheduler:
        words += ["--scheduler", args.scheduler]
    if args.workers:
        words += ["--workers", str(args.workers)]
    if args.cpus_per_worker:
        words += ["--cpus-per-worker", str(args.cpus_per_worker)]
    if args.retry_failed if retry_failed is None else retry_failed:
        words.append("--retry-failed")
    return shlex.join(words)


class _Display:
    """What ``study run`` shows while it runs: on a terminal a live line (cells ok / failed / still to run and
    the ETA), elsewhere plain progress lines now and then (``LogLines``, every ``interval`` seconds at most);
    skipped lines as they come, the first failure of each reason as it comes, and when the run stops, its
    failures grouped by reason as the report groups them. ``live=False`` (``--quiet``) drops only the progress.
    """

    def __init__(self, console, study, skipped, live=True, interval=10.0):
        self.console, self.study, self.skipped, self.show_live, self.interval = console, study, skipped, live, interval
        self.live = self.log = None
        self.failures = []
        self.reasons = set()  # of the failures already printed

    def start(self, progress):
        _say_skipped(self.console, self.skipped)
        if not self.show_live:
            return
        from fastscratch.cli.progress import LiveLine, LogLines
        if self.console.is_terminal:
            self.live = LiveLine(self.console, progress.total, self.study.name, ["{counts}"], count=False,
                                 label_style="bold", counts=self._counts(progress), eta="?").start()
        else:
            self.log = LogLines(self.console, progress.total, self.study.name, lambda: self._counts(progress),
                                progress.eta, interval=self.interval).start()

    @staticmethod
    def _counts(progress):
        return (f"{progress.done - progress.failed} ok, {progress.failed} failed, {progress.remaining} to run"
                + (f" ({progress.skipped} from before)" if progress.skipped else ""))

    def update(self, record, progress):
        if record["status"] != "ok":
            from fastscratch.study.report import failure_reason
            self.failures.append(record)
            reason = failure_reason(record)
            if reason not in self.reasons:
                self.reasons.add(reason)
                _say(self.console, f"failed: {record['implementation']} on {record.get('device', 'cpu')} "
                                   f"{record.get('dataset', 'mnist')} {record['dtype']} "
                                   f"{'-'.join(map(str, record['hidden']))} batch {record['batch_size']} "
                                   f"seed {record['seed']} repeat {record['repeat']}: {record['error']}", style="red")
        if self.log is not None:
            self.log.update(progress.done)
        if self.live is None:
            return
        eta = progress.eta()
        self.live.update(progress.done, counts=self._counts(progress),
                         eta="?" if eta is None else text.duration(eta))

    def stop(self):
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self.log is not None:
            self.log.stop()
            self.log = None
        if self.failures:
            self._say_failures()

    def _say_failures(self):
        """This run's failures, grouped: reason, count, which cells (the report's grouping)."""
        from fastscratch.study.report import failure_groups, some
        groups = failure_groups(self.failures)
        n = len(self.failures)
        _say(self.console, f"{n} cell-repeat{'s' if n != 1 else ''} failed in this run, for {len(groups)} "
                           f"reason{'s' if len(groups) != 1 else ''}:", style="red")
        for reason, records, cells in groups:
            _say(self.console, f"  {len(records)} x {reason}\n      {some(cells)}", style="red")
        self.failures = []


def _report(args, parser):
    from fastscratch.study import report
    skipped = []
    try:
        path = report.write(args.dir, skipped)
    except (FileNotFoundError, ValueError) as err:
        _print_skipped(skipped)
        parser.error(str(err))
    _print_skipped(skipped)
    print(path)
    return 0


def _print_skipped(skipped):
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)


def _compare(args, parser):
    from fastscratch.study import compare
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha must be between 0 and 1, got {args.alpha}")
    if not args.factor >= 1:
        parser.error(f"--factor must be >= 1, got {args.factor}")
    skipped = []
    try:
        rows = compare.compare(args.a, args.b, alpha=args.alpha, factor=args.factor, skipped=skipped)
    except (FileNotFoundError, ValueError) as err:
        _print_skipped(skipped)
        parser.error(str(err))
    _print_skipped(skipped)
    print(f"A: {args.a}\nB: {args.b}")
    print(compare.format_table(rows, args.alpha, args.factor))
    return 0
