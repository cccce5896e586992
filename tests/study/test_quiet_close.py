"""The study's local workers: no traceback for the heartbeat their own close cuts, every other failure still logged."""
import asyncio
import logging

import pytest

from fastscratch.study import _quiet_close, run, spec


class Kept(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


async def heartbeat_cut(quieted, *, by):
    """The ERROR records of a worker whose heartbeat is in flight when ``by`` ("close": the worker closes;
    "scheduler": the scheduler drops the connection while the worker runs) cuts it."""
    from distributed import Scheduler, Worker
    kept = Kept()
    logger = logging.getLogger(_quiet_close.LOGGER)
    logger.addHandler(kept)
    try:
        async with Scheduler(dashboard_address=":0", dashboard=False) as scheduler:
            answer = scheduler.handlers["heartbeat_worker"]

            async def slow(comm, **msg):  # the answer of a loaded scheduler, or none at all
                if by == "scheduler":
                    comm.abort()
                    return None
                await asyncio.sleep(1)
                return answer(**msg)
            scheduler.handlers["heartbeat_worker"] = slow
            async with Worker(scheduler.address, heartbeat_interval="1h", nthreads=1) as worker:
                if quieted:
                    _quiet_close.dask_setup(worker)
                beat = asyncio.create_task(worker.heartbeat())
                await asyncio.sleep(0.2)
                if by == "close":
                    await worker.close()
                await beat
    finally:
        logger.removeHandler(kept)
        for f in [f for f in logger.filters if isinstance(f, _quiet_close.ClosingHeartbeat)]:
            logger.removeFilter(f)
    return [(r.funcName, r.getMessage(), r.exc_info is not None) for r in kept.records]


FAILED = ("heartbeat", "Failed to communicate with scheduler during heartbeat.", True)


def test_a_closing_worker_logs_no_traceback_for_its_cut_heartbeat():
    assert asyncio.run(heartbeat_cut(False, by="close")) == [FAILED]  # the race, as distributed logs it
    assert asyncio.run(heartbeat_cut(True, by="close")) == []


def test_a_running_worker_whose_heartbeat_fails_still_says_so():
    assert asyncio.run(heartbeat_cut(True, by="scheduler")) == [FAILED]


def quieted():
    return any(isinstance(f, _quiet_close.ClosingHeartbeat) for f in logging.getLogger(_quiet_close.LOGGER).filters)


@pytest.mark.parametrize("workers, cpus_per_worker", [(None, None), (2, 1)])
def test_the_local_workers_of_a_study_are_quieted(write_spec, workers, cpus_per_worker):
    import os
    if cpus_per_worker and len(os.sched_getaffinity(0)) < workers * cpus_per_worker:
        pytest.skip(f"needs {workers * cpus_per_worker} CPUs")
    study = spec.load(write_spec('implementation = "jit"\nhidden = [6]\n'))
    with run.client_for(study, workers=workers, cpus_per_worker=cpus_per_worker) as client:
        assert set(client.run(quieted).values()) == {True}


def test_a_preload_of_the_dask_configuration_is_kept():
    import dask
    with dask.config.set({"distributed.worker.preload": ["site_preload"],
                          "distributed.worker.preload-argv": [["--flag"]]}):
        assert run.worker_preloads(_quiet_close) == {"preload": ["site_preload", _quiet_close.__name__],
                                                     "preload_argv": [["--flag"], []]}
    assert run.worker_preloads(_quiet_close) == {"preload": [_quiet_close.__name__], "preload_argv": []}
