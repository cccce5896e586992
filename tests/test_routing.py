"""``routing.route``: the one decision of how a call runs, its rules case by case (docs/design.md, "How a call is
routed"), and which routes are kept on the network."""
import threading
import warnings

import numpy as np
import pytest

import fastscratch
from fastscratch import routing
from fastscratch.routing import Call, Function, Products, Step, Way

K, B, N, U = Products.KERNEL, Products.BLAS, Function.NUMPY, Function.USERS
KF, KS, NS = Function.KERNEL, Step.KERNEL, Step.NUMPY


def network(hidden=(6,), **kwargs):
    np.random.seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastscratch.FallbackWarning)
        return fastscratch.SimpleNetwork(12, 4, list(hidden), **kwargs)


def read_only(net):
    W = net.layers[0].W.copy()  # a new object: a kept route of the old one still reads it in place (and the step
    W.setflags(write=False)     # sees whether it can write, test_steps.py)
    net.layers[0].W = W


def nan_behind_zeros(net):
    net.layers[0].W[1, 0] = np.nan  # a compiled pass over inputs whose column 1 is 0 would skip it


def user_activation(net):
    net.layers[1].activation_function = lambda z: 1 / (1 + np.exp(-z))


def fortran(net):
    net.layers[0].W = np.asfortranarray(net.layers[0].W)


def tied(net):
    net.layers[2].W = net.layers[1].W


def user_loss(net):
    net.loss_function = lambda p, t: np.sum((p - t) ** 2) / len(p)


def as_is(net):
    pass


#: (setup, call, rows, input_finite, nonzero_fraction, way, per layer (products, activation, derivative, step)).
#: The network is 12-6-4 sigmoid (12-6-6-4 for "tied"); config.KERNEL_MAX_BACKWARD_ROWS is 128.
RULES = {
    "forward, one row": (as_is, Call.FORWARD, 1, True, 1.0, Way.LAYERS, [(K, KF, KF, KS)] * 2),
    "forward, many rows: kernels": (as_is, Call.FORWARD, 60000, True, 1.0, Way.LAYERS, [(K, KF, KF, KS)] * 2),
    "forward, non-finite input": (as_is, Call.FORWARD, 3, False, 1.0, Way.LAYERS, [(B, N, N, KS)] * 2),
    "backward: kernel derivative": (as_is, Call.BACKWARD, 3, True, 1.0, Way.LAYERS, [(K, KF, KF, KS)] * 2),
    "backward, non-finite dL_dy is not forced": (as_is, Call.BACKWARD, 3, False, 1.0, Way.LAYERS,
                                                 [(K, KF, KF, KS)] * 2),
    "a user's activation": (user_activation, Call.FORWARD, 3, True, 1.0, Way.LAYERS,
                            [(K, KF, KF, KS), (K, U, KF, KS)]),
    "read-only W: the reference's expressions and step": (read_only, Call.FORWARD, 3, True, 1.0, Way.LAYERS,
                                                          [(B, N, N, NS), (K, KF, KF, KS)]),
    "Fortran W": (fortran, Call.OPTIMIZE, 1, True, 1.0, Way.LAYERS, [(B, N, N, NS), (K, KF, KF, KS)]),
    "NaN W, per call: not looked at": (nan_behind_zeros, Call.FORWARD, 3, True, 1.0, Way.LAYERS,
                                       [(K, KF, KF, KS)] * 2),
    "predict, one row": (as_is, Call.PREDICT, 1, True, 1.0, Way.LAYERS, [(K, KF, KF, KS)] * 2),
    "predict, many rows": (as_is, Call.PREDICT, 50, True, 1.0, Way.COMPILED_ROWS, [(K, KF, KF, KS)] * 2),
    "predict, many rows, NaN W behind zeros": (nan_behind_zeros, Call.PREDICT, 50, True, 1.0, Way.LAYERS,
                                               [(B, N, N, KS), (K, KF, KF, KS)]),
    "predict, many rows, non-finite input": (as_is, Call.PREDICT, 50, False, 1.0, Way.LAYERS, [(B, N, N, KS)] * 2),
    "predict, many rows, a user's activation": (user_activation, Call.PREDICT, 50, True, 1.0, Way.LAYERS,
                                                [(K, KF, KF, KS), (K, U, KF, KS)]),
    "accuracy, few rows: row by row, W not looked at": (nan_behind_zeros, Call.ACCURACY, 5, True, 1.0,
                                                        Way.ROW_BY_ROW, [(K, KF, KF, KS)] * 2),
    "accuracy, many rows: one-row products": (as_is, Call.ACCURACY, 500, True, 1.0, Way.COMPILED_ROWS,
                                              [(K, KF, KF, KS)] * 2),
    "accuracy, few non-finite rows": (as_is, Call.ACCURACY, 5, False, 1.0, Way.ROW_BY_ROW, [(B, N, N, KS)] * 2),
    "accuracy, read-only W": (read_only, Call.ACCURACY, 500, True, 1.0, Way.ROW_BY_ROW,
                              [(B, N, N, NS), (K, KF, KF, KS)]),
    "train's accuracy, few rows: compiled": (as_is, Call.EPOCH_ACCURACY, 5, True, 1.0, Way.COMPILED_ROWS,
                                             [(K, KF, KF, KS)] * 2),
    "epoch": (as_is, Call.EPOCH, 10, True, 1.0, Way.COMPILED_EPOCH, [(K, KF, KF, KS)] * 2),
    "epoch on data a callback made non-finite": (as_is, Call.EPOCH, 10, False, 1.0, Way.BATCH_LOOP,
                                                 [(K, KF, KF, KS)] * 2),
    "epoch past the crossover (dense)": (as_is, Call.EPOCH, 130, True, 1.0, Way.BATCH_LOOP, [(B, N, N, KS)] * 2),
    "epoch of large sparse batches": (as_is, Call.EPOCH, 130, True, 0.2, Way.COMPILED_EPOCH,
                                      [(K, KF, KF, KS)] * 2),
    "epoch, NaN W": (nan_behind_zeros, Call.EPOCH, 10, True, 1.0, Way.BATCH_LOOP, [(B, N, N, KS), (K, KF, KF, KS)]),
    "epoch, tied W": (tied, Call.EPOCH, 10, True, 1.0, Way.BATCH_LOOP, [(K, KF, KF, KS)] * 3),
    "epoch, a user's loss": (user_loss, Call.EPOCH, 10, True, 1.0, Way.BATCH_LOOP, [(K, KF, KF, KS)] * 2),
    "epoch, a user's activation": (user_activation, Call.EPOCH, 10, True, 1.0, Way.BATCH_LOOP,
                                   [(K, KF, KF, KS), (K, U, KF, KS)]),
}


@pytest.mark.parametrize("case", RULES)
def test_each_rule(case):
    setup, call, rows, input_finite, density, way, layers = RULES[case]
    net = network((6, 6) if setup is tied else (6,))
    setup(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastscratch.FallbackWarning)
        route = routing.route(net, call, rows, input_finite=input_finite, nonzero_fraction=density)
    assert route.way is way, route.reason
    assert [(r.products, r.activation, r.derivative, r.step) for r in route.layers] == layers
    assert [r.layer for r in route.layers] == net.layers and not route.lone
    for r, layer in zip(route.layers, net.layers):  # the kernels' arrays are the user's own, or none
        assert (r.W is layer.W and r.b is layer.b) if r.step is KS else r.W is None
    assert route.builtin_functions == (setup not in (user_activation, user_loss))
    assert route.loss is (Function.USERS if setup is user_loss else Function.KERNEL)


#: (setup, call, rows, input_finite, nonzero_fraction, each layer's gradient): the first layer's weight gradient
#: runs over its input's nonzero entries in backward passes of sparse inputs up to KERNEL_MAX_BACKWARD_ROWS rows.
GRADIENTS = {
    "backward, sparse input": (as_is, Call.BACKWARD, 30, True, 0.2, [K, B]),
    "backward, dense input": (as_is, Call.BACKWARD, 30, True, 0.5, [B, B]),
    "backward, past the kernel's rows": (as_is, Call.BACKWARD, 129, True, 0.2, [B, B]),
    "backward, a user's activation": (user_activation, Call.BACKWARD, 30, True, 0.2, [K, B]),
    "backward, read-only W": (read_only, Call.BACKWARD, 30, True, 0.2, [B, B]),
    "batch loop of a user's activation": (user_activation, Call.EPOCH, 30, True, 0.2, [K, B]),
    "batch loop past the crossover": (as_is, Call.EPOCH, 130, True, 1.0, [B, B]),
    "forward": (as_is, Call.FORWARD, 30, True, 0.2, [B, B]),
}


@pytest.mark.parametrize("case", GRADIENTS)
def test_the_first_layers_weight_gradient_is_sparse_where_it_pays(case):
    setup, call, rows, input_finite, density, gradients = GRADIENTS[case]
    net = network()
    setup(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastscratch.FallbackWarning)
        route = routing.route(net, call, rows, input_finite=input_finite, nonzero_fraction=density)
    assert [r.gradient for r in route.layers] == gradients


def test_products_past_the_size_limit_are_blas(monkeypatch):
    """``config.KERNEL_MAX_ENTRIES`` (no limit by default) sends larger products to BLAS: 1024 / 12 = 85 rows."""
    monkeypatch.setattr(fastscratch.config, "KERNEL_MAX_ENTRIES", 1024)
    net = network()
    assert [(r.products, r.activation) for r in routing.route(net, Call.FORWARD, 100).layers] == [(B, N), (K, KF)]
    assert [r.products for r in routing.route(net, Call.FORWARD, 85).layers] == [K, K]


def test_the_reasons_say_why():
    net = network()
    assert routing.route(net, Call.EPOCH, 10).reason == "every layer compiled"
    assert routing.route(net, Call.EPOCH, 130).reason == "past the crossover"
    tied_net = network((6, 6))
    tied(tied_net)
    assert routing.route(tied_net, Call.EPOCH, 10).reason == "parameters that share memory"
    assert routing.route(net, Call.ACCURACY, 3).reason == "too few rows to index"


def test_a_lone_layer_has_its_own_route_without_a_loss():
    layer = fastscratch.FullyConnectedLayer(4, 3, fastscratch.relu, fastscratch.derivated_relu)
    route = routing.route(layer, Call.FORWARD, 2)
    assert route.lone and route.loss is None and route.loss_code is None and route.builtin_functions
    assert route.way is Way.LAYERS and route.layers[0].layer is layer and route.layers[0].products is K
    layer.derivated_activation_function = fastscratch.derivated_sigmoid  # no longer a built-in pair
    assert not routing.route(layer, Call.FORWARD, 2).builtin_functions


def test_per_call_routes_are_kept_while_their_objects_are_the_same():
    net = network()
    first = routing.route(net, Call.FORWARD, 3)
    assert routing.route(net, Call.FORWARD, 3) is first  # kept
    assert routing.route(net, Call.FORWARD, 5) is first  # the same size test's outcome: the same route
    assert routing.route(net, Call.FORWARD, 60000) is first
    backward = routing.route(net, Call.BACKWARD, 3, nonzero_fraction=0.2)
    other_size = routing.route(net, Call.BACKWARD, 200, nonzero_fraction=0.2)  # past KERNEL_MAX_BACKWARD_ROWS
    dense = routing.route(net, Call.BACKWARD, 3, nonzero_fraction=0.9)
    assert other_size is not backward and dense is not backward
    assert routing.route(net, Call.BACKWARD, 5, nonzero_fraction=0.3) is backward  # all kept
    assert routing.route(net, Call.BACKWARD, 300, nonzero_fraction=0.3) is other_size is dense
    assert routing.route(net, Call.FORWARD, 3) is first
    assert routing.route(net, Call.PREDICT, 50) is not routing.route(net, Call.PREDICT, 50)  # scanned: decided anew
    net.layers[1].W = net.layers[1].W.copy()
    assert routing.route(net, Call.FORWARD, 3) is not first  # another object: decided anew
    net.layers[0].activation_function = fastscratch.tanh
    route = routing.route(net, Call.FORWARD, 3)
    assert route.layers[0].activation_code == routing.route(net, Call.FORWARD, 3).layers[0].activation_code
    assert route.layers[0].activation_code != first.layers[0].activation_code


def test_kept_routes_are_bounded(monkeypatch):
    monkeypatch.setattr(fastscratch.config, "ROUTES_KEPT", 2)
    net = network()
    routes = [routing.route(net, call, 3) for call in (Call.FORWARD, Call.BACKWARD, Call.OPTIMIZE)]
    assert routing.route(net, Call.OPTIMIZE, 3) is routes[2]
    assert len(net._routes.entry[1]) <= 2


def test_threads_routing_one_network_get_its_routes(rng):
    """Four threads call one network: each reads the kept routes once and stores a new set in one assignment."""
    net = network()
    X = rng.random((40, 12))
    expected = net.forward(X[:3]), net.forward(X)
    errors = []

    def calls():
        try:
            for i in range(200):
                x = X[:3] if i % 2 else X
                np.testing.assert_allclose(net.forward(x), expected[i % 2 == 0], rtol=1e-12)
                routing.route(net, [Call.BACKWARD, Call.OPTIMIZE, Call.PREDICT][i % 3], 1)
        except Exception as error:  # noqa: BLE001
            errors.append(error)
    threads = [threading.Thread(target=calls) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_copies_and_pickles_start_with_no_route():
    import copy
    import pickle
    net = network()
    routing.route(net, Call.FORWARD, 3)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert other._routes.entry is None
