"""`python -m app train`: train E_m and M (the paper's method) — data preparation, identity latents,
the training run (one process, or many under torchrun), and the toy world that proves it learns."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from engine import values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the motion encoder and mapping network (prepare, latents, run, --toy)",
        description="Train the paper's E_m and M on talking-head videos: `prepare` aligns frames, `latents` "
        "inverts 10 frames per identity with ReStyle, `run` trains (torchrun for several processes or GPUs). "
        "`--toy` trains in a tiny synthetic world on this CPU and prints how much it learned.",
    )
    p.add_argument("--toy", action="store_true", help="train in the toy world and print the figures")
    p.add_argument("--steps", dest="toy_steps", type=values.STEPS, default=300, metavar="N",
                   help="with --toy: steps (300)")
    p.add_argument("--out", dest="toy_out", type=Path, metavar="DIR",
                   help="with --toy: keep the run folder here (default: a temporary folder)")
    p.add_argument("--log-every", dest="toy_log_every", type=values.INTERVAL, default=25, metavar="N",
                   help="with --toy: steps per logged window (25)")
    p.set_defaults(func=run, parser=p)
    commands = p.add_subparsers(dest="train_command", metavar="STEP")
    _register_prepare(commands)
    _register_latents(commands)
    _register_run(commands)


def _shard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rank", type=values.RANK, default=os.environ.get("RANK", "0"),
                   help="this job's shard (default: $RANK or 0)")
    p.add_argument("--world-size", type=values.WORLD_SIZE, default=os.environ.get("WORLD_SIZE", "1"),
                   help="number of shards (default: $WORLD_SIZE or 1)")


def _register_prepare(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("prepare", help="videos → aligned 256x256 crops (resumable)",
                            description="Sample frames of every video under VIDEOS (identity/video/clip.mp4 or "
                            "identity/*.mp4), FFHQ-align them with MediaPipe and cache the crops under DATA. "
                            "Clips already in DATA's manifest are skipped; unreadable or faceless videos are "
                            "reported and skipped.")
    p.add_argument("videos", type=Path, help="folder of talking-head videos")
    p.add_argument("-o", "--data", required=True, type=Path, help="prepared-data folder to fill")
    p.add_argument("--sample-fps", type=values.FPS, default=2.0, help="frames taken per second of video (2)")
    p.add_argument("--size", type=values.CROP_SIZE, default=256, help="crop size in pixels (256)")
    p.add_argument("--workers", type=values.WORKERS, default=1, help="aligning processes on this machine (1)")
    _shard_args(p)
    p.set_defaults(train_func=_prepare)


def _register_latents(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("latents", help="invert 10 frames per identity with ReStyle (resumable)",
                            description="For every identity in DATA, invert 10 of its frames with the ReStyle "
                            "encoder and store the W+ latents (DATA/latents/<identity>.npy).")
    p.add_argument("data", type=Path, help="prepared-data folder")
    p.add_argument("--restyle", type=Path, metavar="FILE",
                   help="restyle_psp_ffhq_encode.pt, or a Mimic pack made from it")
    p.add_argument("--per-identity", type=values.PER_IDENTITY, default=10, help="latents per identity (10)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    _shard_args(p)
    p.set_defaults(train_func=_latents)


def _register_run(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("run", help="train (torchrun --nproc_per_node N -m app train run … for N processes)",
                            description="Train E_m and M with the paper's losses and Ranger. Needs the data "
                            "(prepare + latents), ReStyle's checkpoint and the loss networks' weights.")
    p.add_argument("data", type=Path, help="prepared-data folder (with latents)")
    p.add_argument("-o", "--out", required=True, type=Path, help="run folder (checkpoints, logs, best_model.pt, pack)")
    p.add_argument("--restyle", required=True, type=Path, metavar="FILE", help="restyle_psp_ffhq_encode.pt")
    p.add_argument("--stylegan", type=Path, metavar="FILE",
                   help="generator to train against (default: ReStyle's, i.e. StyleGAN2 FFHQ config-f)")
    p.add_argument("--lpips-alexnet", type=Path, metavar="FILE", help="alexnet-owt-7be5be79.pth (torchvision)")
    p.add_argument("--lpips-linear", type=Path, metavar="FILE", help="LPIPS v0.1 alex.pth (richzhang)")
    p.add_argument("--arcface", type=Path, metavar="FILE", help="model_ir_se50.pth (identity loss; E_m's start)")
    p.add_argument("--random-loss-backbones", action="store_true",
                   help="random LPIPS/ArcFace instead of the files: for tests only, the result is meaningless")
    p.add_argument("--steps", type=values.STEPS, default=500_000, help="optimiser steps (500000)")
    p.add_argument("--batch-size", type=values.BATCH_SIZE, default=4, help="global batch, split over the processes (4)")
    p.add_argument("--lr", type=values.LEARNING_RATE, default=1e-4, help="learning rate (1e-4)")
    p.add_argument("--finetune-generator", action="store_true", help="also train G (the paper's Ours-Gen)")
    p.add_argument("--cosface", type=values.LOSS_WEIGHT, default=0.0, metavar="W",
                   help="CosFace weight (Ours-Cos; default 0)")
    p.add_argument("--val-identities", type=values.HELD_OUT, default=4, help="identities held out for validation (4)")
    p.add_argument("--log-every", type=values.INTERVAL, default=100, help="steps per logged window (100)")
    p.add_argument("--val-every", type=values.INTERVAL, default=1000, help="steps between validations (1000)")
    p.add_argument("--checkpoint-every", type=values.INTERVAL, default=5000, help="steps between checkpoints (5000)")
    p.add_argument("--workers", type=values.WORKERS, default=4, help="data-loading processes per training process (4)")
    p.add_argument("--device", default="auto", help="auto (default: this process's GPU, else CPU), cpu, cuda")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--seed", type=values.SEED, default=0, help="data order and noise (0)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    p.set_defaults(train_func=_run)


def run(args: argparse.Namespace) -> int:
    if args.toy:
        if args.train_command is not None:
            args.parser.error("--toy runs on its own; leave out the step")
        return _toy(args)
    if args.train_command is None:
        args.parser.error("give a step (prepare, latents, run) or --toy")
    return args.train_func(args)


def _toy(args: argparse.Namespace) -> int:
    from training.toy import toy_train_config, train_toy

    report = train_toy(args.toy_out, toy_train_config(args.toy_steps, log_every=args.toy_log_every))
    if report is not None:  # the main process
        print("\n".join(report.lines()))
        if report.out is not None:
            print(f"run folder: {report.out} (best_model.pt, model.safetensors, samples/, metrics.jsonl)")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from training.prepare import PrepareConfig, prepare

    report = prepare(args.videos, args.data, PrepareConfig(size=args.size, sample_fps=args.sample_fps),
                     workers=args.workers, rank=args.rank, world=args.world_size)
    aligned = report.clips - len(report.skipped)
    print(f"{aligned} clip{'s' * (aligned != 1)} aligned ({report.frames} frames), {report.already_done} already "
          f"done, {len(report.skipped)} skipped")
    for clip, reason in report.skipped:
        print(f"  skipped {clip}: {reason}")
    return 0


def _latents(args: argparse.Namespace) -> int:
    from training.distributed import Rank, pick_device
    from training.latents import compute_latents

    device = pick_device(args.device, Rank(local_rank=int(os.environ.get("LOCAL_RANK", "0"))))
    report = compute_latents(args.data, args.restyle, device, per_identity=args.per_identity, rank=args.rank,
                             world=args.world_size)
    print(f"{report.identities} identities inverted ({report.frames} frames), {report.already_done} already done")
    return 0


def _run(args: argparse.Namespace) -> int:
    from training.run import RunOptions, train

    options = RunOptions(
        data=args.data, out=args.out, restyle=args.restyle, stylegan=args.stylegan,
        lpips_alexnet=args.lpips_alexnet, lpips_linear=args.lpips_linear, arcface=args.arcface,
        random_loss_backbones=args.random_loss_backbones, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        finetune_generator=args.finetune_generator, cosface=args.cosface, val_identities=args.val_identities,
        log_every=args.log_every, val_every=args.val_every, checkpoint_every=args.checkpoint_every,
        workers=args.workers, device=args.device, amp=not args.no_amp, seed=args.seed, resume=args.resume,
    )
    result = train(options)
    if result is not None:
        best = "none" if result.best_val is None else f"{result.best_val:.5f}"
        print(f"trained {result.step} steps; best validation loss {best}")
        for path in (result.paper_checkpoint, result.pack):
            if path is not None:
                print(f"wrote {path}")
    return 0
