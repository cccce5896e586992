"""The local workers' log filter drops only the heartbeat that the worker's own close cuts."""
import logging
import sys

import pytest

pytest.importorskip("distributed")
from distributed.comm.core import CommClosedError  # noqa: E402
from distributed.core import Status  # noqa: E402

from fastscratch.study._quiet_close import LOGGER, ClosingHeartbeat, dask_setup  # noqa: E402


class Worker:
    def __init__(self, status):
        self.status = status


def record(func="heartbeat", error=CommClosedError("in <TCP>: Stream is closed")):
    exc_info = None if error is None else (type(error), error, None)
    return logging.LogRecord(LOGGER, logging.ERROR, __file__, 1, "Failed to communicate with scheduler during heartbeat.",
                             None, exc_info, func=func)


@pytest.mark.parametrize("status", [Status.closing, Status.closed])
def test_a_closing_workers_cut_heartbeat_is_dropped(status):
    assert not ClosingHeartbeat(Worker(status)).filter(record())


@pytest.mark.parametrize("status", [Status.running, Status.paused, Status.init])
def test_a_running_workers_failed_heartbeat_is_reported(status):
    assert ClosingHeartbeat(Worker(status)).filter(record())


@pytest.mark.parametrize("rec", [record(func="close"), record(error=None), record(error=ValueError("other"))],
                         ids=["another function", "no exception", "not a connection error"])
def test_other_records_of_a_closing_worker_are_kept(rec):
    assert ClosingHeartbeat(Worker(Status.closing)).filter(rec)


def test_a_worker_gone_keeps_every_record():
    worker = Worker(Status.closing)
    flt = ClosingHeartbeat(worker)
    del worker
    assert flt.filter(record())


def test_dask_setup_installs_the_filter_on_the_worker_logger():
    logger = logging.getLogger(LOGGER)
    before = list(logger.filters)
    try:
        dask_setup(Worker(Status.closing))
        added = [f for f in logger.filters if f not in before]
        assert len(added) == 1 and isinstance(added[0], ClosingHeartbeat)
    finally:
        logger.filters[:] = before
