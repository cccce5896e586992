"""No input, however wrong, crashes the interpreter.

Numba does no bounds checking: a kernel handed the wrong shape reads or writes
memory it does not own. Every bad case runs in a subprocess (one per flavour,
all cases in a row, ``faulthandler`` on) that must report a clean Python
exception for each, then let the last one escape: exit code 1 and a traceback,
never death by a signal. Besides bad arguments, the cases tamper with the
public attributes the kernels read (``W``, ``b``, ``x``, ``y``, ``dL_dW``,
``layers``), since users of the tutorial's classes do.
"""
import json
import subprocess
import sys
import textwrap

import pytest

NETWORKS = [pytest.param("fastscratch.reference", id="reference"), pytest.param("fastscratch", id="jit")]

# (name, statement). ``net`` is a fresh 4-5-3 sigmoid network, X (12, 4), Y one-hot (12, 3), L int labels.
# (A negative num_epochs or learning rate, and X_val without y_val, run as in the tutorial, with a warning:
# tests/test_input_validation.py.)
INPUT_CASES = [
    ("train-X-features", "net.train(X[:, :3], Y, batch_size=4)"),
    ("train-X-wide", "net.train(np.hstack([X, X]), Y, batch_size=4)"),
    ("train-X-3d", "net.train(X.reshape(12, 2, 2), Y, batch_size=4)"),
    ("train-y-width", "net.train(X, Y[:, :2], batch_size=4)"),
    ("train-y-wide", "net.train(X, np.hstack([Y, Y]), batch_size=4)"),
    ("train-y-short", "net.train(X, Y[:5], batch_size=4)"),
    ("train-X-short", "net.train(X[:5], Y, batch_size=4)"),
    ("train-X-nan", "net.train(np.where(X > 0.5, np.nan, X), Y, batch_size=4)"),
    ("train-y-inf", "net.train(X, Y * np.inf, batch_size=4)"),
    ("train-X-complex", "net.train(X + 1j, Y, batch_size=4)"),
    ("train-X-object", "net.train(X.astype(object), Y, batch_size=4)"),
    ("train-batch-0", "net.train(X, Y, batch_size=0)"),
    ("train-batch-too-big", "net.train(X, Y, batch_size=13)"),
    ("train-batch-huge", "net.train(X, Y, batch_size=2**62)"),
    ("train-lr-nan", "net.train(X, Y, batch_size=4, learning_rate=float('nan'))"),
    ("train-empty", "net.train(np.empty((0, 4)), np.empty((0, 3)), batch_size=1)"),
    ("train-X_val-features", "net.train(X, Y, X[:, :2], L, batch_size=4)"),
    ("train-labels-out-of-range", "net.train(X, L + 3, batch_size=4)"),
    ("train-y_val-out-of-range", "net.train(X, Y, X, L + 3, batch_size=4)"),
    ("train-y_val-negative", "net.train(X, Y, X, L - 3, batch_size=4)"),
    ("train-y_val-short", "net.train(X, Y, X, L[:3], batch_size=4)"),
    ("forward-features", "net.forward(np.ones((2, 7)))"),
    ("forward-empty", "net.forward(np.ones((0, 4)))"),
    ("forward-3d", "net.forward(np.ones((2, 2, 4)))"),
    ("predict-features", "net.predict(np.ones(3))"),
    ("predict-many-features", "net.predict(np.ones((300, 5)))"),
    ("evaluate-features", "net.evaluate_accuracy(np.ones((300, 5)), np.zeros(300, int))"),
    ("evaluate-labels-out-of-range", "net.evaluate_accuracy(np.ones((300, 4)), np.full(300, 10**9))"),
    ("evaluate-labels-short", "net.evaluate_accuracy(np.ones((300, 4)), np.zeros(299, int))"),
    ("backward-before-forward", "net.backward(np.ones((2, 3)))"),
    ("backward-rows", "net.forward(X); net.backward(np.ones((13, 3)))"),
    ("backward-width", "net.forward(X); net.backward(np.ones((12, 4)))"),
    ("optimize-before-backward", "net.optimize(0.1)"),
    ("layer-forward-features", "net.layers[1].forward(np.ones((2, 4)))"),
    ("layer-backward-rows", "layer = net.layers[0]; layer.forward(X); layer.backward(np.ones((3, 5)))"),
    ("neuron-features", "fs.Neuron(3, fs.sigmoid).forward(np.ones((1, 30)))"),
    ("constructor-zero", "NET(4, 0, [5])"),
    ("constructor-negative-hidden", "NET(4, 3, [-5])"),
]

# What user callables return reaches the kernels: each must be checked (issue 10). (name, statement, role).
WIDE = "lambda z: fs.sigmoid(np.hstack([z, z]))"
CALLABLE_CASES = [
    ("activation-wide-forward", f"NET(12, 3, [1024, 1024], {WIDE}, fs.derivated_sigmoid).forward(np.ones((4, 12)))",
     "activation_function"),
    ("activation-wide-train", f"NET(4, 3, [5], {WIDE}, fs.derivated_sigmoid).train(X, Y, batch_size=4)",
     "activation_function"),
    ("activation-narrow-train", "NET(4, 3, [64], lambda z: fs.sigmoid(z[:, :1]), fs.derivated_sigmoid)"
                                ".train(X, Y, batch_size=4)", "activation_function"),
    ("activation-narrow-predict", "NET(4, 3, [64], lambda z: fs.sigmoid(z[:, :1]), fs.derivated_sigmoid)"
                                  ".predict(np.ones((300, 4)))", "activation_function"),
    ("derivative-wide", "NET(4, 3, [64], fs.sigmoid, lambda y: np.hstack([y, y])).train(X, Y, batch_size=4)",
     "derivated_activation_function"),
    ("derivative-narrow-backward", "n = NET(4, 3, [64], fs.sigmoid, lambda y: y[:5]); n.forward(X); "
                                   "n.backward(np.ones((12, 3)))", "derivated_activation_function"),
    ("loss-derivative-wide", "NET(4, 3, [5], loss_function=fs.loss_L2, derivated_loss_function=lambda p, t: "
                             "np.hstack([p - t, p - t])).train(X, Y, batch_size=4)", "derivated_loss_function"),
    ("loss-derivative-rows", "NET(4, 3, [5], loss_function=fs.loss_L2, derivated_loss_function=lambda p, t: "
                             "(p - t)[:2]).train(X, Y, batch_size=4)", "derivated_loss_function"),
    ("loss-derivative-wide-blas", "NET(4, 3, [5], loss_function=fs.loss_L2, derivated_loss_function=lambda p, t: "
                                  "np.hstack([p - t, p - t])).train(np.tile(X, (20, 1)), np.tile(Y, (20, 1)), "
                                  "batch_size=200)", "derivated_loss_function"),
]
INPUT_CASES += [(name, statement) for name, statement, _ in CALLABLE_CASES]

TAMPER_CASES = [
    ("W-reshaped-in-place", "net.layers[0].W.shape = (5, 4); net.forward(X)"),
    ("W-reshaped-then-train", "net.layers[1].W.shape = (3, 5); net.train(X, Y, batch_size=4)"),
    ("W-replaced-wrong-shape", "net.layers[0].W = np.ones((3, 5)); net.forward(X)"),
    ("b-replaced-wrong-shape", "net.layers[0].b = np.ones(2); net.train(X, Y, batch_size=4)"),
    ("x-replaced-wrong-width", "net.forward(X); net.layers[0].x = np.ones((12, 2)); net.backward(np.ones((12, 3)))"),
    ("y-replaced-wrong-shape", "net.forward(X); net.layers[1].y = np.ones((12, 1)); net.backward(np.ones((12, 3)))"),
    ("dL_dW-replaced-wrong-shape",
     "net.forward(X); net.backward(np.ones((12, 3))); net.layers[0].dL_dW = np.ones(3); net.optimize(0.1)"),
    ("dL_db-replaced-wrong-shape",
     "net.forward(X); net.backward(np.ones((12, 3))); net.layers[1].dL_db = np.ones(1); net.optimize(0.1)"),
    ("layers-mismatched", "net.layers[0] = fs.FullyConnectedLayer(4, 7, fs.sigmoid, fs.derivated_sigmoid); "
                          "net.train(X, Y, batch_size=4)"),
    ("layers-mismatched-forward", "net.layers[0] = fs.FullyConnectedLayer(4, 7, fs.sigmoid, fs.derivated_sigmoid); "
                                  "net.forward(X)"),
    ("layers-mismatched-evaluate", "net.layers[0] = fs.FullyConnectedLayer(4, 7, fs.sigmoid, fs.derivated_sigmoid); "
                                   "net.evaluate_accuracy(np.ones((300, 4)), np.zeros(300, int))"),
    ("layer-reforwarded-alone", "net.forward(X); net.layers[0].forward(X[:3]); net.backward(np.ones((12, 3)))"),
    ("layer-reforwarded-wider", "net.forward(X[:3]); net.layers[1].forward(np.ones((12, 5))); "
                                "net.backward(np.ones((12, 3)))"),
    ("W-reshaped-predict-batch", "net.layers[0].W.shape = (5, 4); net.predict(np.ones((300, 4)))"),
    ("layers-mismatched-predict-batch", "net.layers[0] = fs.FullyConnectedLayer(4, 7, fs.sigmoid, "
                                        "fs.derivated_sigmoid); net.predict(np.ones((300, 4)))"),
    ("neuron-W-replaced", "n = fs.Neuron(3, fs.sigmoid); n.W = np.ones(7); n.forward(np.ones((1, 3)))"),
    ("neuron-W-reshaped", "n = fs.Neuron(4, fs.sigmoid); n.W.shape = (2, 2); n.forward(np.ones((1, 4)))"),
    ("layers-emptied", "net.layers = []; net.train(X, Y, batch_size=4)"),
]

CHILD = textwrap.dedent("""
    import faulthandler, json, sys, warnings
    faulthandler.enable()
    warnings.simplefilter("ignore")
    import numpy as np
    import importlib
    fs = importlib.import_module(sys.argv[1])
    NET = fs.SimpleNetwork
    cases, tamper = json.loads(sys.stdin.read())
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (12, 4))
    L = rng.integers(0, 3, 12)
    Y = np.eye(3)[L]
    last = None
    for name, statement in cases + tamper:
        print("START", name, file=sys.stderr, flush=True)
        np.random.seed(0)
        net = NET(4, 3, [5])
        try:
            exec(statement, {"np": np, "fs": fs, "NET": NET, "net": net, "X": X, "Y": Y, "L": L})
        except Exception as err:
            last = err
            print(json.dumps({"case": name, "type": type(err).__name__, "message": str(err)}), flush=True)
        else:
            print(json.dumps({"case": name, "type": None, "message": ""}), flush=True)
    print("DONE", file=sys.stderr, flush=True)
    raise last
""")


@pytest.mark.parametrize("module", NETWORKS)
def test_bad_cases_raise_clean_exceptions(module, tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHILD, module], input=json.dumps([INPUT_CASES, TAMPER_CASES]),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    started = [line.split(" ", 1)[1] for line in proc.stderr.splitlines() if line.startswith("START ")]
    assert proc.returncode >= 0, (f"killed by signal {-proc.returncode} during case {started[-1]!r}:\n"
                                  f"{proc.stderr[-3000:]}")
    assert "Fatal Python error" not in proc.stderr, proc.stderr[-3000:]
    assert "DONE" in proc.stderr, proc.stderr[-3000:]
    results = {r["case"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert list(results) == [name for name, _ in INPUT_CASES + TAMPER_CASES]

    # The last exception escapes: a normal Python exit with status 1 and its traceback.
    assert proc.returncode == 1
    last = results[TAMPER_CASES[-1][0]]
    assert proc.stderr.rstrip().splitlines()[-1].startswith(last["type"])

    wrong = {name: r for name, r in results.items() if name in dict(INPUT_CASES)
             and r["type"] not in ("ValueError", "TypeError", "RuntimeError")}
    assert not wrong, f"bad arguments must raise ValueError/TypeError/RuntimeError: {wrong}"
    if module == "fastscratch":
        unnamed = {name: results[name]["message"] for name, _, role in CALLABLE_CASES
                   if role not in results[name]["message"]}
        assert not unnamed, f"the error must name the callable that returned a bad value: {unnamed}"
    silent = [name for name, _ in TAMPER_CASES if results[name]["type"] is None]
    assert not silent, f"tampered attributes used without an error (a silent wrong answer): {silent}"
    unclean = {name: results[name] for name, _ in TAMPER_CASES
               if results[name]["type"] in ("SystemError", "MemoryError")}
    assert not unclean
