"""A plain rectified-flow trainer on a diffusers U-Net, its time draw replaced by InfoNoise and nothing else changed.

The training step is the flow-matching step of diffusers' SD3/Flux trainers, without latents or text: x_t =
(1 − t)·x0 + t·ε, the network `UNet2DModel(x_t, 1000·t)` predicts the velocity ε − x0, plain MSE. The data are
scikit-learn's 8×8 digits scaled to [−1, 1] (shipped with the package: nothing is downloaded). `--timesteps uniform`
is the stock draw t ~ U(0, 1) (diffusers' `compute_density_for_timestep_sampling("none", bsz)`); `--timesteps
infonoise` replaces it by `sampler.sample(bsz)` over `RectifiedFlow()` and adds `observe` and `step`. With
`--samples N` the model draws N images with diffusers' `FlowMatchEulerDiscreteScheduler` — on its own evenly spaced
σ (its σ is our t), or on InfoGrid's t (`set_timesteps(sigmas=...)`) — into <out>/samples.npz ('images' uint8
[N, 8, 8, 1], as this repository's fid.py reads them).

    pip install '.[examples]'
    python examples/rectified_flow_digits.py --timesteps infonoise --steps 4000 --out runs/rf-digits-infonoise
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler

from infonoise import InfoNoiseSampler, RectifiedFlow

# The shared digits, network and flags beside this file (run as a script, or loaded from its path by the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_common import load_digits, make_model, parser  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    return parser(__doc__.split("\n")[0], "time", 20).parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train; return the model, the sampler (None for uniform), every step's t, and the sampler's table after each
    refresh (step, table)."""
    args = parse(argv)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    data = load_digits()
    model = make_model(args.width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    sampler = None
    if args.timesteps == "infonoise":
        sampler = InfoNoiseSampler(
            RectifiedFlow(),
            "velocity",
            num_bins=args.num_bins,
            min_count=args.min_count,
            mmse_cap=args.mmse_cap,
            training_data=data,
        )

    drawn, tables = [], []
    for step in range(args.steps):
        x0 = data[torch.randint(len(data), (args.batch,), generator=gen)]
        noise = torch.randn(x0.shape, generator=gen)
        bsz = x0.shape[0]
        if sampler is None:  # the stock draw
            t = torch.rand(bsz, generator=gen)
        else:  # ... replaced
            t = sampler.sample(bsz, gen)
        sigmas = t[:, None, None, None]
        noisy = (1.0 - sigmas) * x0 + sigmas * noise
        model_pred = model(noisy, t * 1000).sample
        target = noise - x0
        loss = F.mse_loss(model_pred.float(), target.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if sampler is not None:  # the two added lines
            sampler.observe(t, sampler.x0_error(t, model_pred, target))
            if sampler.step(step) is not None:
                tables.append((step, sampler.scheduler.table.clone()))
        drawn.append(t)

    result = dict(model=model, sampler=sampler, timesteps=torch.stack(drawn), tables=tables, args=vars(args))
    late = torch.stack(drawn)[len(drawn) // 2 :].flatten()
    shares = (late * 10).long().clamp(0, 9).bincount(minlength=10) / len(late)
    print("share of the second half's draws per tenth of t:", [round(float(s), 3) for s in shares])
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out / "unet.pt")
        if sampler is not None:
            torch.save(sampler.state_dict(), out / "infonoise-sampler.pt")
        if args.samples:
            np.savez(out / "samples.npz", images=sample(model, sampler, args.samples, args.sample_steps, args.seed))
        (out / "summary.json").write_text(json.dumps(dict(args=vars(args), shares=shares.tolist()), indent=1))
    return result


@torch.no_grad()
def sample(model, sampler, n: int, steps: int, seed: int) -> np.ndarray:
    """n images with diffusers' flow-matching Euler sampler: its evenly spaced σ (= our t) or InfoGrid's."""
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    if sampler is None:
        scheduler.set_timesteps(steps)
    else:
        scheduler.set_timesteps(sigmas=sampler.grid(steps)[:-1].tolist())  # it appends the clean end itself
    gen = torch.Generator().manual_seed(seed)
    image = scheduler.sigmas[0] * torch.randn(n, 1, 8, 8, generator=gen)  # x_t at the first t: pure noise, t·ε
    for t in scheduler.timesteps:
        image = scheduler.step(model(image, t.expand(n)).sample, t, image).prev_sample
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


if __name__ == "__main__":
    main()
