"""The registered model names, apart from `models` so that reading them needs no torch.

The config, the CLI and the driver actor name models without building them;
keeping torch out of their imports saves each such process ~1.2 s and ~450 MiB.
"""

PAPER_MODELS: tuple[str, ...] = (
    # conf/EMNIST_balance_conf.json of the reference, in its order.
    "paper-cnn2-128-256",
    "paper-cnn2-128-384",
    "paper-cnn2-128-512",
    "paper-cnn2-256-256-d0.3",
    "paper-cnn2-256-512-d0.4",
    "paper-cnn3-64-128-256",
    "paper-cnn3-64-128-192",
    "paper-cnn3-128-192-256",
    "paper-cnn3-128-128-128-d0.3",
    "paper-cnn3-128-128-192-d0.3",
)

SMALL_MODELS: tuple[str, ...] = (
    # Varied depth (conv 1-4 stages, MLP 1-3 layers), width and dropout; each
    # trains an epoch of 30k 28x28 images in under ~6 s on one CPU thread (table above).
    "cnn1-8",
    "cnn2-4-8",
    "cnn2-8-16",
    "cnn2-8-8-d0.3",
    "cnn3-4-8-16",
    "cnn3-6-12-24",
    "cnn4-4-8-16-32",
    "mlp-128",
    "mlp-256-128",
    "mlp-512-256-128",
)


def model_names() -> list[str]:
    """The registered names, for ``fedmd-ray presets`` and error messages."""
    return [*PAPER_MODELS, *SMALL_MODELS]
