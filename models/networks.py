"""Denoiser networks and EDM preconditioning (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models", Table 1 and Appendix B/F).

Layout:
  layers        Linear / Conv (1-D or 2-D) with EDM's weight-init modes and fused up/down resampling, GroupNorm,
                UNetBlock, PositionalEmbedding / FourierEmbedding of the noise label
  U-Nets        SongUNet (DDPM++ / NCSN++), ADMUNet (1-D or 2-D) → DhariwalUNet. forward(x, noise_labels,
                class_labels=None, augment_labels=None) -> tensor shaped like x
  precond       EDMPrecond, VPPrecond, VEPrecond: D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)
                on any data shape [N, C, *spatial]; the raw network F is built inside from ARCHS
  construction  build_network(arch, precond, data_shape=..., ...) from JSON-able kwargs only,
                from_snapshot(snapshot_or_path, which='ema')

Model contract for ARCHS entries: an 'image' arch is constructed as
    cls(img_resolution=H, in_channels=C, out_channels=C, label_dim=label_dim, **kwargs)   (needs H == W)
a 'sequence' arch (data_shape (C, L)) as
    cls(seq_length=L, in_channels=C, out_channels=C, label_dim=label_dim, **kwargs)
and both are called as model(x, noise_labels[N], class_labels=None|[N, label_dim], **model_kwargs).
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------------
# Layers.


def weight_init(shape, mode: str, fan_in: int, fan_out: int) -> torch.Tensor:
    """EDM's four init modes, each with unit gain (scaled afterwards by init_weight / init_bias)."""
    if mode == "xavier_uniform":
        return math.sqrt(6 / (fan_in + fan_out)) * (torch.rand(*shape) * 2 - 1)
    if mode == "xavier_normal":
        return math.sqrt(2 / (fan_in + fan_out)) * torch.randn(*shape)
    if mode == "kaiming_uniform":
        return math.sqrt(3 / fan_in) * (torch.rand(*shape) * 2 - 1)
    if mode == "kaiming_normal":
        return math.sqrt(1 / fan_in) * torch.randn(*shape)
    raise ValueError(
        f"unknown init_mode '{mode}'; valid: xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal"
    )


class Linear(nn.Module):
    def __init__(
        self, in_features, out_features, bias=True, init_mode="kaiming_normal", init_weight=1.0, init_bias=0.0
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        init = dict(mode=init_mode, fan_in=in_features, fan_out=out_features)
        self.weight = nn.Parameter(weight_init([out_features, in_features], **init) * init_weight)
        self.bias = nn.Parameter(weight_init([out_features], **init) * init_bias) if bias else None

    def forward(self, x):
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), b)


class Conv(nn.Module):
    """3x3/1x1 convolution over `dims` spatial axes (2: images, 1: sequences) with optional 2x up/down
    resampling by a separable FIR filter. kernel=0 means resampling only (no weights). fused_resample
    folds the resampling into the conv (EDM's residual encoder path). Any even size resamples exactly
    by 2: 28 -> 14 -> 7 and back. The default (1, 1) filter is average pooling down, nearest up."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel,
        bias=True,
        up=False,
        down=False,
        resample_filter=(1, 1),
        fused_resample=False,
        init_mode="kaiming_normal",
        init_weight=1.0,
        init_bias=0.0,
        dims=2,
    ):
        assert not (up and down), "Conv: up and down are exclusive"
        assert dims in (1, 2), f"Conv: dims must be 1 or 2, got {dims}"
        super().__init__()
        self.in_channels, self.out_channels, self.dims = in_channels, out_channels, dims
        self.up, self.down, self.fused_resample = up, down, fused_resample
        fan = dict(mode=init_mode, fan_in=in_channels * kernel**dims, fan_out=out_channels * kernel**dims)
        self.weight = (
            nn.Parameter(weight_init([out_channels, in_channels] + [kernel] * dims, **fan) * init_weight)
            if kernel
            else None
        )
        self.bias = nn.Parameter(weight_init([out_channels], **fan) * init_bias) if kernel and bias else None
        f = torch.as_tensor(resample_filter, dtype=torch.float32)
        f = (torch.outer(f, f) if dims == 2 else f)[None, None] / f.sum() ** dims  # unit DC gain
        self.register_buffer("resample_filter", f if (up or down) else None, persistent=False)

    def forward(self, x):
        conv, conv_t = (F.conv2d, F.conv_transpose2d) if self.dims == 2 else (F.conv1d, F.conv_transpose1d)
        w = None if self.weight is None else self.weight.to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        f = None if self.resample_filter is None else self.resample_filter.to(x.dtype)
        w_pad = 0 if w is None else w.shape[-1] // 2
        f_pad = 0 if f is None else (f.shape[-1] - 1) // 2
        c, ones, gain = self.in_channels, [1] * self.dims, 2**self.dims

        if self.fused_resample and self.up and w is not None:
            x = conv_t(x, f.mul(gain).tile([c, 1] + ones), groups=c, stride=2, padding=max(f_pad - w_pad, 0))
            x = conv(x, w, padding=max(w_pad - f_pad, 0))
        elif self.fused_resample and self.down and w is not None:
            x = conv(x, w, padding=w_pad + f_pad)
            x = conv(x, f.tile([self.out_channels, 1] + ones), groups=self.out_channels, stride=2)
        else:
            if self.up:
                x = conv_t(x, f.mul(gain).tile([c, 1] + ones), groups=c, stride=2, padding=f_pad)
            if self.down:
                x = conv(x, f.tile([c, 1] + ones), groups=c, stride=2, padding=f_pad)
            if w is not None:
                x = conv(x, w, padding=w_pad)
        if b is not None:
            x = x + b.reshape([1, -1] + ones)
        return x


class GroupNorm(nn.Module):
    """GroupNorm with at most 32 groups of at least 4 channels (EDM); the group count is lowered to
    a divisor of num_channels so that odd channel counts still work."""

    def __init__(self, num_channels, num_groups=32, min_channels_per_group=4, eps=1e-5):
        super().__init__()
        g = max(1, min(num_groups, num_channels // min_channels_per_group))
        while num_channels % g:
            g -= 1
        self.num_groups, self.eps = g, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


class UNetBlock(nn.Module):
    """Pre-activation residual block: norm-SiLU-conv, embedding (scale+shift if adaptive_scale, else
    additive), norm-SiLU-dropout-conv, skip connection; then optional multi-head self-attention."""

    def __init__(
        self,
        in_channels,
        out_channels,
        emb_channels,
        up=False,
        down=False,
        attention=False,
        num_heads=None,
        channels_per_head=64,
        dropout=0.0,
        skip_scale=1.0,
        eps=1e-5,
        resample_filter=(1, 1),
        resample_proj=False,
        adaptive_scale=True,
        init=None,
        init_zero=None,
        init_attn=None,
        dims=2,
        min_one_head=True,
    ):
        super().__init__()
        init = init or {}
        init_zero = init_zero if init_zero is not None else dict(init_weight=0)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.dropout, self.skip_scale, self.adaptive_scale = dropout, skip_scale, adaptive_scale
        heads = 0
        if attention:  # a block narrower than channels_per_head: one head here, none in EDM (min_one_head=False)
            heads = num_heads or max(int(min_one_head), out_channels // channels_per_head)
            while heads and out_channels % heads:
                heads -= 1
        self.num_heads = heads

        self.norm0 = GroupNorm(in_channels, eps=eps)
        conv = dict(resample_filter=resample_filter, dims=dims)
        self.conv0 = Conv(in_channels, out_channels, 3, up=up, down=down, **conv, **init)
        self.affine = Linear(emb_channels, out_channels * (2 if adaptive_scale else 1), **init)
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv(out_channels, out_channels, 3, dims=dims, **init_zero)
        self.skip = None
        if out_channels != in_channels or up or down:
            kernel = 1 if (resample_proj or out_channels != in_channels) else 0
            self.skip = Conv(in_channels, out_channels, kernel, up=up, down=down, **conv, **init)
        if heads:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            self.qkv = Conv(
                out_channels, out_channels * 3, 1, dims=dims, **(init_attn if init_attn is not None else init)
            )
            self.proj = Conv(out_channels, out_channels, 1, dims=dims, **init_zero)

    def forward(self, x, emb):
        h = self.conv0(F.silu(self.norm0(x)))
        params = self.affine(emb).reshape([h.shape[0], -1] + [1] * (h.ndim - 2)).to(h.dtype)
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        else:
            h = F.silu(self.norm1(h + params))
        h = self.conv1(F.dropout(h, p=self.dropout, training=self.training))
        x = (h + (x if self.skip is None else self.skip(x))) * self.skip_scale

        if self.num_heads:
            n, c, pos = x.shape[0], x.shape[1], x[0, 0].numel()  # attention over all positions
            qkv = self.qkv(self.norm2(x)).reshape(n, 3, self.num_heads, c // self.num_heads, pos)
            q, k, v = (t.reshape(n * self.num_heads, c // self.num_heads, pos).transpose(1, 2) for t in qkv.unbind(1))
            a = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(c_head)) v
            a = a.transpose(1, 2).reshape(x.shape)
            x = (self.proj(a) + x) * self.skip_scale
        return x


class PositionalEmbedding(nn.Module):
    """Transformer sinusoidal embedding [cos | sin] of a scalar noise label."""

    def __init__(self, num_channels, max_positions=10000, endpoint=False):
        super().__init__()
        self.num_channels, self.max_positions, self.endpoint = num_channels, max_positions, endpoint

    def forward(self, x):
        half = self.num_channels // 2
        freqs = torch.arange(half, dtype=torch.float32, device=x.device) / (half - (1 if self.endpoint else 0))
        freqs = (1 / self.max_positions) ** freqs
        x = torch.outer(x, freqs.to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features [cos | sin](2 pi f x), f ~ N(0, scale^2) (NCSN++). The frequencies are
    a persistent buffer, so they travel with the state dict."""

    def __init__(self, num_channels, scale=16.0):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x):
        x = torch.outer(x, (2 * math.pi * self.freqs).to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


def level_resolutions(img_resolution: int, num_levels: int, what: str = "U-Net") -> list[int]:
    """Resolutions of the U-Net levels (halving each time). Raises a ValueError naming the resolution,
    the levels and the fix when a level would have a fractional size, or when there is no level at all."""
    if num_levels < 1:
        raise ValueError(f"{what}: channel_mult is empty; a U-Net needs at least one level (e.g. channel_mult=[1])")
    res, out = img_resolution, [img_resolution]
    for _ in range(num_levels - 1):
        if res % 2:
            max_levels = 1
            r = img_resolution
            while r % 2 == 0:
                r //= 2
                max_levels += 1
            chain = " -> ".join(str(img_resolution / 2**i).removesuffix(".0") for i in range(num_levels))
            raise ValueError(
                f"{what}: img_resolution={img_resolution} cannot be downsampled through "
                f"{num_levels} levels (len(channel_mult)={num_levels}: {chain}). Each level halves the "
                f"resolution, so it must be divisible by 2**(levels-1)={2 ** (num_levels - 1)}. Fix: use "
                f"at most {max_levels} levels for {img_resolution}x{img_resolution} (e.g. a channel_mult "
                f"with {max_levels} entries) or pad/resize the data to a multiple of {2 ** (num_levels - 1)}."
            )
        res //= 2
        out.append(res)
    return out


def check_attn_resolutions(attn_resolutions, resolutions: list[int], what: str = "U-Net") -> set[int]:
    """Every resolution in `attn_resolutions` names a level of the network; one that matches none would
    silently give a network without that attention (e.g. [7] inherited by a 16×16 data set)."""
    attn = {int(r) for r in attn_resolutions}
    stray = sorted(attn - set(resolutions))
    if stray:
        raise ValueError(
            f"{what}: attn_resolutions {sorted(attn)} name no level of this network at {stray}; its levels are "
            f"{', '.join(map(str, resolutions))}. Fix: list some of those, or [] for no attention."
        )
    return attn


def full_precision(x: torch.Tensor):
    """Autocast off: the parts of a network that stay fp32 under mixed precision (embeddings, output
    layers). A no-op context without autocast."""
    return torch.autocast(x.device.type, enabled=False)


# ----------------------------------------------------------------------------------------------------
# U-Nets.


class _LabelMixin:
    def _drop_labels(self, class_labels, n, device):
        if self.training and self.label_dropout:
            keep = torch.rand([n, 1], device=device) >= self.label_dropout
            class_labels = class_labels * keep.to(class_labels.dtype)
        return class_labels


class SongUNet(nn.Module, _LabelMixin):
    """DDPM++ / NCSN++ U-Net (Song et al. 2021) as reimplemented in EDM.

    encoder_type: 'standard' | 'skip' (downsampled input added at every level) | 'residual' (NCSN++
    progressive-growing input path); decoder_type: 'standard' | 'skip' (output summed over levels).
    The bottleneck always has one attention block (as in DDPM++)."""

    def __init__(
        self,
        img_resolution,
        in_channels,
        out_channels,
        label_dim=0,
        augment_dim=0,
        model_channels=128,
        channel_mult=(1, 2, 2, 2),
        channel_mult_emb=4,
        num_blocks=4,
        attn_resolutions=(16,),
        dropout=0.10,
        label_dropout=0.0,
        embedding_type="positional",
        channel_mult_noise=1,
        encoder_type="standard",
        decoder_type="standard",
        resample_filter=(1, 1),
    ):
        super().__init__()
        if embedding_type not in ("positional", "fourier"):
            raise ValueError(f"embedding_type='{embedding_type}'; valid: 'positional', 'fourier'")
        if encoder_type not in ("standard", "skip", "residual"):
            raise ValueError(f"encoder_type='{encoder_type}'; valid: 'standard', 'skip', 'residual'")
        if decoder_type not in ("standard", "skip"):
            raise ValueError(f"decoder_type='{decoder_type}'; valid: 'standard', 'skip'")
        resolutions = level_resolutions(img_resolution, len(channel_mult), "SongUNet")
        self.img_resolution, self.in_channels, self.out_channels = img_resolution, in_channels, out_channels
        self.label_dim, self.label_dropout = label_dim, label_dropout
        attn_resolutions = check_attn_resolutions(attn_resolutions, resolutions, "SongUNet")

        emb_ch = model_channels * channel_mult_emb
        noise_ch = model_channels * channel_mult_noise
        init = dict(init_mode="xavier_uniform")
        init_zero = dict(init_mode="xavier_uniform", init_weight=1e-5)
        init_attn = dict(init_mode="xavier_uniform", init_weight=math.sqrt(0.2))
        blk = dict(
            emb_channels=emb_ch,
            num_heads=1,
            dropout=dropout,
            skip_scale=math.sqrt(0.5),
            eps=1e-6,
            resample_filter=resample_filter,
            resample_proj=True,
            adaptive_scale=False,
            init=init,
            init_zero=init_zero,
            init_attn=init_attn,
        )

        # Noise/label embedding -> emb [N, emb_ch].
        self.map_noise = (
            PositionalEmbedding(noise_ch, endpoint=True)
            if embedding_type == "positional"
            else FourierEmbedding(noise_ch)
        )
        self.map_label = Linear(label_dim, noise_ch, **init) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_ch, bias=False, **init) if augment_dim else None
        self.map_layer0 = Linear(noise_ch, emb_ch, **init)
        self.map_layer1 = Linear(emb_ch, emb_ch, **init)

        # Encoder. Every non-aux module's output is pushed as a skip for the decoder.
        self.enc = nn.ModuleDict()
        c = caux = in_channels
        for level, (mult, res) in enumerate(zip(channel_mult, resolutions)):
            r = f"{res}x{res}"
            if level == 0:
                self.enc[f"{r}_conv"] = Conv(c, model_channels, 3, **init)
                c = model_channels
            else:
                self.enc[f"{r}_down"] = UNetBlock(c, c, down=True, **blk)
                if encoder_type == "skip":
                    self.enc[f"{r}_aux_down"] = Conv(caux, caux, 0, down=True, resample_filter=resample_filter)
                    self.enc[f"{r}_aux_skip"] = Conv(caux, c, 1, **init)
                elif encoder_type == "residual":
                    self.enc[f"{r}_aux_residual"] = Conv(
                        caux, c, 3, down=True, resample_filter=resample_filter, fused_resample=True, **init
                    )
                    caux = c
            for i in range(num_blocks):
                self.enc[f"{r}_block{i}"] = UNetBlock(
                    c, model_channels * mult, attention=res in attn_resolutions, **blk
                )
                c = model_channels * mult
        skips = [m.out_channels for name, m in self.enc.items() if "_aux_" not in name]

        # Decoder. '_block' modules take a skip (concatenated along channels).
        self.dec = nn.ModuleDict()
        last = len(channel_mult) - 1
        for level in reversed(range(len(channel_mult))):
            res, mult = resolutions[level], channel_mult[level]
            r = f"{res}x{res}"
            if level == last:
                self.dec[f"{r}_in0"] = UNetBlock(c, c, attention=True, **blk)
                self.dec[f"{r}_in1"] = UNetBlock(c, c, **blk)
            else:
                self.dec[f"{r}_up"] = UNetBlock(c, c, up=True, **blk)
            for i in range(num_blocks + 1):
                attn = i == num_blocks and res in attn_resolutions
                self.dec[f"{r}_block{i}"] = UNetBlock(c + skips.pop(), model_channels * mult, attention=attn, **blk)
                c = model_channels * mult
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < last:
                    self.dec[f"{r}_aux_up"] = Conv(
                        out_channels, out_channels, 0, up=True, resample_filter=resample_filter
                    )
                self.dec[f"{r}_aux_norm"] = GroupNorm(c, eps=1e-6)
                self.dec[f"{r}_aux_conv"] = Conv(c, out_channels, 3, **init_zero)

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
        with full_precision(x):  # the noise/label embedding stays fp32 under mixed precision
            emb = self.map_noise(noise_labels)
            emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(emb.shape)  # [cos|sin] -> [sin|cos]
            if self.map_label is not None:
                if class_labels is None:
                    raise ValueError(f"SongUNet: label_dim={self.label_dim} but class_labels is None")
                labels = self._drop_labels(class_labels, x.shape[0], x.device)
                emb = emb + self.map_label(labels * math.sqrt(self.map_label.in_features))
            if self.map_augment is not None and augment_labels is not None:
                emb = emb + self.map_augment(augment_labels)
            emb = F.silu(self.map_layer1(F.silu(self.map_layer0(emb))))

        skips, aux = [], x
        for name, m in self.enc.items():
            if "_aux_down" in name:
                aux = m(aux)
            elif "_aux_skip" in name:
                x = skips[-1] = x + m(aux)
            elif "_aux_residual" in name:
                x = skips[-1] = aux = (x + m(aux)) / math.sqrt(2)
            else:
                x = m(x, emb) if isinstance(m, UNetBlock) else m(x)
                skips.append(x)

        out = tmp = None
        for name, m in self.dec.items():
            if "_aux_up" in name:
                out = m(out)
            elif "_aux_norm" in name:
                tmp = m(x)
            elif "_aux_conv" in name:
                with full_precision(x):  # the output layers too
                    tmp = m(F.silu(tmp.float()))
                out = tmp if out is None else out + tmp
            else:
                if "_block" in name:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = m(x, emb)
        return out


class ADMUNet(nn.Module, _LabelMixin):
    """ADM U-Net (Dhariwal & Nichol 2021) as reimplemented in EDM, over `dims` spatial axes: adaptive
    scale/shift blocks, attention at the levels flagged in `attention` and in the bottleneck.
    `level_names` key the modules of each level (e.g. '32x32' for images, '200' for sequences).
    DhariwalUNet (images) and models.sequence_unet.SequenceUNet (sequences) only name and validate."""

    def __init__(
        self,
        level_names,
        attention,
        in_channels,
        out_channels,
        label_dim=0,
        augment_dim=0,
        model_channels=192,
        channel_mult=(1, 2, 3, 4),
        channel_mult_emb=4,
        num_blocks=3,
        channels_per_head=64,
        dropout=0.10,
        label_dropout=0.0,
        embedding_type="positional",
        dims=2,
        min_one_head=True,
    ):
        super().__init__()
        if embedding_type not in ("positional", "fourier"):
            raise ValueError(
                f"{type(self).__name__}: embedding_type='{embedding_type}'; valid: 'positional', 'fourier'"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.label_dim, self.label_dropout = label_dim, label_dropout

        emb_ch = model_channels * channel_mult_emb
        init = dict(init_mode="kaiming_uniform", init_weight=math.sqrt(1 / 3), init_bias=math.sqrt(1 / 3))
        init_zero = dict(init_mode="kaiming_uniform", init_weight=0, init_bias=0)
        blk = dict(
            emb_channels=emb_ch,
            channels_per_head=channels_per_head,
            dropout=dropout,
            init=init,
            init_zero=init_zero,
            dims=dims,
            min_one_head=min_one_head,
        )

        self.map_noise = (
            PositionalEmbedding(model_channels) if embedding_type == "positional" else FourierEmbedding(model_channels)
        )
        self.map_augment = Linear(augment_dim, model_channels, bias=False, **init_zero) if augment_dim else None
        self.map_layer0 = Linear(model_channels, emb_ch, **init)
        self.map_layer1 = Linear(emb_ch, emb_ch, **init)
        self.map_label = (
            Linear(label_dim, emb_ch, bias=False, init_mode="kaiming_normal", init_weight=math.sqrt(label_dim))
            if label_dim
            else None
        )

        self.enc = nn.ModuleDict()
        c = in_channels
        for level, (mult, r, attn) in enumerate(zip(channel_mult, level_names, attention)):
            if level == 0:
                self.enc[f"{r}_conv"] = Conv(c, model_channels * mult, 3, dims=dims, **init)
                c = model_channels * mult
            else:
                self.enc[f"{r}_down"] = UNetBlock(c, c, down=True, **blk)
            for i in range(num_blocks):
                self.enc[f"{r}_block{i}"] = UNetBlock(c, model_channels * mult, attention=attn, **blk)
                c = model_channels * mult
        skips = [m.out_channels for m in self.enc.values()]

        self.dec = nn.ModuleDict()
        for level in reversed(range(len(channel_mult))):
            r, mult = level_names[level], channel_mult[level]
            if level == len(channel_mult) - 1:
                self.dec[f"{r}_in0"] = UNetBlock(c, c, attention=True, **blk)
                self.dec[f"{r}_in1"] = UNetBlock(c, c, **blk)
            else:
                self.dec[f"{r}_up"] = UNetBlock(c, c, up=True, **blk)
            for i in range(num_blocks + 1):
                self.dec[f"{r}_block{i}"] = UNetBlock(
                    c + skips.pop(), model_channels * mult, attention=attention[level], **blk
                )
                c = model_channels * mult
        self.out_norm = GroupNorm(c)
        self.out_conv = Conv(c, out_channels, 3, dims=dims, **init_zero)

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
        with full_precision(x):  # the noise/label embedding stays fp32 under mixed precision
            emb = self.map_noise(noise_labels)
            if self.map_augment is not None and augment_labels is not None:
                emb = emb + self.map_augment(augment_labels)
            emb = self.map_layer1(F.silu(self.map_layer0(emb)))
            if self.map_label is not None:
                if class_labels is None:
                    raise ValueError(f"{type(self).__name__}: label_dim={self.label_dim} but class_labels is None")
                emb = emb + self.map_label(self._drop_labels(class_labels, x.shape[0], x.device).to(emb.dtype))
            emb = F.silu(emb)

        skips = []
        for m in self.enc.values():
            x = m(x, emb) if isinstance(m, UNetBlock) else m(x)
            skips.append(x)
        for name, m in self.dec.items():
            if "_block" in name:
                x = torch.cat([x, skips.pop()], dim=1)
            x = m(x, emb)
        with full_precision(x):  # the output layers too
            return self.out_conv(F.silu(self.out_norm(x.float())))


class DhariwalUNet(ADMUNet):
    """The ADM U-Net on square images: levels named '{res}x{res}', attention at attn_resolutions.
    min_one_head=False is EDM's rule (a block narrower than 64 channels gets no attention, what EDM's ADM
    pickles hold); True, the default, keeps one head there, as this project's ADM networks were trained."""

    def __init__(
        self,
        img_resolution,
        in_channels,
        out_channels,
        label_dim=0,
        augment_dim=0,
        model_channels=192,
        channel_mult=(1, 2, 3, 4),
        channel_mult_emb=4,
        num_blocks=3,
        attn_resolutions=(32, 16, 8),
        dropout=0.10,
        label_dropout=0.0,
        min_one_head=True,
    ):
        resolutions = level_resolutions(img_resolution, len(channel_mult), "DhariwalUNet")
        super().__init__(
            [f"{r}x{r}" for r in resolutions],
            [r in check_attn_resolutions(attn_resolutions, resolutions, "DhariwalUNet") for r in resolutions],
            in_channels,
            out_channels,
            label_dim,
            augment_dim,
            model_channels,
            channel_mult,
            channel_mult_emb,
            num_blocks,
            dropout=dropout,
            label_dropout=label_dropout,
            min_one_head=min_one_head,
        )
        self.img_resolution = img_resolution


# ----------------------------------------------------------------------------------------------------
# Architecture registry.


class Arch(NamedTuple):
    target: Any  # "module:Class" (imported lazily) or the class itself
    defaults: dict  # default constructor kwargs (overridden by the caller's)
    kind: str = "image"  # 'image': data_shape (C, H, W), H == W; 'sequence': data_shape (C, L)


ARCHS: dict[str, Arch] = {
    # EDM CIFAR-10 DDPM++ / NCSN++ configs (Table 7): 128 channels, channel_mult (2, 2, 2), 4 blocks.
    "ddpmpp": Arch(
        "models.networks:SongUNet",
        dict(
            embedding_type="positional",
            encoder_type="standard",
            decoder_type="standard",
            channel_mult_noise=1,
            resample_filter=[1, 1],
            model_channels=128,
            channel_mult=[2, 2, 2],
        ),
    ),
    "ncsnpp": Arch(
        "models.networks:SongUNet",
        dict(
            embedding_type="fourier",
            encoder_type="residual",
            decoder_type="standard",
            channel_mult_noise=2,
            resample_filter=[1, 3, 3, 1],
            model_channels=128,
            channel_mult=[2, 2, 2],
        ),
    ),
    "adm": Arch("models.networks:DhariwalUNet", dict(model_channels=192, channel_mult=[1, 2, 3, 4])),
    "dnaunet": Arch("models.sequence_unet:SequenceUNet", {}, kind="sequence"),
}

# Small, CPU-friendly sizes (build_network kwargs without data_shape). Reference only: the presets in
# configs/ are authoritative. Measured when written (training step = forward + backward, batch 128,
# FLOPs by torch.utils.flop_counter; wall times on a shared, oversubscribed 2-core Xeon, so upper bounds):
PRESET_KWARGS: dict[str, dict] = {
    # 8x8 toy data (8 -> 4): 0.18 M params, 3.5 GFLOP/step, 0.07 s/step on 1 thread.
    "tiny8": dict(
        arch="ddpmpp", model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[], dropout=0.0
    ),
    # 28x28 smoke runs (28 -> 14 -> 7): 0.31 M params, 45 GFLOP/step, ~0.8 s/step on 1 thread.
    "mnist-tiny": dict(
        arch="ddpmpp", model_channels=16, channel_mult=[1, 2, 2], num_blocks=1, attn_resolutions=[], dropout=0.0
    ),
    # 28x28 MNIST-like (28 -> 14 -> 7): 1.26 M params, 179 GFLOP/step, 2.7 s/step on 1 thread,
    # best 1.2 s/step on 2 threads (2-thread times are erratic while the cores are shared).
    "mnist-small": dict(
        arch="ddpmpp", model_channels=32, channel_mult=[1, 2, 2], num_blocks=1, attn_resolutions=[7], dropout=0.0
    ),
    # EDM's CIFAR-10 DDPM++ (32x32x3): 55.7 M params; not for CPU training.
    "cifar-ddpmpp": dict(arch="ddpmpp", dropout=0.13),
}


def _resolve(target):
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _build_model(arch: str, data_shape: tuple, label_dim: int, model_kwargs: dict) -> nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch '{arch}'; valid: {', '.join(sorted(ARCHS))}")
    entry = ARCHS[arch]
    try:
        cls = _resolve(entry.target)
    except (ImportError, AttributeError) as e:
        raise ValueError(
            f"arch '{arch}' needs {entry.target}, which cannot be imported ({type(e).__name__}: {e})"
        ) from e
    data_shape = tuple(int(s) for s in data_shape)
    if entry.kind == "image":
        if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
            raise ValueError(
                f"arch '{arch}' is a 2-D image U-Net: data_shape must be (C, H, W) with "
                f"H == W, got {data_shape}. Crop/pad to a square, or use a sequence arch "
                f"for (C, L) data."
            )
        shape_kwargs = dict(img_resolution=data_shape[1], in_channels=data_shape[0], out_channels=data_shape[0])
    elif entry.kind == "sequence":
        if len(data_shape) != 2:
            raise ValueError(f"arch '{arch}' is a sequence model: data_shape must be (C, L), got {data_shape}")
        shape_kwargs = dict(seq_length=data_shape[1], in_channels=data_shape[0], out_channels=data_shape[0])
    else:
        raise ValueError(f"ARCHS['{arch}'].kind='{entry.kind}'; valid: 'image', 'sequence'")

    kwargs = {**entry.defaults, **model_kwargs, **shape_kwargs, "label_dim": label_dim}
    params = inspect.signature(cls).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ValueError(
                f"arch '{arch}' ({cls.__name__}) does not take {unknown}; it accepts: "
                f"{', '.join(p for p in params if p not in shape_kwargs)}"
            )
    return cls(**kwargs)


# ----------------------------------------------------------------------------------------------------
# Preconditioning.


class _Precond(nn.Module):
    """Common part of the preconditioners: D(x; sigma) = c_skip x + c_out F(c_in x; c_noise), computed
    in float32 (float64 if x is float64) and returned in x's dtype. sigma may be a scalar, [N] or
    [N, 1, ..., 1]; it is broadcast as sigma.reshape(-1, *[1] * (x.ndim - 1))."""

    def __init__(
        self,
        data_shape,
        label_dim=0,
        use_fp16=False,
        sigma_min=0.002,
        sigma_max=80.0,
        sigma_data=0.5,
        arch="ddpmpp",
        logvar_channels=0,
        **model_kwargs,
    ):
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)
        self.img_channels = self.data_shape[0]
        self.img_resolution = self.data_shape[-1] if len(self.data_shape) == 3 else None
        self.label_dim = int(label_dim)
        self.use_fp16 = bool(use_fp16)
        self.sigma_min, self.sigma_max, self.sigma_data = float(sigma_min), float(sigma_max), float(sigma_data)
        self.arch = arch
        self.model = _build_model(arch, self.data_shape, self.label_dim, model_kwargs)
        # EDM2's learned uncertainty u(σ) (--weighting edm2): Fourier features of c_noise → one linear layer,
        # zero-initialised so training starts from EDM's loss.
        if logvar_channels:
            self.logvar_fourier = FourierEmbedding(int(logvar_channels), scale=1.0)
            self.logvar_linear = nn.Linear(int(logvar_channels), 1)
            nn.init.zeros_(self.logvar_linear.weight)
            nn.init.zeros_(self.logvar_linear.bias)

    def logvar(self, sigma) -> torch.Tensor:
        """u(σ), [N] float32 (EDM2's per-noise-level uncertainty); only for networks built with logvar_channels."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=self.logvar_linear.weight.device).reshape(-1)
        with full_precision(sigma):
            return self.logvar_linear(self.logvar_fourier(self.precond_coefficients(sigma)[3])).reshape(-1)

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)

    def precond_coefficients(self, sigma):
        """(c_skip, c_out, c_in, c_noise), elementwise, same shape as sigma."""
        raise NotImplementedError

    def _compute_dtype(self, x):
        return torch.float64 if x.dtype == torch.float64 else torch.float32

    def _model_dtype(self, x, force_fp32, compute_dtype):
        if self.use_fp16 and not force_fp32 and x.device.type == "cuda":
            return torch.float16
        p = next((p for p in self.model.parameters() if p.is_floating_point()), None)
        return compute_dtype if p is None else p.dtype

    def _labels(self, class_labels, x):
        if self.label_dim == 0:
            return None
        if class_labels is None:  # unconditional: all-zero label
            return torch.zeros([x.shape[0], self.label_dim], device=x.device, dtype=torch.float32)
        class_labels = torch.as_tensor(class_labels, device=x.device)
        if not class_labels.is_floating_point() and class_labels.ndim == 1:  # class indices
            class_labels = F.one_hot(class_labels.long(), self.label_dim)
        return class_labels.to(torch.float32).reshape(-1, self.label_dim)

    def forward(self, x, sigma, class_labels=None, force_fp32=False, return_logvar=False, **model_kwargs):
        """D(x; σ); with return_logvar also u(σ) (inside forward, so DDP sees its parameters used)."""
        if return_logvar:
            return self.forward(x, sigma, class_labels, force_fp32, **model_kwargs), self.logvar(
                torch.as_tensor(sigma, device=x.device).reshape(-1).expand(x.shape[0])
            )
        ct = self._compute_dtype(x)
        sigma = torch.as_tensor(sigma, device=x.device).to(ct).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        if sigma.numel() != x.shape[0]:
            raise ValueError(f"sigma has {sigma.numel()} values for a batch of {x.shape[0]}")
        sigma = sigma.reshape(-1, *[1] * (x.ndim - 1))
        class_labels = self._labels(class_labels, x)
        c_skip, c_out, c_in, c_noise = self.precond_coefficients(sigma)
        xc = x.to(ct)
        dtype = self._model_dtype(x, force_fp32, ct)
        if class_labels is not None and dtype != torch.float16:
            class_labels = class_labels.to(dtype)
        F_x = self.model((c_in * xc).to(dtype), c_noise.flatten(), class_labels=class_labels, **model_kwargs)
        return (c_skip * xc + c_out * F_x.to(ct)).to(x.dtype)


class EDMPrecond(_Precond):
    """EDM: c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2), c_in = 1/sqrt(s^2+sd^2),
    c_noise = ln(s)/4."""

    def precond_coefficients(self, sigma):
        sigma = torch.as_tensor(sigma)
        sigma = sigma if sigma.is_floating_point() else sigma.float()
        sd = self.sigma_data
        total = sigma.square() + sd * sd
        c_skip = sd * sd / total
        c_out = sigma * sd / total.sqrt()
        c_in = 1 / total.sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise


def _vp_sigma(t, beta_d, beta_min):
    t = torch.as_tensor(t, dtype=None if torch.is_tensor(t) else torch.float64)
    return ((0.5 * beta_d * t**2 + beta_min * t).exp() - 1).sqrt()


class VPPrecond(_Precond):
    """Variance preserving (DDPM++ 'VP' of Song et al. 2021), EDM Table 1:
    sigma(t) = sqrt(exp(beta_d t^2/2 + beta_min t) - 1); c_skip = 1, c_out = -s, c_in = 1/sqrt(s^2+1),
    c_noise = (M-1) sigma^-1(s). sigma_min/max default to sigma(epsilon_t) and sigma(1)."""

    def __init__(
        self,
        data_shape,
        label_dim=0,
        use_fp16=False,
        sigma_min=None,
        sigma_max=None,
        sigma_data=0.5,
        beta_d=19.9,
        beta_min=0.1,
        M=1000,
        epsilon_t=1e-5,
        arch="ddpmpp",
        **model_kwargs,
    ):
        vp = dict(beta_d=float(beta_d), beta_min=float(beta_min))
        sigma_min = float(_vp_sigma(epsilon_t, **vp)) if sigma_min is None else sigma_min
        sigma_max = float(_vp_sigma(1.0, **vp)) if sigma_max is None else sigma_max
        super().__init__(data_shape, label_dim, use_fp16, sigma_min, sigma_max, sigma_data, arch, **model_kwargs)
        self.beta_d, self.beta_min, self.M, self.epsilon_t = vp["beta_d"], vp["beta_min"], int(M), float(epsilon_t)

    def sigma(self, t):
        return _vp_sigma(t, self.beta_d, self.beta_min)

    def sigma_inv(self, sigma):
        sigma = torch.as_tensor(sigma)
        return ((self.beta_min**2 + 2 * self.beta_d * (1 + sigma**2).log()).sqrt() - self.beta_min) / self.beta_d

    def precond_coefficients(self, sigma):
        sigma = torch.as_tensor(sigma)
        sigma = sigma if sigma.is_floating_point() else sigma.float()
        c_skip = torch.ones_like(sigma)
        c_out = -sigma
        c_in = 1 / (sigma**2 + 1).sqrt()
        c_noise = (self.M - 1) * self.sigma_inv(sigma)
        return c_skip, c_out, c_in, c_noise


class VEPrecond(_Precond):
    """Variance exploding (NCSN++ 'VE' of Song et al. 2021), EDM Table 1:
    c_skip = 1, c_out = s, c_in = 1, c_noise = ln(s/2)."""

    def __init__(
        self,
        data_shape,
        label_dim=0,
        use_fp16=False,
        sigma_min=0.02,
        sigma_max=100.0,
        sigma_data=0.5,
        arch="ncsnpp",
        **model_kwargs,
    ):
        super().__init__(data_shape, label_dim, use_fp16, sigma_min, sigma_max, sigma_data, arch, **model_kwargs)

    def precond_coefficients(self, sigma):
        sigma = torch.as_tensor(sigma)
        sigma = sigma if sigma.is_floating_point() else sigma.float()
        return torch.ones_like(sigma), sigma.clone(), torch.ones_like(sigma), (0.5 * sigma).log()


PRECONDS: dict[str, type[_Precond]] = {"edm": EDMPrecond, "vp": VPPrecond, "ve": VEPrecond}


# ----------------------------------------------------------------------------------------------------
# Construction.


def _jsonable(value, key):
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"build_network: argument '{key}'={value!r} is not JSON-able; network kwargs are "
            f"stored in training_options.json and in snapshots, so use numbers, strings, "
            f"lists and dicts only"
        ) from e


def build_network(
    arch: str,
    precond: str = "edm",
    *,
    data_shape,
    label_dim: int = 0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    sigma_data: float = 0.5,
    **model_kwargs,
) -> nn.Module:
    """Build precond(model) from JSON-able kwargs only. sigma_min/sigma_max=None take the
    preconditioner's default (edm: 0.002/80, ve: 0.02/100, vp: sigma(epsilon_t)/sigma(1)).
    model_kwargs go to the preconditioner (use_fp16; vp: beta_d, beta_min, M, epsilon_t) or else to
    the architecture's constructor. The returned module carries `network_kwargs`, a JSON-able dict
    with which build_network(**net.network_kwargs) rebuilds the same architecture."""
    if precond not in PRECONDS:
        raise ValueError(f"unknown precond '{precond}'; valid: {', '.join(sorted(PRECONDS))}")
    if arch not in ARCHS:
        raise ValueError(f"unknown arch '{arch}'; valid: {', '.join(sorted(ARCHS))}")
    record = dict(
        arch=arch,
        precond=precond,
        data_shape=list(data_shape),
        label_dim=label_dim,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        sigma_data=sigma_data,
        **model_kwargs,
    )
    record = {k: _jsonable(v, k) for k, v in record.items()}
    kwargs = dict(data_shape=tuple(data_shape), label_dim=label_dim, sigma_data=sigma_data, arch=arch, **model_kwargs)
    if sigma_min is not None:
        kwargs["sigma_min"] = sigma_min
    if sigma_max is not None:
        kwargs["sigma_max"] = sigma_max
    net = PRECONDS[precond](**kwargs)
    net.network_kwargs = record
    return net


def from_snapshot(snapshot: dict | str | Path, which: str = "ema", device="cpu") -> nn.Module:
    """Rebuild the network stored in a snapshot (dict from torch_utils.checkpoint.load, or a path or URL
    of a snapshot .pt or an EDM .pkl: models.network_source) and load its 'ema' or 'net' weights.
    Returns it in eval mode with requires_grad False."""
    source = "snapshot"
    if isinstance(snapshot, (str, Path)):
        from models.network_source import open_snapshot

        source = str(snapshot)
        snapshot = open_snapshot(snapshot)
    if which not in ("ema", "net"):
        raise ValueError(f"which='{which}'; valid: 'ema', 'net'")
    try:
        network_kwargs = snapshot["options"]["network_kwargs"]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{source}: has no options['network_kwargs']; it was not written by train.py") from e
    state = snapshot.get(which)
    if state is None:
        have = [k for k in ("ema", "net") if snapshot.get(k) is not None]
        raise ValueError(f"{source}: holds no '{which}' weights; available: {have or 'none'}")
    net = build_network(**network_kwargs)
    missing, unexpected = _key_mismatch(net.state_dict(), state)
    if missing or unexpected:
        raise ValueError(
            f"{source}: '{which}' weights do not match network_kwargs {network_kwargs}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:5]}"
        )
    try:
        net.load_state_dict(state)
    except RuntimeError as e:  # same keys, different shapes
        raise ValueError(f"{source}: '{which}' weights do not fit network_kwargs {network_kwargs}: {e}") from e
    return net.to(device).eval().requires_grad_(False)


def _key_mismatch(expected: dict, got: dict) -> tuple[list, list]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
