"""Time to first frame of the paper pipeline: load, build and first-frame times, cold and warm.

Each start is a fresh Python process, as a user's `render` or app launch is:
- *cold*: an empty cache dir, so the compiled graphs are built (and stored);
- *warm*: the second start with the same pack and settings, which loads them.
A start loads a random-weight pack (written once through `import-weights`' own code), builds the
reenactor on the runtime, sets an identity latent and renders one aligned driving image. The wall
time of the real command ``python -m app render --weights PACK --aligned`` (one image, an identity
latent as target) is timed too, warm.

Child mode (one start, JSON on stdout): ``python -m benchmarks.startup_bench PACK RUNTIME PRECISION``.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def write_random_pack(config, folder: Path, seed: int = 0) -> Path:
    """A pack with random weights of `config`, made by the same import path as real checkpoints."""
    import torch

    from engine.runtime.weights import import_weights
    from models.paper import PaperModel, ReStyleInverter

    torch.manual_seed(seed)
    paper, restyle = folder / "best_model.pt", folder / "restyle.pt"
    model = PaperModel(config)
    torch.save({"state_dict": model.state_dict(), "opts": {"stylegan_weights": "random"}}, paper)
    del model
    inverter = ReStyleInverter(config)
    inverter.latent_avg.normal_()
    state = {k: v for k, v in inverter.state_dict().items() if k.startswith(("encoder.", "decoder."))}
    opts = {"encoder_type": "BackboneEncoder", "input_nc": 6, "n_iters_per_batch": config.restyle_iters,
            "output_size": config.generator.size, "start_from_latent_avg": True}
    torch.save({"state_dict": state, "opts": opts, "latent_avg": inverter.latent_avg.clone()}, restyle)
    del inverter, state
    report = import_weights(paper, restyle, out=folder / "random.safetensors")
    paper.unlink()
    restyle.unlink()
    return report.path


def one_start(pack: Path, runtime: str, precision: str) -> dict:
    """Child: import, load, build, first frame — seconds each — and compilations after the warm-up."""
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from torch._dynamo.utils import counters

    from engine.runtime.runtimes import select_runtime
    from engine.stylegan.options import StyleGANOptions
    from engine.stylegan.pipeline import StyleGANReenactor
    from engine.runtime.weights import load_paper_pack

    times = {"import": time.perf_counter() - t0}
    t = time.perf_counter()
    choice = select_runtime(runtime, "cpu", precision)
    model, inverter, manifest = load_paper_pack(pack)
    times["load"] = time.perf_counter() - t
    t = time.perf_counter()
    reenactor = StyleGANReenactor(model, inverter, str(manifest["content_hash"]), choice,
                                  StyleGANOptions(aligned_input=True))
    times["build"] = time.perf_counter() - t
    compiled = sum(sum(c.values()) for c in counters.values())
    g = model.decoder.config
    reenactor.set_identity(np.random.RandomState(0).randn(g.n_latent, g.style_dim).astype(np.float32))
    frame = np.random.RandomState(1).randint(0, 256, (reenactor.input_size, reenactor.input_size, 3), dtype=np.uint8)
    t = time.perf_counter()
    reenactor.drive(frame)
    times["first_frame"] = time.perf_counter() - t
    t = time.perf_counter()
    reenactor.drive(frame)
    times["second_frame"] = time.perf_counter() - t
    return {"runtime": reenactor.describe(), "s": times, "threads": torch.get_num_threads(),
            "compilations_after_warm_up": sum(sum(c.values()) for c in counters.values()) - compiled}


def render_inputs(config, folder: Path) -> tuple[Path, Path]:
    """A random aligned driving image and a random identity latent (.npy) that fit `config`."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(2)
    driving = folder / "driving.png"
    Image.fromarray(rng.randint(0, 256, (config.input_size, config.input_size, 3), dtype=np.uint8)).save(driving)
    target = folder / "identity.npy"
    np.save(target, rng.randn(config.generator.n_latent, config.generator.style_dim).astype(np.float32))
    return driving, target


def measure(pack: Path, runtime: str, precision: str, driving: Path, target: Path) -> dict:
    """Cold start, warm start, and the warm `render` command's wall time, with one fresh cache dir."""
    with tempfile.TemporaryDirectory(prefix="mimic-startup-") as cache:
        env = {**os.environ, "MIMIC_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        result = {"runtime": f"{runtime}:{precision}"}
        for start in ("cold", "warm"):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "benchmarks.startup_bench", str(pack), runtime, precision],
                                 env=env, cwd=ROOT, capture_output=True, text=True, check=True)
            result[start] = {**json.loads(out.stdout.strip().splitlines()[-1]), "wall": time.perf_counter() - t}
            log.info("%s %s start: %s", runtime, start, result[start])
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "app", "render", "--weights", str(pack), "--aligned", "--driving",
                   str(driving), "--target", str(target), "--runtime", runtime, "--precision", precision,
                   "-o", str(Path(tmp) / "out.png")]
            t = time.perf_counter()
            subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
            result["render_warm_wall"] = time.perf_counter() - t
    return result


def format_startup(rows: list[dict]) -> str:
    lines = ["| runtime | start | import s | load s | build s | first frame s | process wall s | compilations after warm-up |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for start in ("cold", "warm"):
            s = r[start]["s"]
            lines.append(f"| {r[start]['runtime']} | {start} | {s['import']:.1f} | {s['load']:.1f} | {s['build']:.1f} | "
                         f"{s['first_frame']:.2f} | {r[start]['wall']:.1f} | {r[start]['compilations_after_warm_up']} |")
        lines.append(f"| {r['runtime']} | `render --aligned`, warm | | | | | {r['render_warm_wall']:.1f} | |")
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(one_start(Path(sys.argv[1]), sys.argv[2], sys.argv[3])))
