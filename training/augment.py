"""EDM's augmentation scheme, written here: random geometric and colour transformations of the training
images whose parameters are handed to the network as conditioning ("augment labels"), so it learns the
clean distribution and is sampled with zero labels (Karras et al. 2022, Appendix: non-leaky augmentations).

Each kind of transformation is applied to an image with probability p × its multiplier (capped at 1);
an image it skips gets zeros in that kind's label slots. Label layout, for the kinds that are enabled, in
this order: xflip (1), yflip (1), isotropic scale log2 s (1), rotation (cos θ − 1, sin θ) (2), anisotropic
scale (w cos r, w sin r) (2), translation (tx, ty) in image sizes (2), brightness (1), contrast (1),
saturation (1). EDM's CIFAR-10 recipe (`--augment 0.12`): every geometric kind, x-flips always drawn, no
colour — 9 label dimensions. Geometric transformations are one affine resampling per image (bilinear,
reflected borders); with p = 0 nothing is drawn and the images are returned unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# (name, label dims) in label order.
KINDS = (
    ("xflip", 1),
    ("yflip", 1),
    ("scale", 1),
    ("rotate", 2),
    ("aniso", 2),
    ("translate", 2),
    ("brightness", 1),
    ("contrast", 1),
    ("saturation", 1),
)
EDM_CIFAR10 = dict(xflip=1e8, yflip=1, scale=1, rotate=1, aniso=1, translate=1)


class AugmentPipe:
    def __init__(
        self,
        p: float,
        xflip: float = 0,
        yflip: float = 0,
        scale: float = 0,
        rotate: float = 0,
        aniso: float = 0,
        translate: float = 0,
        brightness: float = 0,
        contrast: float = 0,
        saturation: float = 0,
        scale_std: float = 0.2,
        rotate_max: float = 1.0,
        aniso_std: float = 0.2,
        aniso_rotate_prob: float = 0.5,
        translate_std: float = 0.125,
        brightness_std: float = 0.2,
        contrast_std: float = 0.5,
        saturation_std: float = 1.0,
    ):
        if not 0 <= p <= 1:
            raise ValueError(f"augment probability must be in [0, 1], got {p}")
        self.p = float(p)
        self.mult = dict(
            xflip=xflip,
            yflip=yflip,
            scale=scale,
            rotate=rotate,
            aniso=aniso,
            translate=translate,
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
        )
        self.scale_std, self.rotate_max, self.aniso_std = scale_std, rotate_max, aniso_std
        self.aniso_rotate_prob, self.translate_std = aniso_rotate_prob, translate_std
        self.brightness_std, self.contrast_std, self.saturation_std = brightness_std, contrast_std, saturation_std

    @property
    def label_dim(self) -> int:
        """Width of the augment labels (the network's augment_dim)."""
        return sum(dims for name, dims in KINDS if self.mult[name] > 0)

    def _applied(self, name: str, n: int, g, device) -> torch.Tensor:
        return torch.rand(n, generator=g).to(device) < min(self.mult[name] * self.p, 1.0)

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented images, labels [N, label_dim]) of model-space images [N, C, H, W]. Draws come from
        `generator` (CPU) or the global RNG, so a seeded run augments alike."""
        n, dev, g = images.shape[0], images.device, generator
        labels = {}
        if self.p == 0:
            return images, torch.zeros(n, self.label_dim, device=dev)
        zeros = torch.zeros(n, device=dev)
        for name in ("xflip", "yflip"):
            if self.mult[name] > 0:
                w = (torch.randint(2, (n,), generator=g).to(dev) > 0) & self._applied(name, n, g, dev)
                images = torch.where(w.view(n, 1, 1, 1), images.flip(3 if name == "xflip" else 2), images)
                labels[name] = [w.float()]
        # Geometric: G maps output coordinates (normalised, [-1, 1]) to input ones; composed per image.
        geo = torch.eye(3, device=dev).repeat(n, 1, 1)
        if self.mult["scale"] > 0:
            w = torch.where(self._applied("scale", n, g, dev), torch.randn(n, generator=g).to(dev), zeros)
            s = torch.exp2(w * self.scale_std)
            geo = geo @ _affine(n, dev, a=1 / s, d=1 / s)
            labels["scale"] = [w]
        if self.mult["rotate"] > 0:
            theta = (torch.rand(n, generator=g).to(dev) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(self._applied("rotate", n, g, dev), theta, zeros)
            c, s_ = theta.cos(), theta.sin()
            geo = geo @ _affine(n, dev, a=c, b=s_, c=-s_, d=c)
            labels["rotate"] = [c - 1, s_]
        if self.mult["aniso"] > 0:
            w = torch.where(self._applied("aniso", n, g, dev), torch.randn(n, generator=g).to(dev), zeros)
            r = (torch.rand(n, generator=g).to(dev) * 2 - 1) * math.pi
            r = torch.where(torch.rand(n, generator=g).to(dev) < self.aniso_rotate_prob, r, zeros)
            sx = torch.exp2(w * self.aniso_std)
            cr, sr = r.cos(), r.sin()
            geo = (
                geo
                @ _affine(n, dev, a=cr, b=-sr, c=sr, d=cr)
                @ _affine(n, dev, a=1 / sx, d=sx)
                @ _affine(n, dev, a=cr, b=sr, c=-sr, d=cr)
            )
            labels["aniso"] = [w * cr, w * sr]
        if self.mult["translate"] > 0:
            t = torch.randn(2, n, generator=g).to(dev) * self.translate_std
            t = torch.where(self._applied("translate", n, g, dev).view(1, n), t, zeros.view(1, n))
            geo = geo @ _affine(n, dev, tx=-2 * t[0], ty=-2 * t[1])
            labels["translate"] = [t[0], t[1]]
        moved = [k for k in ("scale", "rotate", "aniso", "translate") if k in labels]
        if moved:
            changed = torch.stack([v != 0 for k in moved for v in labels[k]]).any(0)
            grid = F.affine_grid(geo[:, :2, :], list(images.shape), align_corners=False)
            warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            images = torch.where(changed.view(n, 1, 1, 1), warped, images)
        if self.mult["brightness"] > 0:
            w = torch.where(self._applied("brightness", n, g, dev), torch.randn(n, generator=g).to(dev), zeros)
            images = images + (w * self.brightness_std).view(n, 1, 1, 1)
            labels["brightness"] = [w]
        if self.mult["contrast"] > 0:
            w = torch.where(self._applied("contrast", n, g, dev), torch.randn(n, generator=g).to(dev), zeros)
            mean = images.mean(dim=(1, 2, 3), keepdim=True)
            images = mean + (images - mean) * torch.exp2(w * self.contrast_std).view(n, 1, 1, 1)
            labels["contrast"] = [w]
        if self.mult["saturation"] > 0:
            w = torch.where(self._applied("saturation", n, g, dev), torch.randn(n, generator=g).to(dev), zeros)
            grey = images.mean(dim=1, keepdim=True)
            images = grey + (images - grey) * torch.exp2(w * self.saturation_std).view(n, 1, 1, 1)
            labels["saturation"] = [w]
        cols = [v for name, _ in KINDS if name in labels for v in labels[name]]
        return images, torch.stack(cols, dim=1) if cols else torch.zeros(n, 0, device=dev)


def _affine(n, dev, a=None, b=None, c=None, d=None, tx=None, ty=None) -> torch.Tensor:
    """[n, 3, 3] matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] (identity where not given)."""
    m = torch.eye(3, device=dev).repeat(n, 1, 1)
    for (i, j), v in {(0, 0): a, (0, 1): b, (1, 0): c, (1, 1): d, (0, 2): tx, (1, 2): ty}.items():
        if v is not None:
            m[:, i, j] = v
    return m


def edm_pipe(p: float) -> AugmentPipe:
    """The pipe of EDM's `--augment P` (its CIFAR-10 recipe)."""
    return AugmentPipe(p, **EDM_CIFAR10)
