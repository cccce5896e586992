"""Run a study's cells on Dask: one task per cell-repeat, results written by the client as they land.

Honest timings: every task asks for one unit of the worker resource
``RESOURCE``, which each worker process declares once, so with one worker
process per host at most one timed cell runs on a host at a time. Each task pins
its threads (``implementations.run``), warms up, and times itself with
``perf_counter``; the scheduler's bookkeeping never enters a timing. The
cell-repeats are submitted in a shuffled order (seeded by the spec's
``order_seed``), so drift of the machine's load does not favour one
implementation. A worker killed in the middle of a cell is restarted by its
nanny and the cell rescheduled (up to ``distributed.scheduler.allowed-failures``
times, then it is recorded as failed); a cell that raises is recorded as
failed with its error, and the study goes on.
"""
import contextlib
import functools
import json
import logging
import os
import random
import statistics
import time
import traceback

from fastscratch import environment
from fastscratch._interrupt import deferred_sigint
from fastscratch.study import _quiet_close, results

RESOURCE = "fastscratch-timing"
WAIT_FOR_WORKERS = 60  # seconds an existing cluster may take to show its first worker
CONNECT_TIMEOUT = "30s"  # how long to try reaching a --scheduler
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: recorded with every cell: the thread variables and the allocator setting a nanny may impose
RECORDED_VARIABLES = THREAD_VARIABLES + ("MALLOC_TRIM_THRESHOLD_",)
#: A LocalCluster without the dashboard. ``dashboard_address=None`` alone is not that: the scheduler still
#: serves its HTTP routes on the default port 8787 (and warns when another cluster holds it).
NO_DASHBOARD = {"dashboard_address": ":0", "scheduler_kwargs": {"dashboard": False}}


class ClusterError(RuntimeError):
    """The cluster cannot run the study: unreachable, no worker, or no worker declaring the timing resource."""


class SchedulerLost(ClusterError):
    """The scheduler went away mid-study; every line written before stays."""


def tasks(study, *, finished=()):
    """[(key, config, repeat, versions)] of the study's cell-repeats not in ``finished``, shuffled."""
    todo = []
    for config in study.cells:
        versions = results.versions(config.implementation)
        for repeat in range(study.repeats):
            key = results.cell_key(config, study.data, repeat, versions)
            if key not in finished:
                todo.append((key, config, repeat, versions))
    random.Random(study.order_seed).shuffle(todo)
    return todo


@functools.lru_cache(maxsize=2)
def _dataset(name, directory):
    from fastscratch.datasets import load_dataset
    return load_dataset(name, directory, progress=False)


@functools.lru_cache(maxsize=4)
def prepared(dataset, directory, dtype, train_rows, test_rows):
    """The prepared subset of ``dataset``, kept per worker process (loading is never timed). ``directory``
    (the spec's ``data.dir``) is MNIST's; other datasets are found where ``fastscratch.datasets`` looks."""
    import numpy as np

    from fastscratch.datasets import prepare
    X, Y, Xt, yt = _dataset(dataset, directory if dataset == "mnist" else None)
    arrays = prepare(X[:train_rows], Y[:train_rows], Xt[:test_rows], yt[:test_rows], dtype=np.dtype(dtype).type)
    for a in arrays:
        a.setflags(write=False)
    return arrays


def run_cell(key, config, repeat, versions, data):
    """The task: one cell-repeat on this worker; returns its results line (``status`` "ok" or "failed")."""
    start = time.perf_counter()
    record = {"key": key, **config.asdict(), "repeat": repeat, "data": data.identity(), "versions": versions,
              "methodology": results.METHODOLOGY_VERSION, "machine": environment.machine(), "worker": _worker(),
              "loadavg_1min": (environment.load() or [None])[0], "cpus": environment.usable_cpus(),
              "environ": {name: os.environ.get(name) for name in RECORDED_VARIABLES}}
    try:
        here = results.versions(config.implementation)
        if here != versions:
            raise RuntimeError(f"this worker has {here}, the study's key was made for {versions}: "
                               "install the same versions on the client and the workers")
        from fastscratch import implementations
        arrays = prepared(config.dataset, data.dir, config.dtype, data.train_rows, data.test_rows)
        runner = implementations.get(config.implementation)
        facts = runner.device_facts(config)  # where the device is missing: the cell fails here, saying so
        result = implementations.run(config, arrays)
    except Exception as err:  # noqa: BLE001  (any error of a cell is that cell's result)
        return {**record, "status": "failed", "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(limit=20)}
    return {**record, "status": "ok", "losses": result.losses, "accuracies": result.accuracies,
            "seconds_per_epoch": result.seconds_per_epoch, "warmup_seconds": result.warmup_seconds,
            "max_rel_diff_vs_reference": result.max_rel_diff_vs_reference,
            "equivalence_steps": result.equivalence_steps, "thread_counts": result.threads,
            "implementation_versions": runner.version(), "notes": runner.NOTES, "device_facts": facts,
            "loadavg_1min_after": (environment.load() or [None])[0], "task_seconds": time.perf_counter() - start}


def failed(key, config, repeat, versions, data, error):
    """The line of a cell-repeat whose task itself was lost (e.g. its worker killed too often)."""
    return {"key": key, **config.asdict(), "repeat": repeat, "data": data.identity(), "versions": versions,
            "methodology": results.METHODOLOGY_VERSION, "machine": None, "worker": None, "status": "failed",
            "error": error}


def _worker():
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return None


@contextlib.contextmanager
def client_for(study, scheduler=None, workers=None, cpus_per_worker=None):
    """A ``distributed.Client``: on ``scheduler`` if given, else on a local cluster started here.

    The local cluster has ``workers`` processes (default 1: timings need the
    host to themselves) of one thread each, each declaring one ``RESOURCE``;
    their nannies start them with the study's largest ``threads`` as
    ``NUMBA_NUM_THREADS`` and the BLAS/OpenMP limits (tasks then pin each
    cell's count). These replace the nanny's default variables, so the workers
    keep glibc's own ``MALLOC_TRIM_THRESHOLD_``: Dask's 65536 made the
    reference's epoch 1.5-1.8x slower than in a plain process here. With
    ``cpus_per_worker``, worker i is bound to CPUs of its own (``pinned_sets``)
    and its thread variables are that count.
    """
    import dask
    from distributed import Client, LocalCluster
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as err:
            raise ClusterError(f"cannot reach the Dask scheduler {scheduler}: {err}") from err
        with client:
            yield client
        return
    environ = {name: str(study.max_threads) for name in THREAD_VARIABLES}
    with environ_kept(), dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        # A KeyboardInterrupt (Ctrl-C, or SIGTERM and SIGHUP through StopSignals) in the middle of a local
        # cluster's start leaves nannies that never started, which Dask's exit handler then fails to close
        # ("Exception ignored in atexit callback: close_clusters ... AssertionError: Status.init", with its
        # traceback). A stop that comes while the cluster starts waits for it (seconds), then closes it as any
        # stop does.
        with deferred_sigint() as asked:
            if cpus_per_worker is None:
                cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True,
                                       resources={RESOURCE: 1}, silence_logs=logging.ERROR, **NO_DASHBOARD,
                                       **worker_preloads(_quiet_close))
            else:
                cluster = _pinned_cluster(pinned_sets(workers or 1, cpus_per_worker, study.max_threads))
            try:
                client = Client(cluster)
            except BaseException:
                cluster.close()
                raise
        with cluster, client:
            if asked.requested:
                raise KeyboardInterrupt
            yield client


def pinned_sets(workers, cpus_per_worker, max_threads=1):
    """``workers`` disjoint lists of ``cpus_per_worker`` CPUs from those this process may use."""
    available = environment.usable_cpus()
    if available is None:
        raise ClusterError("--cpus-per-worker binds workers to CPUs, which this platform does not let a process "
                           "do (no sched_getaffinity)")
    if workers * cpus_per_worker > len(available):
        raise ClusterError(f"{workers} workers x {cpus_per_worker} CPUs need {workers * cpus_per_worker} CPUs; this "
                           f"process may use {len(available)} ({','.join(map(str, available))})")
    if max_threads > cpus_per_worker:
        raise ClusterError(f"the study has cells of {max_threads} threads, more than --cpus-per-worker "
                           f"{cpus_per_worker}")
    return [available[i * cpus_per_worker:(i + 1) * cpus_per_worker] for i in range(workers)]


def worker_preloads(*modules):
    """``preload`` and ``preload_argv`` of a local worker: the ``modules``' ``dask_setup`` after the workers' preloads
    of the Dask configuration (``distributed.worker.preload``), which a ``preload`` given to a nanny replaces."""
    import dask
    preload = [*dask.config.get("distributed.worker.preload"), *(m.__name__ for m in modules)]
    argv = dask.config.get("distributed.worker.preload-argv")
    if argv and not isinstance(argv[0], str):  # one list per preload: none for ours
        argv = [*argv, *([] for _ in modules)]
    return {"preload": preload, "preload_argv": argv}


def _pinned_cluster(sets):
    from distributed import Nanny, Scheduler, SpecCluster

    from fastscratch.study import _pin
    workers = {f"pinned-{i}": {"cls": Nanny, "options": {
        "nthreads": 1, "resources": {RESOURCE: 1}, **worker_preloads(_pin, _quiet_close), "silence_logs": logging.ERROR,
        "env": {_pin.VARIABLE: ",".join(map(str, cpus)), **{name: str(len(cpus)) for name in THREAD_VARIABLES}}}}
        for i, cpus in enumerate(sets)}
    scheduler = {"cls": Scheduler, "options": {"dashboard": False, "dashboard_address": ":0", "host": "127.0.0.1"}}
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR)


@contextlib.contextmanager
def environ_kept():
    """Give back this process's environment as it was: a nanny writes its pre-spawn variables into
    ``os.environ`` of the process it runs in (here, the client's) before each spawn, and leaves them."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)


class Progress:
    """Counts of a run for the display: done, failed, remaining, and an ETA from the mean cell time."""

    def __init__(self, total, skipped):
        self.total, self.skipped, self.done, self.failed = total, skipped, 0, 0
        self.failed_in_file = 0  # cell-repeats whose latest line in the results says failed, set at the end
        self.start = time.monotonic()

    def add(self, record):
        self.done += 1
        self.failed += record["status"] != "ok"

    @property
    def remaining(self):
        return self.total - self.done

    def eta(self):
        if not self.done:
            return None
        return (time.monotonic() - self.start) / self.done * self.remaining


def run(study, out, *, scheduler=None, workers=None, cpus_per_worker=None, retry_failed=False, on_result=None,
        on_start=None, skipped=None):
    """Run the cell-repeats of ``study`` not yet in ``out``; return the :class:`Progress` at the end.

    ``on_start(progress)`` is called once the tasks are submitted and
    ``on_result(record, progress)`` after each line is written. Each line
    records its ``isolation`` (``isolation``) and ``exclusive``: false when
    several unpinned local workers shared the machine, whose timings are then
    not comparable. Pinned workers (``cpus_per_worker``) first time a
    calibration cell alone and beside every other worker busy
    (``calibrate``), into ``out/calibration.jsonl``. Lines of ``out``
    that cannot be read are described in the list ``skipped`` (see
    ``results.read``) and their cells run again. Ctrl-C cancels what is left,
    a lost scheduler raises :class:`SchedulerLost`; either way every line
    written stays.
    """
    with results.Writer(out, skipped) as writer:
        todo = tasks(study, finished=writer.finished(retry_failed=retry_failed))
        how = isolation(scheduler, workers, cpus_per_worker)
        progress = Progress(len(todo), study.repeats * len(study.cells) - len(todo))
        try:
            if todo:
                _run_tasks(study, todo, writer, progress, scheduler, workers, cpus_per_worker, how, on_result,
                           on_start)
        finally:
            keys = {key for key, *_ in tasks(study)}
            progress.failed_in_file = sum(r["status"] != "ok" for r in results.latest(writer.records)
                                          if r["key"] in keys)
    return progress


def isolation(scheduler, workers, cpus_per_worker):
    """How a run's timed cells shared their host: ``alone``, ``pinned beside N others``, ``shared`` (unpinned
    local workers), or ``cluster`` (workers started by the user: one timed cell per worker process)."""
    if scheduler is not None:
        return "cluster"
    if (workers or 1) == 1:
        return "alone"
    if cpus_per_worker is None:
        return "shared"
    return f"pinned beside {workers - 1} other{'s' if workers > 2 else ''}"


CALIBRATION = "calibration.jsonl"


def calibrate(client, study, out):
    """Time the seed job's ``jit`` cell on one worker alone, then on every worker at once; append
    ``{alone, busy, ratio, ...}`` to ``out/calibration.jsonl`` and return it. The ratio (median busy over alone)
    is what the neighbours cost a timed cell."""
    from fastscratch.implementations import Config
    addresses = sorted(client.scheduler_info()["workers"])
    config = Config("jit")
    versions = results.versions("jit")

    def on(address, name):
        return client.submit(run_cell, f"calibration-{name}", config, 0, versions, study.data, pure=False,
                             key=f"fastscratch-calibration-{name}-{time.time_ns()}", workers=[address],
                             allow_other_workers=False, resources={RESOURCE: 1})
    alone = on(addresses[0], "alone").result()
    busy = client.gather([on(address, f"busy-{i}") for i, address in enumerate(addresses)])
    for record in (alone, *busy):
        if record["status"] != "ok":
            raise ClusterError(f"the calibration cell failed on {record['worker']}: {record['error']}")
    seconds = [r["seconds_per_epoch"][0] for r in busy]
    line = {"cell": config.asdict(), "data": study.data.identity(), "workers": len(addresses),
            "cpus": [r.get("cpus") for r in busy], "alone": alone["seconds_per_epoch"][0], "busy": seconds,
            "ratio": statistics.median(seconds) / alone["seconds_per_epoch"][0],
            "machine": alone["machine"], "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(os.path.join(out, CALIBRATION), "a") as f:  # one line, flushed and fsynced before the study
        f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return line


def _run_tasks(study, todo, writer, progress, scheduler, workers, cpus_per_worker, how, on_result, on_start):
    from distributed import as_completed
    client_log = logging.getLogger("distributed.client")
    with _level_kept(client_log), client_for(study, scheduler, workers, cpus_per_worker) as client:
        if scheduler is not None:
            try:
                client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
            except TimeoutError:
                raise ClusterError(f"no worker joined {scheduler} within {WAIT_FOR_WORKERS} s") from None
        if not client.run_on_scheduler(_has_resource_workers):
            raise ClusterError(f"no worker of {scheduler} declares the resource {RESOURCE}: start workers "
                               f"with `dask worker {scheduler} --nworkers 1 --nthreads 1 "
                               f"--resources \"{RESOURCE}=1\"`")
        if scheduler is not None and study.data.dir is not None:
            _check_data_on_workers(client, study.data.dir)
        if how.startswith("pinned"):
            calibrate(client, study, os.path.dirname(writer.path))
        by_key = {}
        futures = []
        for key, config, repeat, versions in todo:
            by_key[key] = (key, config, repeat, versions)
            futures.append(client.submit(run_cell, key, config, repeat, versions, study.data,
                                         key=f"fastscratch-cell-{key}", resources={RESOURCE: 1}, pure=False))
        if on_start is not None:
            on_start(progress)
        def lost(status):
            # Closing this client then logs the failed reconnection's traceback, which says nothing more.
            client_log.setLevel(logging.CRITICAL)
            return SchedulerLost(f"lost the Dask scheduler {scheduler or '(local cluster)'} after {progress.done} of "
                                 f"{progress.total} cell-repeats ({status})")
        try:
            # Each result is fetched here, not by as_completed(with_results=True): that fetch runs in a task of
            # its own, and when the scheduler dies during it, its CommClosedError is logged by tornado as an
            # "Exception in callback" traceback and the future never comes out of as_completed.
            for future in as_completed(futures):
                if future.status == "cancelled":
                    # Only this client cancels its futures (on Ctrl-C, after the loop); a cancelled one here
                    # means the scheduler is gone and took every pending task with it.
                    raise lost(client.status)
                if future.status == "error":
                    key = future.key.removeprefix("fastscratch-cell-")
                    error = future.exception()
                    value = failed(*by_key[key], study.data, f"{type(error).__name__}: {error}")
                else:
                    try:
                        value = future.result()
                    except OSError as err:  # the connection to the scheduler broke while the result came
                        raise lost(f"{client.status}: {type(err).__name__}: {err}") from err
                writer.append({**value, "exclusive": how != "shared", "isolation": how, "study": study.name})
                progress.add(value)
                if on_result is not None:
                    on_result(value, progress)
        except Exception as err:
            if isinstance(err, SchedulerLost) or client.status == "running":
                raise
            raise lost(f"{client.status}: {type(err).__name__}: {err}") from err  # e.g. a result lost in transit
        finally:
            with contextlib.suppress(Exception):  # a client whose scheduler is gone cannot cancel anything
                client.cancel(futures)


@contextlib.contextmanager
def _level_kept(logger):
    level = logger.level
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_data_on_workers(client, directory):
    """The spec's check of ``[data] dir`` (``spec.load``), made again where the cells will read it: workers of
    another host may lack a folder that the client has."""
    from fastscratch.datasets import missing_files
    lacking = {worker: missing for worker, missing in client.run(missing_files, "mnist", directory).items()
               if missing}
    if lacking:
        said = "; ".join(f"{worker} has no {', '.join(missing)}" for worker, missing in sorted(lacking.items()))
        raise ClusterError(f"[data] dir {directory} does not hold MNIST's four files on every worker: {said}")


def _has_resource_workers(dask_scheduler=None):
    return any(RESOURCE in ws.resources for ws in dask_scheduler.workers.values())
