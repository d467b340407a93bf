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
    training = _Training(Path(run_dir), options, g, data, write_samples)
    steps_this_call, done = 0, training.done
    while not done:
        training.step()
        steps_this_call += 1
        done = training.done
        stopping = stop_after_steps is not None and steps_this_call >= stop_after_steps
        tick_ends = done or training.tick_is_over()
        if not tick_ends and not stopping:
            continue
        training.check_finite()  # a diverged run stops here, before any snapshot of its weights
        if not tick_ends:  # a stop in the middle of a tick: the tick so far goes into a resume point
            training.stop_mid_tick(steps_this_call)
            break
        training.end_tick(snapshot=done or training.on_snapshot_grid(), resume_point=stopping)
        if stopping:
            break
    return training.finish(done)


class _Training:
    """One call of `run`: the parts built from the options (devices, network and EMA, optimizer, loss,
    scheduler), the per-rank random streams and the resumed state, the run folder's files, and the tick being
    summed. `step` is one optimizer step; a tick ends in `end_tick` (statistics, log line, snapshot)."""

    def __init__(self, run_dir: Path, options: dict, g: dict, data, write_samples: SampleWriter | None):
        self.run_dir, self.options, self.g, self.dataset, self.write_samples = run_dir, options, g, data, write_samples
        self._devices(g)
        self._build_parts(g, options["transfer"])
        # Per-rank randomness: noise and dropout (global torch RNG), σ draws, data order.
        seed = g["run"]["seed"]
        torch.manual_seed(seed * 1000003 + self.rank)
        self.sigma_gen = torch.Generator().manual_seed(seed * 1000003 + self.rank + 7919)
        self.stream = DataStream(len(data), seed, self.rank, self.world)
        self.st = TrainingState(self.net, self.ema_net, self.optimizer, self.sched, self.sigma_gen, self.stream)
        self.files = (run_dir / "stats.jsonl", run_dir / "schedule.jsonl", run_dir / "log.txt")
        self.bar = _progress_bar(g["run"]["duration"], self.rank)
        self.last_snapshot = _resume(run_dir, self.st, self.batch_gpu_total, self.log, self.files)
        self.bar.initial = self.bar.n = self.st.cur_nimg / 1e3  # a resumed run's bar starts where it stands
        self.total_nimg = round(g["run"]["duration"] * 1e6)
        self._start_ticks(g)

    def _devices(self, g: dict) -> None:
        """The device and the process group, the batch dealt over ranks and rounds, CUDA's switches."""
        batch, batch_gpu = g["run"]["batch"], g["run"]["batch_gpu"]
        self.dev = du.init(g["run"]["device"])
        self.rank, self.world = du.get_rank(), du.get_world_size()
        self.batch, self.batch_gpu_total = batch, batch // self.world
        self.batch_gpu = batch_gpu or self.batch_gpu_total
        if batch % self.world or self.batch_gpu_total % self.batch_gpu:
            raise ValueError(
                f"--batch {batch} must split evenly over {self.world} processes and --batch-gpu {self.batch_gpu}."
            )
        self.rounds = self.batch_gpu_total // self.batch_gpu
        if self.dev.type == "cuda":  # the usual switches; none of them exists on CPU
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = g["speed"]["tf32"]
            torch.backends.cudnn.benchmark = g["speed"]["cudnn_benchmark"]

    def _build_parts(self, g: dict, transfer: str | None) -> None:
        """Network, EMA, optimizer, loss, scheduler. Same seed on every rank → identical initial parameters."""
        dev, speed = self.dev, g["speed"]
        arch, precond = g["network"].get("arch"), g["network"].get("precond")
        du.print0(f"Building the network ({arch}, {precond} preconditioning)...")
        torch.manual_seed(g["run"]["seed"])
        self.net = networks.build_network(**g["network"]).to(dev).train().requires_grad_(True)
        # channels-last: oneDNN on CPU likes it too (RESULTS §2b)
        self.image_net = speed["channels_last"] and len(g["network"]["data_shape"]) == 3
        if self.image_net:
            self.net = self.net.to(memory_format=torch.channels_last)
        transfer = transfer if not checkpoint.list_snapshots(self.run_dir) else None  # a resumed run has its own
        if transfer:
            ema_state = _transfer(self.net, transfer)
        self.ema_net = copy.deepcopy(self.net).eval().requires_grad_(False)
        if transfer:
            self.ema_net.load_state_dict(ema_state)
        # Fused Adam on CUDA (one kernel for all tensors); on CPU the default, whose bits the benchmark tables hold.
        lr, fused = g["optimizer"]["lr"], dev.type == "cuda" or None
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=fused)
        self.loss_fn = DenoisingLoss(**g["loss"])
        self.context = context = g["scheduler"]["context"]
        if context["endpoint"] == "auto":
            context["endpoint"] = "discrete" if getattr(self.dataset, "is_binary", False) else "continuous"
        # The data themselves, for a scheduler that reads them (InfoNoise's Bayes cap); read only if asked.
        data_fn = lambda: as_tensor(self.dataset, limit=20_000)  # noqa: E731
        self.sched = schedulers.build(
            g["scheduler"]["name"], {**context, "training_data": data_fn}, **g["scheduler"]["options"]
        )
        self.model = _step_model(self.net, dev, self.world, speed["compile"])
        self.amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[speed["precision"]]
        self.scaler = torch.amp.GradScaler(dev.type, enabled=speed["precision"] == "fp16")  # fp16: overflows skipped

    def _start_ticks(self, g: dict) -> None:
        """The opening log line; the data loader, created after the resume so that it starts where the run
        stands; the tick's sums (a stopped tick's so far, on the device: the step never waits for the host)."""
        st, run, duration = self.st, g["run"], g["run"]["duration"]
        self.log(
            f"Training {sum(p.numel() for p in self.net.parameters()) / 1e6:.2f} M parameters on {self.world} x "
            f"{self.dev.type}; scheduler {self.sched!r}, weighting {g['loss']['weighting']}, endpoint "
            f"{self.context['endpoint']}, batch {self.batch} ({self.rounds} round(s) of {self.batch_gpu}/process), "
            f"for {duration * 1e3:g} kimg."
        )
        self.tick_start_nimg, self.tick_start_time, self.start_time = st.tick_start_nimg, time.time(), time.time()
        self.loader = _loader(self.dataset, self.stream, self.batch_gpu, g["loader"]["workers"], self.dev, run["seed"])
        self.tick_sums = st.tick_partial[:2].to(self.dev).clone()  # weighted loss, error
        self.tick_count, self.loader_seconds = int(st.tick_partial[2]), 0.0  # loader: host time waited this tick

    @property
    def done(self) -> bool:
        return self.st.cur_nimg >= self.total_nimg

    def tick_is_over(self) -> bool:
        return self.st.cur_nimg >= self.tick_start_nimg + self.g["run"]["tick"] * 1e3

    def on_snapshot_grid(self) -> bool:
        """Whether the tick just ended is one of every `snap` (read before end_tick counts it)."""
        snap = self.g["run"]["snap"]
        return bool(snap and self.st.cur_tick % snap == 0)

    def log(self, msg: str) -> None:
        if self.rank == 0:
            if self.bar.disable:
                print(msg, flush=True)
            else:
                tqdm.tqdm.write(msg)
            with open(self.files[2], "a") as f:
                f.write(msg + "\n")

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        t0 = time.perf_counter()
        x, labels = next(self.loader)
        self.loader_seconds += time.perf_counter() - t0
        self.stream.position += self.batch_gpu  # consumed (the loader may have read ahead)
        x = model_space(x.to(self.dev, non_blocking=True))
        if self.image_net:
            x = x.contiguous(memory_format=torch.channels_last)
        labels = labels.to(self.dev, non_blocking=True)
        return x, (labels if labels.shape[1] > 0 else None)

    def step(self) -> None:
        """One optimizer step over `rounds` micro-batches (DDP reduces the gradients on the last one only), then
        the counters, the EMA and the scheduler's step (a refresh is recorded in schedule.jsonl)."""
        st, sched, dev, optimizer, scaler = self.st, self.sched, self.dev, self.optimizer, self.scaler
        optimizer.zero_grad(set_to_none=True)
        for r in range(self.rounds):
            sync = self.model.no_sync() if self.world > 1 and r < self.rounds - 1 else contextlib.nullcontext()
            with sync:
                x0, labels = self.next_batch()
                sigma = sched.sample(self.batch_gpu, generator=self.sigma_gen)
                with torch.autocast(dev.type, dtype=self.amp, enabled=self.amp is not None):
                    loss, error = self.loss_fn(self.model, x0, sigma.to(dev, non_blocking=True), labels)
                observed = loss.detach() if sched.observes == "loss" else error
                if (weight := sched.importance(sigma)) is not None:  # an importance-sampling schedule
                    loss = loss * weight.to(dev, non_blocking=True)
                scaler.scale(loss.sum() / self.batch).backward()
            sched.observe(sigma, observed)
            self.tick_sums += torch.stack([loss.detach().double().sum(), error.double().sum()])
            self.tick_count += self.batch_gpu
        lr, lr_rampup, grad_clip = self.g["optimizer"].values()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = lr * min(st.cur_nimg / max(lr_rampup * 1e6, 1e-8), 1)
        scaler.step(optimizer)  # fp16: a step whose gradients overflowed is skipped and the scale lowered
        scaler.update()
        st.cur_nimg += self.batch
        st.global_step += 1
        self.bar.update(self.batch / 1e3)
        self._update_ema()
        record = sched.step(st.global_step)
        if record is not None and self.rank == 0:
            with open(self.files[1], "a") as f:
                f.write(json.dumps({"step": st.global_step, "kimg": st.cur_nimg / 1e3, **record}) + "\n")

    def _update_ema(self) -> None:
        """EMA with a half-life of `ema` Mimg, ramped up with the examples seen (EDM's ema_rampup)."""
        halflife_nimg, rampup = self.g["ema"]["halflife"] * 1e6, self.g["ema"]["rampup"]
        halflife = halflife_nimg if rampup is None else min(halflife_nimg, self.st.cur_nimg * rampup)
        _ema_update(self.ema_net, self.net, 0.5 ** (self.batch / max(halflife, 1e-8)))

    def check_finite(self) -> None:
        """Non-finite losses or weights (every rank decides alike), or an fp16 loss scale that collapsed
        (every step overflowing): the run stops with the last good snapshot named."""
        st, scaler = self.st, self.scaler
        # fp16: an overflowing step was skipped by the scaler (its loss may be inf); the weights tell
        if scaler.is_enabled():
            bad = torch.zeros((), dtype=torch.bool, device=self.dev)
        else:
            bad = ~torch.isfinite(self.tick_sums).all()
        for p in self.net.parameters():
            bad = bad | ~torch.isfinite(p).all()
        bad = du.all_reduce_sum(bad.to(torch.float64).reshape(1).cpu()).item() > 0
        if bad or (scaler.is_enabled() and scaler.get_scale() < 2.0**-24):
            msg = (
                f"Non-finite loss/gradient by step {st.global_step} ({st.cur_nimg / 1e3:.1f} kimg): training "
                f"stopped. The last good snapshot is {self.last_snapshot or 'none (no snapshot yet)'}. Options that "
                f"can cause it: {opt.nonfinite_causes(self.options)}; or the data. Re-run the same command after "
                f"changing one."
            )
            self.log(msg)
            raise NonFiniteLossError(msg)

    def _tick_totals(self) -> torch.Tensor:
        return torch.cat([self.tick_sums.cpu(), torch.tensor([float(self.tick_count)], dtype=torch.float64)])

    def stop_mid_tick(self, steps_this_call: int) -> None:
        """The tick so far goes into a resume point, to be ended by the resumed run where an uninterrupted run
        ends it."""
        st = self.st
        st.tick_start_nimg, st.tick_partial = self.tick_start_nimg, self._tick_totals()
        self.last_snapshot = self.save_snapshot(resume_point=True)
        du.print0(f"Stopped after {steps_this_call} steps, mid-tick (step {st.global_step}): {self.last_snapshot.name}")

    def end_tick(self, snapshot: bool, resume_point: bool) -> None:
        """The tick's statistics (stats.jsonl) and status line; then a snapshot on the run's grid (`snapshot`),
        else a resume point when this call stops here; the next tick starts."""
        st = self.st
        totals, now = du.all_reduce_sum(self._tick_totals()), time.time()
        seconds, tick_kimg = now - self.tick_start_time, (st.cur_nimg - self.tick_start_nimg) / 1e3
        stats = {
            "tick": st.cur_tick,
            "kimg": st.cur_nimg / 1e3,
            "step": st.global_step,
            "loss": (totals[0] / totals[2]).item(),
            "error": (totals[1] / totals[2]).item(),
            "sec_per_tick": seconds,
            "sec_per_kimg": seconds / max(tick_kimg, 1e-8),
            "lr": self.optimizer.param_groups[0]["lr"],
            "loader_share": self.loader_seconds / max(seconds, 1e-9),
            "time": now - self.start_time,
        }
        if self.rank == 0:
            with open(self.files[0], "a") as f:
                f.write(json.dumps(stats) + "\n")
        prof = self.sched.profile()
        sigma_p = f" sigma_p {prof['sigma_p']:.3g}" if prof and prof.get("sigma_p") is not None else ""
        self.log(
            f"tick {st.cur_tick:<5d} kimg {st.cur_nimg / 1e3:<9.1f} step {st.global_step:<7d} "
            f"loss {stats['loss']:<9.4g} error {stats['error']:<9.4g} sec/tick {stats['sec_per_tick']:<7.1f} "
            f"sec/kimg {stats['sec_per_kimg']:<7.2f}{sigma_p}"
        )
        st.cur_tick += 1  # before a snapshot: it holds the counter of the next tick, as a resumed run needs
        st.tick_start_nimg, st.tick_partial = st.cur_nimg, torch.zeros(3, dtype=torch.float64)
        if snapshot or resume_point:
            self.last_snapshot = self.save_snapshot(resume_point=not snapshot)
        self.tick_start_nimg, self.tick_start_time = st.cur_nimg, time.time()
        self.tick_sums.zero_()
        self.tick_count, self.loader_seconds = 0, 0.0

    def save_snapshot(self, resume_point: bool = False) -> Path:
        """A snapshot on the run's grid (every `snap` ticks and at the end), or, for a stop between them, a
        resume point (network-snapshot-<kimg>-step<step>.pt, no samples): the next snapshot removes it, so a
        stopped and resumed run ends with the same snapshots, under the same names, as one never stopped."""
        st = self.st
        state = st.state_dict()
        name = f"network-snapshot-{st.cur_nimg // 1000:06d}" + (f"-step{st.global_step}" if resume_point else "")
        path = self.run_dir / f"{name}.pt"
        if self.rank == 0:
            self._write_snapshot(path, state)
            for old in checkpoint.list_resume_points(self.run_dir):
                if old != path:
                    old.unlink(missing_ok=True)
        if self.rank == 0 and not resume_point and self.write_samples is not None:
            run = self.g["run"]
            labels = getattr(self.dataset, "label_names", None) if self.g["data"]["use_labels"] else None
            try:
                stem = self.run_dir / f"samples-{st.cur_nimg // 1000:06d}"
                self.write_samples(self.ema_net, stem, run["sample_grid"], run["seed"], self.dev, labels)
            except Exception as e:  # samples must never cost the run
                self.log(f"warning: could not write the sample grid ({type(e).__name__}: {e})")
        du.barrier()
        return path

    def _write_snapshot(self, path: Path, state: dict) -> None:
        """The snapshot file, atomically (with the options and the log's length); a full disk is one line
        naming the space needed and the intact previous snapshot."""
        log_path, last = self.files[2], self.last_snapshot
        saved_options = json.loads((self.run_dir / "training_options.json").read_text())
        log_bytes = log_path.stat().st_size if log_path.is_file() else 0
        try:
            checkpoint.atomic_save(
                {"format": checkpoint.FORMAT, "options": saved_options, "log_bytes": log_bytes, **state}, path
            )
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            need = last.stat().st_size if last and last.is_file() else None
            msg = (
                f"{path}: the disk is full (a snapshot needs about "
                f"{f'{need / 2**20:.0f} MiB' if need else 'as much as the last one'} free in {self.run_dir}). "
                f"The previous snapshot {last or '(none)'} is intact: free space and re-run the same command."
            )
            self.log(msg)
            raise DiskFullError(msg) from None

    def finish(self, done: bool) -> dict:
        self.bar.close()
        st = self.st
        if done:
            self.log(f"Done: {st.cur_nimg / 1e3:.1f} kimg in {st.global_step} steps.")
        return {
            "cur_nimg": st.cur_nimg,
            "global_step": st.global_step,
            "snapshot": str(self.last_snapshot) if self.last_snapshot else None,
            "done": done,
            "net": self.net,
            "ema": self.ema_net,
            "scheduler": self.sched,
        }


def _progress_bar(duration: float, rank: int) -> tqdm.tqdm:
    """On a terminal, a progress bar over kimg with an ETA; elsewhere (a log file, a batch job) tick lines only."""
    return tqdm.tqdm(
        total=round(duration * 1e3, 3),
        unit="kimg",
        disable=not (rank == 0 and _interactive()),
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}]",
    )
