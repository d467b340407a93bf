"""The training loop: data → σ from the scheduler → network → loss → scheduler statistics.

One function, `run(run_dir, options, data=..., write_samples=...)`, in the spirit of EDM's training_loop. It
never knows the scheduler's formulas; it only calls sample / observe / step and saves state_dict / profile with
every snapshot. Nor does it know the kind of data: the caller hands it the data set and the writer of a
snapshot's samples (`modalities.for_training(options)`), so the loop imports no modality.
Resuming: the latest snapshot in the run directory restores network, EMA, optimizer, scheduler, data
position and every RNG, so a stopped-and-restarted run continues the same trajectory.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import tqdm

import schedulers
from datafiles.base import as_tensor, model_space
from models import networks
from torch_utils import checkpoint
from torch_utils import distributed as du
from training import options as opt
from training import run_files
from training.loss import DenoisingLoss
from training.state import DataStream, StreamBatchSampler, TrainingState

# Writes `count` samples of the EMA network to `stem` + its kind's suffix: (net, stem, count, seed, device,
# label_names) -> the file or None. The data's modality provides it (modalities.base.Modality.write_snapshot_samples).
SampleWriter = Callable[[torch.nn.Module, Path, int, int, torch.device, "list[str] | None"], "Path | None"]


class TrainingError(RuntimeError):
    """A run that cannot go on; the message is one line naming the cause and the way out."""


class NonFiniteLossError(TrainingError):
    pass


class DiskFullError(TrainingError):
    pass


def _allreduce_sum_hook(state, bucket):
    """DDP communication hook: sum the gradients over ranks (DDP's default averages). The loss is divided
    by the global batch already, so the sum is the batch mean, as with one process."""
    fut = torch.distributed.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def _interactive() -> bool:
    """Whether rank 0 talks to a terminal (then the progress bar replaces plain tick lines on screen)."""
    return sys.stderr.isatty()


def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, beta: float) -> None:
    """ema ← net + β·(ema − net), as one foreach op over all parameters (a few kernels on a GPU instead of
    two per tensor; on CPU the same per-tensor lerp, so the same bits)."""
    with torch.no_grad():
        p_ema, p_net = list(ema.parameters()), [p.detach() for p in net.parameters()]
        torch._foreach_copy_(p_ema, torch._foreach_lerp(p_net, p_ema, beta))
        for b_ema, b_net in zip(ema.buffers(), net.buffers()):
            b_ema.copy_(b_net)


def _transfer(net: torch.nn.Module, source: str) -> dict:
    """Load --transfer's training weights into `net` and return its EMA weights (an EDM pickle holds only its
    EMA: both). Left out: the source's augment mapping or uncertainty head when the run does not use them
    (training.options.transfer_network); kept fresh: an uncertainty head the source lacks (--weighting edm2).
    TrainingError for anything else that does not fit."""
    from models.network_source import open_snapshot

    try:
        snapshot = open_snapshot(source)
    except (FileNotFoundError, ValueError) as e:
        raise TrainingError(f"--transfer {e}") from None
    target = net.state_dict()
    out = []
    for which in ("net", "ema"):
        state = snapshot.get(which) or snapshot.get("ema") or {}
        state = {k: v for k, v in state.items() if k in target or not k.startswith(("model.map_augment.", "logvar_"))}
        state.update({k: v for k, v in target.items() if k.startswith("logvar_") and k not in state})
        missing, unexpected = sorted(set(target) - set(state)), sorted(set(state) - set(target))
        if missing or unexpected:
            raise TrainingError(
                f"--transfer {source}: its {which} weights do not fit the network: missing {missing[:4]}, "
                f"unexpected {unexpected[:4]}"
            )
        out.append(state)
    net.load_state_dict(out[0])
    du.print0(f"Transferred the weights of {source} (EMA too); the optimizer and the scheduler start afresh.")
    return out[1]


def _step_model(net: torch.nn.Module, dev: torch.device, world: int, compile_net: bool) -> torch.nn.Module:
    """What a training step calls: the network under DDP across ranks (gradients summed over ranks while
    the backward pass runs; the loss is already divided by the global batch), compiled on request."""
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[dev.index] if dev.type == "cuda" else None, broadcast_buffers=False
        )
        model.register_comm_hook(None, _allreduce_sum_hook)
    return torch.compile(model) if compile_net else model


def _loader(dataset, stream: DataStream, batch_gpu: int, workers: int | None, dev: torch.device, seed: int):
    """An endless iterator of batches in the resumable stream's order (the same with or without workers),
    starting where the stream stands; workers default to 0 on CPU and 4 on CUDA."""
    workers = workers if workers is not None else (4 if dev.type == "cuda" else 0)
    return iter(
        torch.utils.data.DataLoader(
            dataset,
            batch_sampler=StreamBatchSampler(stream, batch_gpu),
            num_workers=workers,
            pin_memory=dev.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(seed),  # its own: the global RNG (noise, dropout) untouched
        )
    )


def _resume(run_dir: Path, st: TrainingState, batch_per_rank: int, log, files: tuple[Path, Path, Path]) -> Path | None:
    """Restore `st` from the newest snapshot that loads (unreadable ones moved aside), then cut the run's
    files back to it, so a killed-and-resumed run leaves the same files as one that never stopped.
    Returns the snapshot resumed from, or None for a fresh start."""
    stats_path, sched_path, log_path = files
    rank, world = du.get_rank(), du.get_world_size()
    if checkpoint.list_snapshots(run_dir):
        du.print0(f"Looking for the latest snapshot to resume from in {run_dir}...")
    if rank == 0:
        for path in run_files.remove_stale_tmp(run_dir):
            du.print0(f"Removed {path.name}, left by an interrupted write.")
    exact = []
    resume, resumed, bad = run_files.load_latest_good(
        run_dir, lambda data: exact.append(st.load_state_dict(data, batch_per_rank)), du.print0
    )
    du.barrier()
    if rank == 0:
        run_files.move_aside(bad, du.print0)
        if resume is None and bad:
            raise TrainingError(
                f"{run_dir}: no snapshot there can be resumed from (moved aside as *.corrupt); "
                f"re-run the same command to start the run afresh."
            )
    if resume is None:
        if rank == 0 and (dest := run_files.set_aside_earlier_attempt(run_dir)) is not None:
            du.print0(
                f"Starting from step 0: moved the files of an earlier attempt (no snapshot to resume from) to "
                f"{dest.relative_to(run_dir)}/."
            )
        du.barrier()
        return None
    if rank == 0:
        cut = run_files.trim_log(log_path, resumed.get("log_bytes"))
        notes = [f"{cut} bytes of log.txt"] if cut else []
        for path in (stats_path, sched_path):
            dropped, torn = run_files.trim_jsonl(path, st.global_step)
            if dropped:
                notes.append(f"{dropped} line(s) of {path.name}" + (" (one torn by the interruption)" if torn else ""))
        if notes:
            log(f"Resume: dropped {', '.join(notes)} written after {resume.name}; they are written again.")
    if not exact[-1]:
        du.print0(
            f"Resuming with {world} processes from a snapshot of another number of processes: "
            f"random streams are re-seeded, so the run will not match bit for bit."
        )
    du.print0(f"Resuming from {resume} at {st.cur_nimg / 1e3:.1f} kimg (step {st.global_step}).")
    return resume


def run(
    run_dir: str | Path,
    options: dict,
    *,
    data: torch.utils.data.Dataset,
    write_samples: SampleWriter | None = None,
    stop_after_steps: int | None = None,
) -> dict:
    """Train until `duration` Mimg (or `stop_after_steps` optimizer steps in this call, for tests).

    `options`: resolved training options (training.options.resolve), every one present and nothing
    else; each part is built from its own group (training.options.groups). `data`: the training set, items
    in model space or uint8 pixels; `write_samples(net, stem, count, seed, device, label_names)`: writes
    `count` samples of the EMA network at each snapshot (none if None). Returns a summary dict (final kimg,
    steps, snapshot path). Rank 0 writes everything.
    """
    opt.check_complete(options)
    g = opt.groups(options)
    duration, batch, batch_gpu, tick, snap, sample_grid, seed, device = g["run"].values()
    precision, tf32, cudnn_benchmark, channels_last, compile_net = g["speed"].values()
    lr, lr_rampup, grad_clip = g["optimizer"].values()
    ema, ema_rampup = g["ema"].values()
    dev = du.init(device)
    rank, world = du.get_rank(), du.get_world_size()
    run_dir = Path(run_dir)
    batch_gpu_total = batch // world
    batch_gpu = batch_gpu or batch_gpu_total
    if batch % world or batch_gpu_total % batch_gpu:
        raise ValueError(f"--batch {batch} must split evenly over {world} processes and --batch-gpu {batch_gpu}.")
    rounds = batch_gpu_total // batch_gpu
    if dev.type == "cuda":  # the usual switches; none of them exists on CPU
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = cudnn_benchmark

    # Data, network, loss, scheduler. Same seed on every rank → identical initial parameters.
    dataset = data
    du.print0(f"Building the network ({g['network'].get('arch')}, {g['network'].get('precond')} preconditioning)...")
    torch.manual_seed(seed)
    net = networks.build_network(**g["network"]).to(dev).train().requires_grad_(True)
    image_net = channels_last and len(g["network"]["data_shape"]) == 3  # oneDNN on CPU likes it too (RESULTS §2b)
    if image_net:
        net = net.to(memory_format=torch.channels_last)
    transfer = options["transfer"] if not checkpoint.list_snapshots(run_dir) else None  # a resumed run has its own
    if transfer:
        ema_state = _transfer(net, transfer)
    ema_net = copy.deepcopy(net).eval().requires_grad_(False)
    if transfer:
        ema_net.load_state_dict(ema_state)
    # Fused Adam on CUDA (one kernel for all tensors); on CPU the default, whose bits the benchmark tables hold.
    fused = dev.type == "cuda" or None
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=fused)
    loss_fn = DenoisingLoss(**g["loss"])
    context = g["scheduler"]["context"]
    if context["endpoint"] == "auto":
        context["endpoint"] = "discrete" if getattr(dataset, "is_binary", False) else "continuous"
    # The data themselves, for a scheduler that reads them (InfoNoise's coordinate-wise Bayes cap); read only if asked.
    data_fn = lambda: as_tensor(dataset, limit=20_000)  # noqa: E731
    sched = schedulers.build(g["scheduler"]["name"], {**context, "training_data": data_fn}, **g["scheduler"]["options"])
    model = _step_model(net, dev, world, compile_net)
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")  # fp16: overflowing steps skipped

    # Per-rank randomness: noise and dropout (global torch RNG), σ draws, data order.
    torch.manual_seed(seed * 1000003 + rank)
    sigma_gen = torch.Generator().manual_seed(seed * 1000003 + rank + 7919)
    stream = DataStream(len(dataset), seed, rank, world)
    st = TrainingState(net, ema_net, optimizer, sched, sigma_gen, stream)

    stats_path, sched_path, log_path = run_dir / "stats.jsonl", run_dir / "schedule.jsonl", run_dir / "log.txt"

    # On a terminal, a progress bar over kimg with an ETA; elsewhere (a log file, a batch job) tick lines only.
    bar = tqdm.tqdm(
        total=round(duration * 1e3, 3),
        unit="kimg",
        disable=not (rank == 0 and _interactive()),
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}]",
    )

    def log(msg: str) -> None:
        if rank == 0:
            if bar.disable:
                print(msg, flush=True)
            else:
                tqdm.tqdm.write(msg)
            with open(log_path, "a") as f:
                f.write(msg + "\n")

    resume = _resume(run_dir, st, batch_gpu_total, log, (stats_path, sched_path, log_path))

    bar.initial = bar.n = st.cur_nimg / 1e3  # a resumed run's bar starts where it stands

    def check_finite() -> None:
        """Non-finite losses or weights (every rank decides alike), or an fp16 loss scale that collapsed
        (every step overflowing): the run stops with the last good snapshot named."""
        # fp16: an overflowing step was skipped by the scaler (its loss may be inf); the weights tell
        bad = torch.zeros((), dtype=torch.bool, device=dev) if scaler.is_enabled() else ~torch.isfinite(tick_sums).all()
        for p in net.parameters():
            bad = bad | ~torch.isfinite(p).all()
        bad = du.all_reduce_sum(bad.to(torch.float64).reshape(1).cpu()).item() > 0
        if bad or (scaler.is_enabled() and scaler.get_scale() < 2.0**-24):
            msg = (
                f"Non-finite loss/gradient by step {st.global_step} ({st.cur_nimg / 1e3:.1f} kimg): training "
                f"stopped. The last good snapshot is {last_snapshot or 'none (no snapshot yet)'}. Options that can "
                f"cause it: {opt.nonfinite_causes(options)}; or the data. Re-run the same command after changing one."
            )
            log(msg)
            raise NonFiniteLossError(msg)

    total_nimg = round(duration * 1e6)
    ema_halflife_nimg = ema * 1e6

    def save_snapshot(resume_point: bool = False) -> Path:
        """A snapshot on the run's grid (every `snap` ticks and at the end), or, for a stop between them, a
        resume point (network-snapshot-<kimg>-step<step>.pt, no sample grid): the next snapshot removes it,
        so a stopped and resumed run ends with the same snapshots, under the same names, as one never stopped."""
        state = st.state_dict()
        name = f"network-snapshot-{st.cur_nimg // 1000:06d}" + (f"-step{st.global_step}" if resume_point else "")
        path = run_dir / f"{name}.pt"
        if rank == 0:
            saved_options = json.loads((run_dir / "training_options.json").read_text())
            log_bytes = log_path.stat().st_size if log_path.is_file() else 0
            try:
                checkpoint.atomic_save(
                    {"format": checkpoint.FORMAT, "options": saved_options, "log_bytes": log_bytes, **state}, path
                )
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                need = last_snapshot.stat().st_size if last_snapshot and last_snapshot.is_file() else None
                msg = (
                    f"{path}: the disk is full (a snapshot needs about "
                    f"{f'{need / 2**20:.0f} MiB' if need else 'as much as the last one'} free in {run_dir}). "
                    f"The previous snapshot {last_snapshot or '(none)'} is intact: free space and re-run the "
                    f"same command."
                )
                log(msg)
                raise DiskFullError(msg) from None
            for old in checkpoint.list_resume_points(run_dir):
                if old != path:
                    old.unlink(missing_ok=True)
        if rank == 0 and not resume_point and write_samples is not None:
            try:
                write_samples(
                    ema_net,
                    run_dir / f"samples-{st.cur_nimg // 1000:06d}",
                    sample_grid,
                    seed,
                    dev,
                    getattr(dataset, "label_names", None) if g["data"]["use_labels"] else None,
                )
            except Exception as e:  # a sample grid must never cost the run
                log(f"warning: could not write the sample grid ({type(e).__name__}: {e})")
        du.barrier()
        return path

    log(
        f"Training {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters on {world} x {dev.type}; "
        f"scheduler {sched!r}, weighting {g['loss']['weighting']}, endpoint {context['endpoint']}, batch {batch} "
        f"({rounds} round(s) of {batch_gpu}/process), for {duration * 1e3:g} kimg."
    )
    tick_start_nimg, tick_start_time, start_time = st.tick_start_nimg, time.time(), time.time()
    # Data: a DataLoader over the resumable stream (the same order with or without workers), created after
    # the resume so it starts where the run stands. The step itself never waits for the host: statistics
    # stay on the device until a tick, errors are staged by the scheduler until a refresh.
    loader = _loader(dataset, stream, batch_gpu, g["loader"]["workers"], dev, seed)
    tick_sums = (
        st.tick_partial[:2].to(dev).clone()
    )  # weighted loss, error: summed on the device (a stopped tick's so far)
    tick_count, steps_this_call, last_snapshot = int(st.tick_partial[2]), 0, resume
    done = st.cur_nimg >= total_nimg

    loader_seconds = 0.0  # host time spent waiting for the loader this tick (its share of the step)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
        nonlocal loader_seconds
        t0 = time.perf_counter()
        x, labels = next(loader)
        loader_seconds += time.perf_counter() - t0
        stream.position += batch_gpu  # consumed (the loader may have read ahead)
        x = model_space(x.to(dev, non_blocking=True))
        if image_net:
            x = x.contiguous(memory_format=torch.channels_last)
        labels = labels.to(dev, non_blocking=True)
        return x, (labels if labels.shape[1] > 0 else None)

    while not done:
        # One optimizer step over `rounds` micro-batches; DDP reduces the gradients on the last one only.
        optimizer.zero_grad(set_to_none=True)
        for r in range(rounds):
            sync = model.no_sync() if world > 1 and r < rounds - 1 else contextlib.nullcontext()
            with sync:
                x0, labels = next_batch()
                sigma = sched.sample(batch_gpu, generator=sigma_gen)
                with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                    loss, error = loss_fn(model, x0, sigma.to(dev, non_blocking=True), labels)
                observed = loss.detach() if sched.observes == "loss" else error
                if (weight := sched.importance(sigma)) is not None:  # an importance-sampling schedule
                    loss = loss * weight.to(dev, non_blocking=True)
                scaler.scale(loss.sum() / batch).backward()
            sched.observe(sigma, observed)
            tick_sums += torch.stack([loss.detach().double().sum(), error.double().sum()])
            tick_count += batch_gpu
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = lr * min(st.cur_nimg / max(lr_rampup * 1e6, 1e-8), 1)
        scaler.step(optimizer)  # fp16: a step whose gradients overflowed is skipped and the scale lowered
        scaler.update()

        st.cur_nimg += batch
        st.global_step += 1
        steps_this_call += 1
        bar.update(batch / 1e3)
        halflife = ema_halflife_nimg if ema_rampup is None else min(ema_halflife_nimg, st.cur_nimg * ema_rampup)
        _ema_update(ema_net, net, 0.5 ** (batch / max(halflife, 1e-8)))

        record = sched.step(st.global_step)
        if record is not None and rank == 0:
            with open(sched_path, "a") as f:
                f.write(json.dumps({"step": st.global_step, "kimg": st.cur_nimg / 1e3, **record}) + "\n")

        done = st.cur_nimg >= total_nimg
        stopping = stop_after_steps is not None and steps_this_call >= stop_after_steps
        tick_ends = done or st.cur_nimg >= tick_start_nimg + tick * 1e3
        if not tick_ends and not stopping:
            continue

        # Tick: a diverged run stops here, before any snapshot of its weights; then status line and stats.
        check_finite()
        if not tick_ends:  # a stop in the middle of a tick: the tick so far goes into a resume point, to be ended
            st.tick_start_nimg = tick_start_nimg  # by the resumed run where an uninterrupted run ends it
            st.tick_partial = torch.cat([tick_sums.cpu(), torch.tensor([float(tick_count)], dtype=torch.float64)])
            last_snapshot = save_snapshot(resume_point=True)
            du.print0(f"Stopped after {steps_this_call} steps, mid-tick (step {st.global_step}): {last_snapshot.name}")
            break
        totals = du.all_reduce_sum(torch.cat([tick_sums.cpu(), torch.tensor([float(tick_count)], dtype=torch.float64)]))
        now = time.time()
        tick_kimg = (st.cur_nimg - tick_start_nimg) / 1e3
        stats = {
            "tick": st.cur_tick,
            "kimg": st.cur_nimg / 1e3,
            "step": st.global_step,
            "loss": (totals[0] / totals[2]).item(),
            "error": (totals[1] / totals[2]).item(),
            "sec_per_tick": now - tick_start_time,
            "sec_per_kimg": (now - tick_start_time) / max(tick_kimg, 1e-8),
            "lr": optimizer.param_groups[0]["lr"],
            "loader_share": loader_seconds / max(now - tick_start_time, 1e-9),
            "time": now - start_time,
        }
        if rank == 0:
            with open(stats_path, "a") as f:
                f.write(json.dumps(stats) + "\n")
        prof = sched.profile()
        sigma_p = f" sigma_p {prof['sigma_p']:.3g}" if prof and prof.get("sigma_p") is not None else ""
        log(
            f"tick {st.cur_tick:<5d} kimg {st.cur_nimg / 1e3:<9.1f} step {st.global_step:<7d} "
            f"loss {stats['loss']:<9.4g} error {stats['error']:<9.4g} sec/tick {stats['sec_per_tick']:<7.1f} "
            f"sec/kimg {stats['sec_per_kimg']:<7.2f}{sigma_p}"
        )
        tick_done = st.cur_tick
        st.cur_tick += 1  # before a snapshot: it holds the counter of the next tick, as a resumed run needs
        st.tick_start_nimg, st.tick_partial = st.cur_nimg, torch.zeros(3, dtype=torch.float64)
        on_grid = done or (snap and tick_done % snap == 0)
        if on_grid or stopping:
            last_snapshot = save_snapshot(resume_point=not on_grid)
        tick_start_nimg, tick_start_time = st.cur_nimg, time.time()
        tick_sums.zero_()
        tick_count, loader_seconds = 0, 0.0
        if stopping:
            break

    bar.close()
    if done:
        log(f"Done: {st.cur_nimg / 1e3:.1f} kimg in {st.global_step} steps.")
    return {
        "cur_nimg": st.cur_nimg,
        "global_step": st.global_step,
        "snapshot": str(last_snapshot) if last_snapshot else None,
        "done": done,
        "net": net,
        "ema": ema_net,
        "scheduler": sched,
    }
