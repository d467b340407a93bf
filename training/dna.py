"""SequenceUNet: the ADM/EDM U-Net (DhariwalUNet in training/networks.py) in one dimension, for
one-hot DNA [N, 4, L] under the same EDM preconditioning and scheduler seam as the image U-Nets.

Why a separate model: sequences have one spatial axis, so convolutions run over length only and a
level halves L instead of H and W. Everything else — the pre-activation residual blocks with
adaptive scale/shift from the noise+label embedding, self-attention at the coarsest level, zero-init
output layers so the untrained network is the identity part of the preconditioner — is kept as in
EDM, because those choices are what make the σ-conditioning and the loss seam behave the same.

Registered in training.networks.ARCHS as 'dnaunet' (kind 'sequence'); the builder passes
seq_length=L, in_channels=out_channels=4 and label_dim, and calls
model(x [N, 4, L] already scaled by c_in, noise_labels [N], class_labels [N, label_dim] or None).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.networks import FourierEmbedding, GroupNorm, Linear, PositionalEmbedding, weight_init


def level_lengths(seq_length: int, num_levels: int) -> list[int]:
    """Lengths of the U-Net levels; a ValueError with the fix if a level would have a fractional length."""
    if seq_length % 2 ** (num_levels - 1):
        fit = 1
        while seq_length % 2 ** fit == 0:
            fit += 1
        chain = " -> ".join(f"{seq_length / 2 ** i:g}" for i in range(num_levels))
        raise ValueError(f"SequenceUNet: seq_length={seq_length} cannot be halved through {num_levels} levels "
                         f"({chain}); it must be divisible by 2**(levels-1)={2 ** (num_levels - 1)}. Fix: use "
                         f"at most {fit} levels (len(channel_mult) <= {fit}) or trim/pad the sequences to a "
                         f"multiple of {2 ** (num_levels - 1)}.")
    return [seq_length // 2 ** i for i in range(num_levels)]


class Conv1d(nn.Module):
    """Convolution over length with EDM's init modes; optional 2x down (average pool) or up (nearest)
    resampling before it. kernel=0: resampling only."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True, up: bool = False,
                 down: bool = False, init_mode: str = "kaiming_normal", init_weight: float = 1.0,
                 init_bias: float = 0.0):
        super().__init__()
        self.in_channels, self.out_channels, self.up, self.down = in_channels, out_channels, up, down
        fan = dict(mode=init_mode, fan_in=in_channels * kernel, fan_out=out_channels * kernel)
        self.weight = (nn.Parameter(weight_init([out_channels, in_channels, kernel], **fan) * init_weight)
                       if kernel else None)
        self.bias = nn.Parameter(weight_init([out_channels], **fan) * init_bias) if kernel and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = x.repeat_interleave(2, dim=-1)
        if self.down:
            x = F.avg_pool1d(x, 2)
        if self.weight is not None:
            b = None if self.bias is None else self.bias.to(x.dtype)
            x = F.conv1d(x, self.weight.to(x.dtype), b, padding=self.weight.shape[-1] // 2)
        return x


class Block1d(nn.Module):
    """Residual block: norm-SiLU-conv, adaptive scale/shift from the embedding, norm-SiLU-dropout-conv
    (zero init), skip; then optional multi-head self-attention over positions (zero-init projection)."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, up: bool = False,
                 down: bool = False, attention: bool = False, channels_per_head: int = 64,
                 dropout: float = 0.0, init: dict | None = None, init_zero: dict | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.dropout = in_channels, out_channels, dropout
        self.num_heads = max(1, out_channels // channels_per_head) if attention else 0
        while self.num_heads and out_channels % self.num_heads:
            self.num_heads -= 1
        self.norm0 = GroupNorm(in_channels)
        self.conv0 = Conv1d(in_channels, out_channels, 3, up=up, down=down, **init)
        self.affine = Linear(emb_channels, out_channels * 2, **init)
        self.norm1 = GroupNorm(out_channels)
        self.conv1 = Conv1d(out_channels, out_channels, 3, **init_zero)
        self.skip = None
        if out_channels != in_channels or up or down:
            self.skip = Conv1d(in_channels, out_channels, 1 if out_channels != in_channels else 0,
                               up=up, down=down, **init)
        if self.num_heads:
            self.norm2 = GroupNorm(out_channels)
            self.qkv = Conv1d(out_channels, out_channels * 3, 1, **init)
            self.proj = Conv1d(out_channels, out_channels, 1, **init_zero)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        scale, shift = self.affine(emb)[:, :, None].to(h.dtype).chunk(2, dim=1)
        h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        h = self.conv1(F.dropout(h, p=self.dropout, training=self.training))
        x = h + (x if self.skip is None else self.skip(x))
        if self.num_heads:
            n, c, L = x.shape
            qkv = self.qkv(self.norm2(x)).reshape(n * self.num_heads, 3, c // self.num_heads, L)
            a = F.scaled_dot_product_attention(*qkv.transpose(2, 3).unbind(1))   # [n·heads, L, c/heads]
            x = self.proj(a.transpose(1, 2).reshape(n, c, L)) + x
        return x


class SequenceUNet(nn.Module):
    """1-D ADM-style U-Net. channel_mult sets the levels (each halves L); attn_levels lists the levels
    (0 = full length) whose blocks get self-attention — default: the coarsest only. The bottleneck
    always has one attention block."""

    def __init__(self, seq_length: int, in_channels: int = 4, out_channels: int = 4, label_dim: int = 0,
                 model_channels: int = 64, channel_mult: tuple[int, ...] = (1, 2, 2), channel_mult_emb: int = 4,
                 num_blocks: int = 2, attn_levels: tuple[int, ...] | None = None, channels_per_head: int = 64,
                 dropout: float = 0.1, label_dropout: float = 0.0, embedding_type: str = "positional"):
        super().__init__()
        if embedding_type not in ("positional", "fourier"):
            raise ValueError(f"SequenceUNet: embedding_type='{embedding_type}'; valid: 'positional', 'fourier'")
        lengths = level_lengths(seq_length, len(channel_mult))
        levels = len(channel_mult)
        attn_levels = {levels - 1} if attn_levels is None else {int(a) % levels for a in attn_levels}
        self.seq_length, self.in_channels, self.out_channels = seq_length, in_channels, out_channels
        self.label_dim, self.label_dropout = label_dim, label_dropout

        emb_ch = model_channels * channel_mult_emb
        init = dict(init_mode="kaiming_uniform", init_weight=math.sqrt(1 / 3), init_bias=math.sqrt(1 / 3))
        init_zero = dict(init_mode="kaiming_uniform", init_weight=0, init_bias=0)
        blk = dict(emb_channels=emb_ch, channels_per_head=channels_per_head, dropout=dropout, init=init,
                   init_zero=init_zero)

        self.map_noise = (PositionalEmbedding(model_channels) if embedding_type == "positional"
                          else FourierEmbedding(model_channels))
        self.map_layer0 = Linear(model_channels, emb_ch, **init)
        self.map_layer1 = Linear(emb_ch, emb_ch, **init)
        self.map_label = Linear(label_dim, emb_ch, bias=False, init_mode="kaiming_normal",
                                init_weight=math.sqrt(label_dim)) if label_dim else None

        self.enc = nn.ModuleDict()
        c = in_channels
        for level, (mult, L) in enumerate(zip(channel_mult, lengths)):
            if level == 0:
                self.enc[f"{L}_conv"] = Conv1d(c, model_channels * mult, 3, **init)
                c = model_channels * mult
            else:
                self.enc[f"{L}_down"] = Block1d(c, c, down=True, **blk)
            for i in range(num_blocks):
                self.enc[f"{L}_block{i}"] = Block1d(c, model_channels * mult, attention=level in attn_levels, **blk)
                c = model_channels * mult
        skips = [m.out_channels for m in self.enc.values()]

        self.dec = nn.ModuleDict()
        for level in reversed(range(len(channel_mult))):
            L, mult = lengths[level], channel_mult[level]
            if level == len(channel_mult) - 1:
                self.dec[f"{L}_in0"] = Block1d(c, c, attention=True, **blk)
                self.dec[f"{L}_in1"] = Block1d(c, c, **blk)
            else:
                self.dec[f"{L}_up"] = Block1d(c, c, up=True, **blk)
            for i in range(num_blocks + 1):
                self.dec[f"{L}_block{i}"] = Block1d(c + skips.pop(), model_channels * mult,
                                                    attention=level in attn_levels, **blk)
                c = model_channels * mult
        self.out_norm = GroupNorm(c)
        self.out_conv = Conv1d(c, out_channels, 3, **init_zero)

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor, class_labels: torch.Tensor | None = None,
                augment_labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.seq_length:
            raise ValueError(f"SequenceUNet: expected x of shape [N, {self.in_channels}, {self.seq_length}], "
                             f"got {list(x.shape)}")
        if augment_labels is not None:
            raise ValueError("SequenceUNet: augment_labels are not supported (no augmentation pipe for sequences)")
        emb = self.map_layer1(F.silu(self.map_layer0(self.map_noise(noise_labels))))
        if self.map_label is not None:
            if class_labels is None:
                raise ValueError(f"SequenceUNet: label_dim={self.label_dim} but class_labels is None")
            if self.training and self.label_dropout:  # classifier-free guidance: drop to the all-zero label
                keep = torch.rand([x.shape[0], 1], device=x.device) >= self.label_dropout
                class_labels = class_labels * keep.to(class_labels.dtype)
            emb = emb + self.map_label(class_labels.to(emb.dtype))
        emb = F.silu(emb)

        skips = []
        for m in self.enc.values():
            x = m(x, emb) if isinstance(m, Block1d) else m(x)
            skips.append(x)
        for name, m in self.dec.items():
            if "_block" in name:
                x = torch.cat([x, skips.pop()], dim=1)
            x = m(x, emb)
        return self.out_conv(F.silu(self.out_norm(x)))
