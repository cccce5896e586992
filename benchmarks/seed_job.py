"""The seed's MNIST job (``fastscratch.tutorial.run``) in a fresh process; prints one JSON line of timings and memory.

Used by ``test_startup.py`` (first epoch vs a later one, cold or warm Numba
cache) and ``test_full_run.py`` (all 500 epochs, peak RSS). Usage::

    python benchmarks/seed_job.py [--impl jit|reference] [--dtype float64|float32] [--epochs N]
                                  [--train-samples N] [--test-samples N] [--untrained]

``--train-samples`` and ``--test-samples`` take the first images of each set,
where the script loads them (so the test image's index is drawn among those).
``load_s`` is the reading of the files; ``build_s`` the script's steps from
there to training: preparing the data, building the network and, with
``--untrained``, its untrained loss and accuracy. Epoch times come from
``train``'s callback, so a first epoch includes whatever compilation or cache
loading the first call triggers.
"""
import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["jit", "reference"], default="jit")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-samples", type=int, default=60000)
    parser.add_argument("--test-samples", type=int, default=10000)
    parser.add_argument("--untrained", action="store_true",
                        help="report the untrained loss and accuracy first, as the tutorial's script does")
    args = parser.parse_args(argv)

    from fastscratch import reference, tutorial
    from fastscratch.datasets import load_mnist
    cls = tutorial.network_class(args.impl)
    t_import = time.perf_counter()
    rss = {"after_import": rss_bytes()}
    stamps, facts = {}, {}

    def load():  # where the script loads; tutorial.run frees the arrays once they are prepared
        X_train, y_train, X_test, y_test = load_mnist(os.environ.get("FASTSCRATCH_MNIST_DIR"))
        stamps["load"] = time.perf_counter()
        return (X_train[:args.train_samples], y_train[:args.train_samples],
                X_test[:args.test_samples], y_test[:args.test_samples])

    def on_start(setup):
        stamps["start"] = time.perf_counter()
        facts.update(data_bytes=sum(a.nbytes for a in (setup.X_train, setup.Y_train, setup.X_test, setup.y_test)),
                     train_samples=len(setup.X_train), test_samples=len(setup.X_test))
        rss["before_train"] = rss_bytes()
        facts["peak_before_train"] = peak_rss_bytes()

    epoch_stamps = []
    result = tutorial.run(load=load, dtype=args.dtype, backend=args.impl, num_epochs=args.epochs,
                          untrained=args.untrained, on_start=on_start,
                          callback=lambda *_: epoch_stamps.append(time.perf_counter()))
    epoch_s = [b - a for a, b in zip([stamps["start"]] + epoch_stamps[:-1], epoch_stamps)]
    later = min(epoch_s[1:]) if len(epoch_s) > 1 else None
    rss["after_train"] = rss_bytes()
    untrained = {"loss": result.untrained_loss, "accuracy": result.untrained_accuracy} if args.untrained else None

    try:
        import numba
        numba_facts = {"numba_threads": numba.get_num_threads(), "numba_cache_dir": numba.config.CACHE_DIR}
    except ImportError:
        numba_facts = {}
    print(json.dumps({
        "impl": args.impl, "dtype": args.dtype, "jit_is_reference_alias": cls is reference.SimpleNetwork,
        "train_samples": facts["train_samples"], "test_samples": facts["test_samples"], "epochs": args.epochs,
        "import_s": t_import - T_START, "load_s": stamps["load"] - t_import,
        "build_s": stamps["start"] - stamps["load"],
        "epoch_s": epoch_s, "first_epoch_s": epoch_s[0], "later_epoch_s": later,
        "first_epoch_overhead_s": None if later is None else epoch_s[0] - later,
        "total_s": time.perf_counter() - T_START,
        "untrained": untrained, "losses": [float(x) for x in result.losses],
        "accuracies": [float(x) for x in result.accuracies], "final_accuracy": float(result.accuracies[-1]),
        "data_bytes": facts["data_bytes"], "rss_bytes": rss, "peak_rss_before_train_bytes": facts["peak_before_train"],
        "peak_rss_bytes": peak_rss_bytes(), **numba_facts,
    }))


if __name__ == "__main__":
    main()
