"""Draw the README's "Predict your own digit" figure, docs/predict.png, and its sample images, docs/digits/.

    python docs/predict_figure.py MODEL      # MODEL: a run directory of `fastscratch train`, or its model.npz

The sample images are digits as people bring them: drawn with a mouse in a paint program (thick dark strokes on
a large white canvas), a pencil digit photographed on paper (uneven light, grain, a colour JPEG), a small light
digit on black, one drawn on a transparent background, and an MNIST test image lost in a wide dark margin.
Each column shows an image as it is, what `fastscratch.images` makes of it and the class the network gives,
and below, what the network gives when the image is only resized to 28x28 and divided by 255.
"""
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))


def _canvas(size, paper):
    picture = Image.new("L", size, paper)
    return picture, ImageDraw.Draw(picture)


def drawn_seven():
    picture, draw = _canvas((420, 300), 255)
    draw.line([(140, 60), (260, 52), (285, 58), (230, 160), (196, 250)], fill=0, width=16, joint="curve")
    draw.line([(190, 150), (262, 146)], fill=0, width=14)
    return picture


def drawn_three():
    picture, draw = _canvas((300, 300), 255)
    draw.arc((95, 40, 205, 150), start=200, end=95, fill=0, width=13)
    draw.arc((85, 135, 215, 260), start=265, end=160, fill=0, width=13)
    return picture


def pencil_four(rng):
    """A pencil '4' on paper lit from the left, with grain, as a phone's colour JPEG would hold it."""
    height, width = 480, 360
    light = np.linspace(0.78, 0.95, width)[None, :] * np.linspace(0.95, 0.88, height)[:, None]
    ink, draw = _canvas((width, height), 0)
    draw.line([(200, 110), (110, 300), (255, 292)], fill=255, width=11, joint="curve")
    draw.line([(212, 190), (205, 390)], fill=255, width=11)
    ink = np.asarray(ink.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float64) / 255
    grey = light * (1 - 0.6 * ink) + rng.normal(0, 0.015, (height, width))
    paper = np.array([1.0, 0.97, 0.9])
    rgb = np.clip(grey[..., None] * paper * 255, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def small_nine():
    picture, draw = _canvas((64, 64), 0)
    draw.ellipse((22, 10, 42, 30), outline=255, width=4)
    draw.line([(41, 20), (38, 54)], fill=255, width=4)
    return picture


def transparent_six():
    """Dark strokes on a transparent background (what many drawing apps export)."""
    mask, draw = _canvas((200, 240), 0)
    draw.arc((50, 30, 150, 230), start=120, end=250, fill=255, width=12)
    draw.ellipse((58, 120, 142, 210), outline=255, width=12)
    picture = Image.new("RGBA", mask.size, (0, 0, 0, 0))
    picture.paste(Image.new("RGBA", mask.size, (30, 30, 30, 255)), mask=mask)
    return picture


def lost_mnist(mnist_dir):
    from fastscratch.datasets import load_mnist
    canvas = Image.new("L", (240, 180), 0)
    canvas.paste(Image.fromarray(load_mnist(mnist_dir, progress=False)[2][15]), (170, 24))  # test image 15: a 5
    return canvas


#: file name -> how it is made, from a random generator and MNIST's folder
SAMPLES = {"drawn-seven.png": lambda rng, mnist_dir: drawn_seven(),
           "drawn-three.png": lambda rng, mnist_dir: drawn_three(),
           "pencil-four.jpg": lambda rng, mnist_dir: pencil_four(rng),
           "small-nine.png": lambda rng, mnist_dir: small_nine(),
           "transparent-six.png": lambda rng, mnist_dir: transparent_six(),
           "mnist-five.png": lambda rng, mnist_dir: lost_mnist(mnist_dir)}


def write_samples(directory, mnist_dir):
    rng = np.random.default_rng(26)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, make in SAMPLES.items():
        path = os.path.join(directory, name)
        make(rng, mnist_dir).save(path, **({"quality": 88} if name.endswith(".jpg") else {}))
        paths.append(path)
    return paths


def naive_row(path):
    """The image resized to 28x28 in grey and divided by 255, as MNIST's rows are fed."""
    with Image.open(path) as picture:
        return np.asarray(picture.convert("L").resize((28, 28), Image.Resampling.LANCZOS), dtype=np.float64
                          ).reshape(-1) / 255


def main(model):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastscratch import SimpleNetwork
    from fastscratch.images import read_digit
    if os.path.isdir(model):
        model = os.path.join(model, "model.npz")
    from fastscratch.datasets import load_mnist, prepare
    network = SimpleNetwork.load(model)
    mnist_dir = os.environ.get("FASTSCRATCH_MNIST_DIR")
    _, _, X_test, y_test = prepare(*load_mnist(mnist_dir, progress=False), dtype=network.dtype.type)
    accuracy = network.evaluate_accuracy(X_test, y_test)
    paths = write_samples(os.path.join(HERE, "digits"), mnist_dir)
    fig, axes = plt.subplots(3, len(paths), figsize=(2.1 * len(paths), 6.9))
    for column, path in enumerate(paths):
        with Image.open(path) as picture:
            shown = picture.convert("RGBA")
        checker = Image.new("RGBA", shown.size, (255, 255, 255, 255))
        if shown.getextrema()[3][0] < 255:  # show transparency over a light checkerboard
            tile = np.indices(shown.size[::-1]).sum(axis=0) // 16 % 2
            checker = Image.fromarray(np.where(tile[..., None], 225, 250).astype(np.uint8).repeat(3, axis=2)
                                      ).convert("RGBA")
        axes[0, column].imshow(Image.alpha_composite(checker, shown))
        axes[0, column].set_title(f"{os.path.basename(path)}\n{shown.size[0]}x{shown.size[1]}", fontsize=8)
        digit = read_digit(path)
        axes[1, column].imshow(digit.image, cmap="gray", vmin=0, vmax=1)
        axes[1, column].set_title(f"read_digit: predicted {network.predict(digit.row)}\n"
                                  f"({digit.background} background)", fontsize=8)
        naive = naive_row(path)
        axes[2, column].imshow(naive.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        axes[2, column].set_title(f"only resized to 28x28:\npredicted {network.predict(naive)}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for row, label in enumerate(["the image", "as MNIST's digits\nwere made", "as it is"]):
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.suptitle(f"A network saved by fastscratch train ({100 * accuracy:.2f}% on MNIST's test set) on digits from "
                 "elsewhere", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "predict.png"), dpi=100)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
