"""The seed's MNIST job in a fresh process; prints one JSON line of timings and memory.

Used by ``test_startup.py`` (first epoch vs a later one, cold or warm Numba
cache) and ``test_full_run.py`` (all 500 epochs, peak RSS). Usage::

    python benchmarks/seed_job.py [--impl jit|reference] [--dtype float64|float32] [--epochs N]
                                  [--train-samples N] [--test-samples N] [--untrained]

Epoch times come from ``train``'s callback, so a first epoch includes whatever
compilation or cache loading the first call triggers.
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

    import numpy as np
    import fastscratch
    from fastscratch.datasets import load_mnist, prepare
    from fastscratch.reference import SimpleNetwork as Reference
    cls = Reference if args.impl == "reference" else fastscratch.SimpleNetwork
    t_import = time.perf_counter()
    rss = {"after_import": rss_bytes()}

    raw = load_mnist(os.environ.get("FASTSCRATCH_MNIST_DIR"))
    X_train, Y_train, X_test, y_test = prepare(*raw, dtype=np.dtype(args.dtype).type)
    del raw
    X_train, Y_train = X_train[:args.train_samples], Y_train[:args.train_samples]
    X_test, y_test = X_test[:args.test_samples], y_test[:args.test_samples]
    data_bytes = sum(a.nbytes for a in (X_train, Y_train, X_test, y_test))
    t_load = time.perf_counter()
    rss["after_load"] = rss_bytes()

    np.random.seed(42)
    np.random.randint(0, 10000)  # the tutorial's img_idx draw, before the network
    net = cls(X_train.shape[1], 10, [64, 32], dtype=np.dtype(args.dtype).type)
    t_build = time.perf_counter()
    untrained = None
    if args.untrained:
        loss = net.loss_function(net.forward(X_train), Y_train)
        untrained = {"loss": float(loss), "accuracy": float(net.evaluate_accuracy(X_test, y_test))}
    rss["before_train"] = rss_bytes()
    peak_before_train = peak_rss_bytes()

    stamps = []
    t_train = time.perf_counter()
    losses, accuracies = net.train(X_train, Y_train, X_test, y_test, batch_size=30, num_epochs=args.epochs,
                                   learning_rate=1e-3, verbose=False,
                                   callback=lambda *_: stamps.append(time.perf_counter()))
    epoch_s = [b - a for a, b in zip([t_train] + stamps[:-1], stamps)]
    later = min(epoch_s[1:]) if len(epoch_s) > 1 else None
    rss["after_train"] = rss_bytes()

    try:
        import numba
        numba_facts = {"numba_threads": numba.get_num_threads(), "numba_cache_dir": numba.config.CACHE_DIR}
    except ImportError:
        numba_facts = {}
    print(json.dumps({
        "impl": args.impl, "dtype": args.dtype, "jit_is_reference_alias": cls is Reference,
        "train_samples": len(X_train), "test_samples": len(X_test), "epochs": args.epochs,
        "import_s": t_import - T_START, "load_s": t_load - t_import, "build_s": t_build - t_load,
        "epoch_s": epoch_s, "first_epoch_s": epoch_s[0], "later_epoch_s": later,
        "first_epoch_overhead_s": None if later is None else epoch_s[0] - later,
        "total_s": time.perf_counter() - T_START,
        "untrained": untrained, "losses": [float(x) for x in losses],
        "accuracies": [float(x) for x in accuracies], "final_accuracy": float(accuracies[-1]),
        "data_bytes": data_bytes, "rss_bytes": rss, "peak_rss_before_train_bytes": peak_before_train,
        "peak_rss_bytes": peak_rss_bytes(), **numba_facts,
    }))


if __name__ == "__main__":
    main()
