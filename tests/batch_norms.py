"""BatchNorms as training leaves them, for the tests and benchmarks of folding
(`rpsloc.backbones.folding`): a random init's BatchNorms are the identity, which folding would
barely touch."""

import torch

#: (attribute, low, high) of the uniform values each BatchNorm gets.
TRAINED_RANGES = (
    ("running_mean", -0.5, 0.5),
    ("running_var", 0.3, 3.0),
    ("weight", 0.5, 1.5),
    ("bias", -0.3, 0.3),
)


def with_trained_batch_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """`model`, its BatchNorms' statistics and affine parameters drawn from TRAINED_RANGES."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                for name, low, high in TRAINED_RANGES:
                    getattr(module, name).uniform_(low, high, generator=generator)
    return model
