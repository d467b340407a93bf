"""What the two example trainers share and is not the point of either: the data, the network, the options.

The point of each example is its training step with the time draw replaced (diffusers_ddpm_digits.py,
rectified_flow_digits.py); the digits, the small diffusers U-Net and the common flags live here once.
"""

from __future__ import annotations

import argparse

import torch
from diffusers import UNet2DModel


def load_digits() -> torch.Tensor:
    """scikit-learn's 1,797 8×8 digits, [N, 1, 8, 8] in [−1, 1] (diffusers' trainers normalise images so)."""
    from sklearn.datasets import load_digits as sklearn_digits

    images = torch.from_numpy(sklearn_digits().images).float()[:, None] / 16.0
    return images * 2 - 1


def make_model(width: int) -> UNet2DModel:
    """A small diffusers U-Net for 8×8 images (two levels, attention at 4×4)."""
    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(width, 2 * width),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=min(8, width),
        attention_head_dim=width,
    )


def parser(description: str, draw: str, sample_steps: int) -> argparse.ArgumentParser:
    """The flags both trainers take; `draw` names their time variable in the help, `sample_steps` its default."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--timesteps", choices=["uniform", "infonoise"], default="infonoise", help=f"the {draw} draw")
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width", type=int, default=32, help="channels of the U-Net's first level")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-bins", type=int, default=128, help="InfoNoise's grid (docs/method.md §5)")
    p.add_argument("--min-count", type=int, default=8, help="InfoNoise's errors per bin before a refresh")
    p.add_argument(
        "--mmse-cap",
        choices=["none", "coordinate-bayes", "auto"],
        default="auto",
        help="InfoNoise's cap of m̂ by the coordinate-wise Bayes bound (docs/method.md §4b; 'auto', the library's "
        "default, is none on these continuous digits — they have 17 levels, so 'coordinate-bayes' applies too)",
    )
    p.add_argument("--samples", type=int, default=0, help="images to draw after training (0: none)")
    p.add_argument("--sample-steps", type=int, default=sample_steps)
    p.add_argument("--out", type=str, default=None, help="folder for the model, the sampler state and samples")
    return p
