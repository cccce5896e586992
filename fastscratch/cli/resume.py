"""``fastscratch train --resume DIR``: what a run directory must hold to be continued, and that it is the run asked for.

A run continues from its ``model.npz`` (the weights after ``model_epoch``
epochs) and its ``history.json`` (its options, the test image it drew, its
untrained figures and the history of those epochs); nothing is drawn again.
It is refused, with the reason and what to do, when the directory is not a
run's, when the options given or the data differ from the run's, when its run
stopped on a non-finite loss (continuing would repeat it) or left no weights
to continue from, and when ``model.npz`` is not the network the history
describes. The claim (``rundir.claim_run_to_resume``) refuses a run that is
still going.
"""
import json
import os

from fastscratch.cli.record import weights_sha256
from fastscratch.cli.text import layer_sizes

#: The options that define a run: (``args`` attribute, ``config`` key, option). ``--epochs`` may grow.
RUN_OPTIONS = (("hidden", "hidden", "--hidden"), ("activation", "activation", "--activation"),
               ("loss", "loss", "--loss"), ("seed", "seed", "--seed"), ("dtype", "dtype", "--dtype"),
               ("backend", "backend", "--backend"), ("batch_size", "batch_size", "--batch-size"),
               ("lr", "learning_rate", "--lr"), ("dataset", "dataset", "--dataset"))


class ResumeError(ValueError):
    """The run directory cannot be continued as asked; the message says why and what to do."""


def read_history(path):
    """The ``history.json`` of the run directory ``path``, or ``ResumeError`` when it is not a run directory."""
    if not os.path.isdir(path):
        raise ResumeError(f"{path} is not a directory" if os.path.exists(path) else f"no such directory: {path}")
    file = os.path.join(path, "history.json")
    try:
        with open(file, encoding="utf-8") as f:
            history = json.load(f)
    except FileNotFoundError:
        raise ResumeError(f"{path} is not a fastscratch run directory: it has no history.json") from None
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
        raise ResumeError(f"{path} is not a fastscratch run directory: its history.json cannot be read ({err})") \
            from None
    keys = ("status", "losses", "accuracies", "seconds_per_epoch", "completed_epochs", "model_epoch",
            "untrained_loss", "untrained_accuracy", "config")
    if not isinstance(history, dict) or any(key not in history for key in keys) \
            or any(key not in history["config"] for _, key, _ in RUN_OPTIONS) \
            or "test_image_index" not in history["config"]:
        raise ResumeError(f"{path} is not a fastscratch run directory: its history.json is not a run's record")
    return history


def take_options(history, args, given):
    """Set ``args``' options left out from the run's record; ``ResumeError`` naming those given that differ.

    ``given`` holds the ``args`` attributes set on the command line. Without
    ``--epochs`` the run continues to the epochs it was planned for; without
    ``--data-dir`` the data is looked for as a new run looks for it, or in the
    directory the run was given; without ``--no-verify`` it is verified as the
    run's was.
    """
    config = history["config"]
    differ = []
    for attribute, key, option in RUN_OPTIONS:
        value = getattr(args, attribute)
        if attribute not in given:
            setattr(args, attribute, config[key])
        elif value != config[key]:
            differ.append(f"{option} {_shown(config[key])} (given: {_shown(value)})")
    if differ:
        raise ResumeError(f"the run in {args.resume} was trained with other options than those given: "
                          f"{'; '.join(differ)}. Leave them out to continue the run as it was, or start a new run")
    if "epochs" not in given:
        args.epochs = config["epochs"]
    if "data_dir" not in given and config.get("data_dir") is not None:
        args.data_dir = config.get("data_directory")
    if "no_verify" not in given:
        args.no_verify = not config.get("verify", True)


def _shown(value):
    if isinstance(value, list):
        return " ".join(map(str, value)) if value else "(none)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def start_epoch(path, history):
    """The epoch the run continues from: the one whose weights ``model.npz`` holds; ``ResumeError`` when none is."""
    status, done, epoch = history["status"], history["completed_epochs"], history["model_epoch"]
    if status == "non-finite loss" or (history.get("stopped_at") and not history.get("signal")):
        where = (history.get("stopped_at") or {}).get("epoch", done + 1)
        raise ResumeError(f"the run in {path} stopped on a non-finite loss in epoch {where}; continuing it would "
                          f"repeat that (the same weights, data and options give the same loss): start a new run, "
                          f"with a smaller --lr")
    if epoch is None:
        raise ResumeError(f"the run in {path} ended before it saved its weights (history.json says "
                          f"\"{status}\" and names no model: it was killed, with SIGKILL or a crash, before it "
                          f"could save); there is nothing to continue from: start a new run")
    if not (isinstance(epoch, int) and 0 <= epoch <= done == len(history["losses"]) == len(history["accuracies"])):
        raise ResumeError(f"the run in {path} cannot be continued: its history.json does not agree with itself "
                          f"(model_epoch {epoch}, {done} completed epochs, {len(history['losses'])} losses)")
    return epoch


def read_model(path, history, network_class):
    """The network of ``model.npz`` as ``network_class``, checked to be the one ``history`` describes."""
    file = os.path.join(path, "model.npz")
    if not os.path.exists(file):
        elsewhere = history.get("model_saved_to")
        raise ResumeError(f"the run in {path} has no model.npz to continue from" + (
            f"; it saved its weights to {elsewhere} instead: copy that file to {file} to continue it"
            if elsewhere else ""))
    try:
        network = network_class.load(file)
    except (OSError, ValueError) as err:
        raise ResumeError(f"the run in {path} cannot be continued: its model.npz cannot be loaded ({err})") \
            from None
    config = history["config"]
    sizes = [network.num_inputs] + [layer.size for layer in network.layers]
    if sizes != config["layer_sizes"] or network.dtype.name != config["dtype"]:
        raise ResumeError(f"the run in {path} cannot be continued: its model.npz holds a {layer_sizes(sizes)} "
                          f"{network.dtype.name} network, the run's is {layer_sizes(config['layer_sizes'])} "
                          f"{config['dtype']}")
    expected = history.get("model_sha256")
    if expected is not None and weights_sha256(network) != expected:
        raise ResumeError(f"the run in {path} cannot be continued: its model.npz does not hold the weights "
                          f"history.json describes (those after epoch {history['model_epoch']}); it was replaced, "
                          f"or a kill came while the run was saving")
    return network


def check_data(path, history, loaded):
    """``ResumeError`` naming each file of ``loaded`` whose SHA-256 is not the one the run trained on."""
    config, dataset = history["config"], loaded.dataset
    recorded = config.get("data_sha256")
    if recorded is None:  # a record written before fastscratch kept digests: a verified run had the dataset's
        if not config.get("verified"):
            raise ResumeError(f"the run in {path} records no digests of its data (it trained with --no-verify, "
                              f"on a fastscratch that did not keep them), so the data cannot be checked")
        recorded = {file.name: file.sha256 for file in dataset.files}
    differ = [f"{file.name} has SHA-256 {digest}, the run's had {recorded.get(file.name)}"
              for file, digest in zip(dataset.files, loaded.sha256) if recorded.get(file.name) != digest]
    if differ:
        raise ResumeError(f"the run in {path} was trained on other data than {loaded.directory} holds: "
                          f"{'; '.join(differ)}. Pass --data-dir with the run's files to continue it")
