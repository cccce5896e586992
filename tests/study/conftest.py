"""A real Dask LocalCluster (two worker processes, one timing resource each) shared by a test module,
and tiny studies on real MNIST subsets."""
import logging
import textwrap

import pytest

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    import dask
    from fastscratch.study.run import NO_DASHBOARD, RESOURCE, THREAD_VARIABLES, environ_kept
    with environ_kept(), dask.config.set({"distributed.nanny.pre-spawn-environ": {v: "1" for v in THREAD_VARIABLES}}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, **NO_DASHBOARD,
                                     resources={RESOURCE: 1}, silence_logs=logging.ERROR) as cluster:
        yield cluster


@pytest.fixture
def write_spec(tmp_path, mnist_dir):
    """``write_spec(grid_toml, repeats=2, train_rows=300, test_rows=100)`` -> path of a study on real MNIST."""
    def write(grid, repeats=2, train_rows=300, test_rows=100, name="tiny"):
        path = tmp_path / f"{name}.toml"
        path.write_text(f"repeats = {repeats}\n[data]\ndir = {str(mnist_dir)!r}\ntrain_rows = {train_rows}\n"
                        f"test_rows = {test_rows}\n[grid]\n" + textwrap.dedent(grid))
        return path
    return write
