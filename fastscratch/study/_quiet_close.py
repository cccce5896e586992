"""Worker preload of the study's local workers: the heartbeat that a worker's own close cuts is no error.

A closing worker shuts its connections while a heartbeat to the scheduler may
still be waiting for its answer; distributed then logs "Failed to communicate
with scheduler during heartbeat." at ERROR with the CommClosedError's traceback
(dask/distributed#7891, open; #6543, which stops the heartbeat first, is not
merged). Local workers write to the study command's stderr, so under load a
user who stopped a study with Ctrl-C or SIGTERM, or whose study simply ended,
sometimes saw that traceback. This drops that one record, and only while the
worker is closing: a heartbeat that fails while the worker runs (a scheduler
gone from under it) is still reported.
"""
import logging
import weakref

LOGGER = "distributed.worker"


class ClosingHeartbeat(logging.Filter):
    """Drops the failed-heartbeat record of ``worker`` once it is closing."""

    def __init__(self, worker):
        super().__init__()
        self.worker = weakref.ref(worker)

    def filter(self, record):
        from distributed.core import Status
        worker = self.worker()
        cut = (record.funcName == "heartbeat" and record.exc_info is not None
               and isinstance(record.exc_info[1], OSError))  # CommClosedError, StreamClosedError
        return not (cut and worker is not None and worker.status in (Status.closing, Status.closed))


def dask_setup(worker):
    # Not removed in a dask_teardown: the worker tears its preloads down before it closes its connections.
    logging.getLogger(LOGGER).addFilter(ClosingHeartbeat(worker))
