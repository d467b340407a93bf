"""Write the EDM network pickles that tests/test_edm_pickles.py reads: made by NVlabs/edm's own code.

    git clone https://github.com/NVlabs/edm /tmp/edm-src      # any checkout of EDM
    python tests/make_edm_pickles.py /tmp/edm-src               # rewrites tests/data/edm/

Why: the importer must read what EDM itself writes (numpy scalars in every block's _init_kwargs, torch's
own module containers, the loss and augmentation objects beside the network), and CI is offline with no
EDM code. So this script runs EDM's code once, from the checkout you name (nothing of it is copied into
this repository), and stores small pickles with EDM's outputs beside them:

  <kind>.pkl   EDM's training_loop.py snapshot layout, dict(ema, loss_fn, augment_pipe, dataset_kwargs),
               pickled by EDM's torch_utils.persistence — with the embedded module source replaced by a
               placeholder that raises if anything ever executes it
  <kind>.npz   x, sigma, labels and EDM's D(x; σ, labels) (float32); EDM's edm_sampler images (float64
               and uint8, as EDM's generate.py rounds them) for fixed seeds, with S_churn 0 and 40
  attention-block.pkl/.npz   one EDM UNetBlock with two attention heads and its output (the multi-head
               qkv layout, which the small U-Nets cannot show: EDM's ADM gives a block a head per 64
               channels, so a tiny ADM has none)
  transforms.npz EDM's dataset_tool.py --transform center-crop / center-crop-wide on two small images
  defaults.json  EDM's constructor defaults, which an official pickle leaves out of its _init_kwargs

The networks are tiny (8x8 images, 8 channels) and their weights are randomised (EDM zero-initialises the
output layers, which would make every D trivial). Run it with this project's virtualenv; EDM's packages
(dnnlib, torch_utils, training) are imported from the checkout, never from this repository.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import inspect
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "data" / "edm"
PLACEHOLDER = (
    "# EDM's module source, replaced by tests/make_edm_pickles.py. An importer that executes embedded source\n"
    "raise RuntimeError('embedded module source was executed')\n"
)
SIGMAS = [0.002, 0.05, 0.7, 9.0, 80.0]  # one input per σ: EDM's sampling range, both ends and between
SEEDS = [0, 1, 2, 3]
STEPS = 5
CHURN = dict(S_min=0.05, S_max=50.0, S_noise=1.003)  # EDM's README values: churn switches off at both ends

# EDM's train.py network options per --arch, scaled down (cbase/cres and num_blocks), and per --precond.
ARCH = {
    "ddpmpp": dict(
        model_type="SongUNet",
        embedding_type="positional",
        encoder_type="standard",
        decoder_type="standard",
        channel_mult_noise=1,
        resample_filter=[1, 1],
    ),
    "ncsnpp": dict(
        model_type="SongUNet",
        embedding_type="fourier",
        encoder_type="residual",
        decoder_type="standard",
        channel_mult_noise=2,
        resample_filter=[1, 3, 3, 1],
    ),
    "adm": dict(model_type="DhariwalUNet"),
}
PRECOND = {
    "edm": ("training.networks.EDMPrecond", "training.loss.EDMLoss"),
    "vp": ("training.networks.VPPrecond", "training.loss.VPLoss"),
    "ve": ("training.networks.VEPrecond", "training.loss.VELoss"),
}
# name: (arch, precond, channels, label_dim, augment, extra network options)
SMALL = dict(model_channels=8, channel_mult=[1, 1], channel_mult_emb=2, num_blocks=1)
KINDS = {
    "edm-ddpmpp-uncond": ("ddpmpp", "edm", 3, 0, 0.12, dict(SMALL, attn_resolutions=[4])),
    "edm-ddpmpp-cond": ("ddpmpp", "edm", 1, 10, 0.0, dict(SMALL, attn_resolutions=[8])),
    "vp-ddpmpp-cond": ("ddpmpp", "vp", 3, 4, 0.0, dict(SMALL, attn_resolutions=[4])),
    "ve-ncsnpp-uncond": ("ncsnpp", "ve", 1, 0, 0.0, dict(SMALL, attn_resolutions=[4])),
    "edm-adm-cond": ("adm", "edm", 3, 5, 0.0, dict(SMALL, attn_resolutions=[8, 4])),
}
RESOLUTION = 8


def import_edm(edm_dir: Path):
    """EDM's modules from the checkout (ahead of anything of this repository's with the same names)."""
    if (
        not (edm_dir / "training" / "networks.py").is_file()
        or not (edm_dir / "torch_utils" / "persistence.py").is_file()
    ):
        sys.exit(
            f"Error: {edm_dir} is not a checkout of NVlabs/edm (no training/networks.py); clone it and pass its path"
        )
    sys.path.insert(0, str(edm_dir))
    top = ("dnnlib", "torch_utils", "training", "generate", "dataset_tool")
    for name in [m for m in sys.modules if m.split(".")[0] in top]:
        del sys.modules[name]
    mods = {n: importlib.import_module(n) for n in ("dnnlib", "torch_utils.persistence", "training.networks")}
    mods["generate"] = importlib.import_module("generate")
    mods["dataset_tool"] = importlib.import_module("dataset_tool")
    for n in ("training.loss", "training.augment"):
        mods[n] = importlib.import_module(n)
    for name, module in mods.items():
        if not Path(module.__file__).resolve().is_relative_to(edm_dir.resolve()):
            sys.exit(f"Error: {name} was imported from {module.__file__}, not from {edm_dir}")
    return mods


def dump(mods, obj, path: Path) -> None:
    """pickle.dump as EDM's training_loop.py does it, every embedded module source swapped for PLACEHOLDER
    (only while pickling: EDM's deepcopy rebuilds objects from their source)."""
    decorators = list(mods["torch_utils.persistence"]._decorators)
    sources = [cls._orig_module_src for cls in decorators]
    try:
        for cls in decorators:
            cls._orig_module_src = PLACEHOLDER
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    finally:
        for cls, src in zip(decorators, sources):
            cls._orig_module_src = src


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Trained-looking weights: EDM initialises some layers to zero, which would hide any mapping error."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.08 * torch.randn(p.shape, generator=gen))


def edm_snapshot(mods, arch: str, precond: str, channels: int, label_dim: int, augment: float, extra: dict, seed: int):
    """Build, as EDM's train.py and training_loop.py do, and return the dict training_loop.py pickles."""
    util = mods["dnnlib"].util
    net_class, loss_class = PRECOND[precond]
    network_kwargs = util.EasyDict(class_name=net_class, **ARCH[arch], **extra)
    if augment:
        network_kwargs.augment_dim = 9
    network_kwargs.update(dropout=0.13, use_fp16=False)
    dataset_kwargs = util.EasyDict(
        class_name="training.dataset.ImageFolderDataset",
        path=f"datasets/tiny-{RESOLUTION}x{RESOLUTION}.zip",
        use_labels=bool(label_dim),
        xflip=False,
        cache=True,
        resolution=RESOLUTION,
        max_size=100,
    )
    torch.manual_seed(seed)
    interface = dict(img_resolution=RESOLUTION, img_channels=channels, label_dim=label_dim)
    net = util.construct_class_by_name(**network_kwargs, **interface)
    randomise(net, seed)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    loss_fn = util.construct_class_by_name(class_name=loss_class)
    augment_pipe = None
    if augment:
        augment_kwargs = util.EasyDict(class_name="training.augment.AugmentPipe", p=augment)
        augment_kwargs.update(xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1)
        augment_pipe = util.construct_class_by_name(**augment_kwargs)
    data = dict(ema=ema, loss_fn=loss_fn, augment_pipe=augment_pipe, dataset_kwargs=dict(dataset_kwargs))
    for key, value in data.items():  # training_loop.py's own preparation of a snapshot
        if isinstance(value, torch.nn.Module):
            data[key] = copy.deepcopy(value).eval().requires_grad_(False).cpu()
    return data


def outputs(mods, net, seed: int) -> dict:
    """EDM's D(x; σ, labels) on fixed inputs, and edm_sampler's images for SEEDS as generate.py makes them."""
    gen = torch.Generator().manual_seed(1000 + seed)
    n, shape = len(SIGMAS), [net.img_channels, net.img_resolution, net.img_resolution]
    sigma = torch.tensor(SIGMAS, dtype=torch.float32)
    x = 0.5 * torch.randn([n, *shape], generator=gen) + sigma.reshape(-1, 1, 1, 1) * torch.randn(
        [n, *shape], generator=gen
    )
    labels = None
    if net.label_dim:
        labels = torch.eye(net.label_dim)[torch.randint(net.label_dim, [n], generator=gen)]
    with torch.no_grad():
        d = net(x, sigma, labels).to(torch.float32)
    out = dict(x=x.numpy(), sigma=sigma.numpy(), D=d.numpy(), seeds=np.array(SEEDS), steps=np.array(STEPS))
    out["labels"] = labels.numpy() if labels is not None else np.zeros([n, 0], np.float32)
    gen_mod = mods["generate"]
    for churn in (0, 40):  # generate.py's per-batch draws: latents, then class labels, then edm_sampler's
        rnd = gen_mod.StackedRandomGenerator("cpu", SEEDS)
        latents = rnd.randn([len(SEEDS), *shape], device="cpu")
        class_labels = None
        if net.label_dim:
            class_labels = torch.eye(net.label_dim)[rnd.randint(net.label_dim, size=[len(SEEDS)], device="cpu")]
        with torch.no_grad():
            images = gen_mod.edm_sampler(
                net, latents, class_labels, randn_like=rnd.randn_like, num_steps=STEPS, S_churn=churn, **CHURN
            )
        out[f"images_churn{churn}"] = images.numpy()
        out[f"uint8_churn{churn}"] = (images * 127.5 + 128).clip(0, 255).to(torch.uint8).numpy()
    out.update({f"churn_{k}": np.array(v) for k, v in CHURN.items()})
    return out


def attention_block(mods) -> tuple[object, dict]:
    """One EDM UNetBlock with two heads of 4 channels (EDM's U-Nets only reach >1 head at 128 channels)."""
    torch.manual_seed(7)
    block = mods["training.networks"].UNetBlock(
        in_channels=8, out_channels=8, emb_channels=8, attention=True, num_heads=2, skip_scale=np.sqrt(0.5)
    )
    randomise(block, 7)
    block = block.eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(8)
    x, emb = torch.randn([3, 8, 4, 4], generator=gen), torch.randn([3, 8], generator=gen)
    with torch.no_grad():
        y = block(x, emb)
    return block, dict(x=x.numpy(), emb=emb.numpy(), y=y.numpy())


def transforms(mods) -> dict:
    """EDM's dataset_tool.py --transform center-crop / center-crop-wide on two odd-sized images (RGB 9x14,
    grey 11x7): the pixels dataset_tool.py --transform must reproduce. A skipped image is stored empty."""
    rnd = np.random.RandomState(5)
    images = dict(
        rgb=rnd.randint(0, 256, [9, 14, 3]).astype(np.uint8), grey=rnd.randint(0, 256, [11, 7]).astype(np.uint8)
    )
    out = {f"input_{k}": v for k, v in images.items()}
    for kind, (w, h) in (("center-crop", (8, 8)), ("center-crop-wide", (12, 6))):
        fn = mods["dataset_tool"].make_transform(kind, w, h)
        for k, img in images.items():
            result = fn(img)
            out[f"{kind}_{k}"] = np.zeros([0], np.uint8) if result is None else result
        out[f"{kind}_size"] = np.array([w, h])
    return out


def defaults(mods) -> dict:
    """EDM's constructor defaults of what an importer builds (absent from _init_kwargs when left at them)."""
    nets = mods["training.networks"]
    out = {}
    for name in ("SongUNet", "DhariwalUNet", "EDMPrecond", "VPPrecond", "VEPrecond", "UNetBlock"):
        cls = getattr(nets, name)
        cls = cls.__bases__[0] if mods["torch_utils.persistence"].is_persistent(cls) else cls
        params = inspect.signature(cls.__init__).parameters.values()
        out[name] = {
            p.name: (list(p.default) if isinstance(p.default, tuple) else p.default)
            for p in params
            if p.default is not inspect.Parameter.empty and isinstance(p.default, (int, float, str, list, tuple, bool))
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edm_dir", type=Path, help="a checkout of NVlabs/edm")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args()
    torch.set_num_threads(1)
    mods = import_edm(args.edm_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    for seed, (kind, spec) in enumerate(KINDS.items()):
        data = edm_snapshot(mods, *spec, seed=seed)
        dump(mods, data, args.out / f"{kind}.pkl")
        np.savez(args.out / f"{kind}.npz", **outputs(mods, data["ema"], seed))
        size = (args.out / f"{kind}.pkl").stat().st_size
        print(f"{kind}: {sum(p.numel() for p in data['ema'].parameters())} parameters, {size / 1024:.0f} KiB")
    block, out = attention_block(mods)
    dump(mods, block, args.out / "attention-block.pkl")
    np.savez(args.out / "attention-block.npz", **out)
    np.savez(args.out / "transforms.npz", **transforms(mods))
    (args.out / "defaults.json").write_text(json.dumps(defaults(mods), indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
