"""SequenceUNet: the ADM/EDM U-Net (models.networks.ADMUNet) in one dimension, for one-hot sequences [N, C, L]
(C = the alphabet's size: 4 for DNA) under the same EDM preconditioning and scheduler seam as the image U-Nets.

Sequences have one spatial axis, so convolutions run over length only and a level halves L instead of
H and W. Everything else — the pre-activation residual blocks with adaptive scale/shift from the
noise+label embedding, self-attention at the coarsest level, zero-init output layers so the untrained
network is the identity part of the preconditioner — is the image ADM's own code (dims=1), because
those choices are what make the σ-conditioning and the loss seam behave the same.

Registered in models.networks.ARCHS as 'dnaunet' (kind 'sequence'); the builder passes
seq_length=L, in_channels=out_channels=C and label_dim, and calls
model(x [N, C, L] already scaled by c_in, noise_labels [N], class_labels [N, label_dim] or None).
"""

from __future__ import annotations

import torch

from models.networks import ADMUNet


def level_lengths(seq_length: int, num_levels: int) -> list[int]:
    """Lengths of the U-Net levels; a ValueError with the fix if a level would have a fractional length, or if
    there is no level at all."""
    if num_levels < 1:
        raise ValueError(
            "SequenceUNet: channel_mult is empty; a U-Net needs at least one level (e.g. channel_mult=[1])"
        )
    if seq_length % 2 ** (num_levels - 1):
        fit = 1
        while seq_length % 2**fit == 0:
            fit += 1
        chain = " -> ".join(f"{seq_length / 2**i:g}" for i in range(num_levels))
        raise ValueError(
            f"SequenceUNet: seq_length={seq_length} cannot be halved through {num_levels} levels "
            f"({chain}); it must be divisible by 2**(levels-1)={2 ** (num_levels - 1)}. Fix: use "
            f"at most {fit} levels (len(channel_mult) <= {fit}) or trim/pad the sequences to a "
            f"multiple of {2 ** (num_levels - 1)}."
        )
    return [seq_length // 2**i for i in range(num_levels)]


class SequenceUNet(ADMUNet):
    """1-D ADM U-Net. channel_mult sets the levels (each halves L); attn_levels lists the levels
    (0 = full length) whose blocks get self-attention — default: the coarsest only. The bottleneck
    always has one attention block."""

    def __init__(
        self,
        seq_length: int,
        in_channels: int = 4,
        out_channels: int = 4,
        label_dim: int = 0,
        model_channels: int = 64,
        channel_mult: tuple[int, ...] = (1, 2, 2),
        channel_mult_emb: int = 4,
        num_blocks: int = 2,
        attn_levels: tuple[int, ...] | None = None,
        channels_per_head: int = 64,
        dropout: float = 0.1,
        label_dropout: float = 0.0,
        embedding_type: str = "positional",
    ):
        lengths = level_lengths(seq_length, len(channel_mult))
        levels = len(channel_mult)
        attn = {levels - 1} if attn_levels is None else {int(a) % levels for a in attn_levels}
        super().__init__(
            [str(L) for L in lengths],
            [level in attn for level in range(levels)],
            in_channels,
            out_channels,
            label_dim,
            0,
            model_channels,
            channel_mult,
            channel_mult_emb,
            num_blocks,
            channels_per_head,
            dropout,
            label_dropout,
            embedding_type,
            dims=1,
        )
        self.seq_length = seq_length

    def forward(
        self,
        x: torch.Tensor,
        noise_labels: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        augment_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.seq_length:
            raise ValueError(
                f"SequenceUNet: expected x of shape [N, {self.in_channels}, {self.seq_length}], got {list(x.shape)}"
            )
        if augment_labels is not None:
            raise ValueError("SequenceUNet: augment_labels are not supported (no augmentation pipe for sequences)")
        return super().forward(x, noise_labels, class_labels)
