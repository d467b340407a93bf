"""diffusers' own DDPM trainer, with its timestep draw replaced by InfoNoise and nothing else changed.

The training step is diffusers' unconditional trainer's (examples/unconditional_image_generation/
train_unconditional.py in the diffusers repository): a `UNet2DModel`, diffusers' `DDPMScheduler.add_noise`, the plain
MSE on the scheduler's prediction type. The data are scikit-learn's 8×8 digits scaled to [−1, 1] (they ship with the
package: nothing is downloaded). `--timesteps uniform` is diffusers' line

    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,))

and `--timesteps infonoise` replaces it by `sampler.sample(bsz)` and adds the two lines that feed the sampler
(`observe`, `step`): the model, loss, optimizer and data stream are the same. With `--samples N` the trained model
draws N images with the scheduler (on InfoGrid's timesteps for InfoNoise: `set_timesteps(timesteps=...)`) into
<out>/samples.npz ('images' uint8 [N, 8, 8, 1], as this repository's fid.py reads them).

    pip install '.[examples]'
    python examples/diffusers_ddpm_digits.py --timesteps infonoise --steps 4000 --out runs/ddpm-digits-infonoise
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

from infonoise import DiscreteVP, InfoNoiseSampler

# The shared digits, network and flags beside this file (run as a script, or loaded from its path by the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_common import load_digits, make_model, parser  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = parser(__doc__.split("\n")[0], "timestep", 50)
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction", "sample"], default="epsilon")
    p.add_argument(
        "--allocation",
        choices=["emphasis", "density"],
        default="emphasis",
        help="InfoNoise's rule: π ∝ ρ/w with w the loop's own loss weight in x0 units (docs/method.md §10.4), or, "
        "as a diagnostic, π ∝ ρ (the loop's weight left out)",
    )
    p.add_argument(
        "--ema",
        action="store_true",
        help="keep diffusers' EMAModel of the weights as its trainer's --use_ema does (warm-up, power 3/4, max decay "
        "0.9999) and sample with it",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None, on_step: Callable | None = None) -> dict:
    """Train; return what a test or a report reads: the model, the sampler (None for uniform), every step's
    timesteps, and the sampler's table after each refresh (step, table). `on_step(steps_done, model, sampler,
    noise_scheduler, ema)`, if given, is called after every optimizer step (benchmarks/diffusers_ddpm.py scores the
    model there); it is not part of the trainer."""
    args = parse(argv)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    data = load_digits()
    model = make_model(args.width)
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=args.prediction_type)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    ema = (
        EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75) if args.ema else None
    )
    sampler = None
    if args.timesteps == "infonoise":
        alphas_cumprod = noise_scheduler.alphas_cumprod
        weight = None
        if args.prediction_type == "sample":  # diffusers weights the x0 loss by the SNR ᾱ/(1 − ᾱ)
            weight = lambda t: alphas_cumprod[t] / (1 - alphas_cumprod[t])  # noqa: E731
        if args.allocation == "density":  # diagnostic: declare w ≡ 1 in x0 units, so π ∝ ρ (docs/method.md §10.4)
            c = {"epsilon": lambda t: (1 - alphas_cumprod[t]) / alphas_cumprod[t], "sample": lambda t: 1.0}
            if args.prediction_type not in c:
                raise SystemExit("Error: --allocation density is implemented for epsilon and sample prediction")
            weight = c[args.prediction_type]
        sampler = InfoNoiseSampler(
            DiscreteVP(alphas_cumprod),
            objective=args.prediction_type,
            loss_weight=weight,
            num_bins=args.num_bins,
            min_count=args.min_count,
            mmse_cap=args.mmse_cap,
            training_data=data,
        )

    drawn, tables = [], []
    for step in range(args.steps):
        clean_images = data[torch.randint(len(data), (args.batch,), generator=gen)]
        noise = torch.randn(clean_images.shape, generator=gen)
        bsz = clean_images.shape[0]
        if sampler is None:  # diffusers' draw
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,), generator=gen).long()
        else:  # ... replaced
            timesteps = sampler.sample(bsz, gen)
        noisy_images = noise_scheduler.add_noise(clean_images, noise, timesteps)
        model_output = model(noisy_images, timesteps).sample
        if args.prediction_type == "epsilon":
            target = noise
            loss = F.mse_loss(model_output.float(), noise.float())
        elif args.prediction_type == "v_prediction":
            target = noise_scheduler.get_velocity(clean_images, noise, timesteps)
            loss = F.mse_loss(model_output.float(), target.float())
        else:  # "sample", with diffusers' SNR weights
            target = clean_images
            alpha_t = noise_scheduler.alphas_cumprod[timesteps][:, None, None, None]
            loss = (alpha_t / (1 - alpha_t) * F.mse_loss(model_output.float(), target, reduction="none")).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if ema is not None:
            ema.step(model.parameters())
        if sampler is not None:  # the two added lines
            sampler.observe(timesteps, sampler.x0_error(timesteps, model_output, target))
            if sampler.step(step) is not None:
                tables.append((step, sampler.scheduler.table.clone()))
        drawn.append(timesteps)
        if on_step is not None:
            on_step(step + 1, model, sampler, noise_scheduler, ema)

    result = dict(model=model, ema=ema, sampler=sampler, timesteps=torch.stack(drawn), tables=tables, args=vars(args))
    shares = (torch.stack(drawn)[len(drawn) // 2 :] // 100).flatten().bincount(minlength=10) / (
        bsz * (len(drawn) - len(drawn) // 2)
    )
    print("share of the second half's draws per 100 timesteps:", [round(float(s), 3) for s in shares])
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out / "unet.pt")
        if ema is not None:
            torch.save(ema.state_dict(), out / "unet-ema.pt")
        if sampler is not None:
            torch.save(sampler.state_dict(), out / "infonoise-sampler.pt")
        if args.samples:
            images = sample(model, noise_scheduler, sampler, args.samples, args.sample_steps, args.seed, ema)
            np.savez(out / "samples.npz", images=images)
        (out / "summary.json").write_text(json.dumps(dict(args=vars(args), shares=shares.tolist()), indent=1))
    return result


@torch.no_grad()
def sample(model, noise_scheduler, sampler, n: int, steps: int, seed: int, ema: EMAModel | None = None) -> np.ndarray:
    """n images with diffusers' DDPM sampler: its own evenly spaced timesteps, or InfoGrid's (docs/method.md §6);
    with the EMA weights if `ema` is given (the model's own are put back afterwards)."""
    if ema is not None:
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
        try:
            return sample(model, noise_scheduler, sampler, n, steps, seed)
        finally:
            ema.restore(model.parameters())
    if sampler is None:
        noise_scheduler.set_timesteps(steps)
    else:
        noise_scheduler.set_timesteps(timesteps=sampler.grid(steps).tolist())
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(n, 1, 8, 8, generator=gen)
    for t in noise_scheduler.timesteps:
        image = noise_scheduler.step(model(image, t).sample, t, image, generator=gen).prev_sample
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


if __name__ == "__main__":
    main()
