"""What running a cell inside a study costs, and whether its timings match a direct run (paired, one run).

    python benchmarks/study_overhead.py [--pairs 5] [--train-rows 60000] [--json OUT]

On a LocalCluster of one worker process (as ``fastscratch study run`` starts
it), alternately: the cell run directly in this process with
``implementations.run``, then the same cell as a study task (``run.run_cell``
submitted and awaited, as the study does). Prints, per implementation, the
median seconds per epoch of both and the median of the paired ratios, and the
overhead per cell: the wall time from submit to result minus the task's own
duration, and minus the direct run's wall time. Data are loaded on both sides
before the pairs (loading is never timed in a study).

The worker starts with this process's ``NUMBA_NUM_THREADS`` (set it in the
environment to compare at another count): with fewer Numba threads than this
process, the drop-in's per-call check of the data runs before the jit's first
epoch instead of beside it on another core, which is a difference of the two
processes' settings, not of the study (see docs/studies.md).
"""
import argparse
import json
import logging
import os
import statistics
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--train-rows", type=int, default=60000)
    parser.add_argument("--test-rows", type=int, default=10000)
    parser.add_argument("--implementations", nargs="+", default=["jit", "reference"])
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)

    import dask
    from distributed import Client, LocalCluster

    from fastscratch import implementations
    from fastscratch.implementations import Config
    from fastscratch.study import results, run
    from fastscratch.study.spec import Data

    import numba
    data = Data(os.environ.get("FASTSCRATCH_MNIST_DIR"), args.train_rows, args.test_rows)
    cells = {name: Config(name) for name in args.implementations}
    env = {name: "1" for name in run.THREAD_VARIABLES}
    env["NUMBA_NUM_THREADS"] = str(numba.config.NUMBA_NUM_THREADS)  # the same on both sides
    t0 = time.perf_counter()
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}), \
            LocalCluster(n_workers=1, threads_per_worker=1, **run.NO_DASHBOARD, resources={run.RESOURCE: 1},
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        startup = time.perf_counter() - t0
        arrays = run.prepared("mnist", data.dir, "float64", data.train_rows, data.test_rows)
        client.submit(run.prepared, "mnist", data.dir, "float64", data.train_rows, data.test_rows, pure=False).result()
        for config in cells.values():  # warm both sides once (compilation, caches); not measured
            implementations.run(config, arrays)
            client.submit(run.run_cell, "warm", config, -1, results.versions(config.implementation), data,
                          pure=False, resources={run.RESOURCE: 1}).result()
        rows = {name: [] for name in cells}
        for i in range(args.pairs):
            for name, config in cells.items():
                load = os.getloadavg()[0]
                start = time.perf_counter()
                direct = implementations.run(config, arrays)
                direct_wall = time.perf_counter() - start
                start = time.perf_counter()
                record = client.submit(run.run_cell, f"pair-{i}", config, i, results.versions(name), data,
                                       pure=False, resources={run.RESOURCE: 1}).result()
                study_wall = time.perf_counter() - start
                assert record["status"] == "ok", record.get("error")
                rows[name].append({"direct_s": direct.seconds_per_epoch[0], "study_s": record["seconds_per_epoch"][0],
                                   "direct_wall": direct_wall, "study_wall": study_wall,
                                   "task_seconds": record["task_seconds"], "load": load})
    report = {"startup_s": startup, "pairs": args.pairs, "train_rows": args.train_rows, "rows": rows,
              "numba_num_threads": numba.config.NUMBA_NUM_THREADS, "cpus": os.cpu_count()}
    print(f"LocalCluster start: {startup:.2f} s; NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS} on both sides, "
          f"{os.cpu_count()} logical cores; {args.pairs} pairs, {args.train_rows} training rows, "
          f"load {min(r['load'] for v in rows.values() for r in v):.2f}-"
          f"{max(r['load'] for v in rows.values() for r in v):.2f}")
    for name, pairs in rows.items():
        med = lambda key: statistics.median(p[key] for p in pairs)  # noqa: E731
        ratio = statistics.median(p["study_s"] / p["direct_s"] for p in pairs)
        sched = statistics.median(p["study_wall"] - p["task_seconds"] for p in pairs)
        vs_direct = statistics.median(p["study_wall"] - p["direct_wall"] for p in pairs)
        print(f"{name:>10}: s/epoch direct {med('direct_s'):.3f}, in study {med('study_s'):.3f}, paired ratio "
              f"{ratio:.3f} (range {min(p['study_s'] / p['direct_s'] for p in pairs):.2f}-"
              f"{max(p['study_s'] / p['direct_s'] for p in pairs):.2f}); overhead per cell: {sched * 1000:.1f} ms "
              f"beyond the task, {vs_direct:+.3f} s vs the direct call")
        report[name] = {"direct_median": med("direct_s"), "study_median": med("study_s"), "paired_ratio": ratio,
                        "scheduler_overhead_s": sched, "vs_direct_wall_s": vs_direct}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
