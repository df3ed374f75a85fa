"""`python -m app bench --report` (issue 23, item 3) where only torch and numpy exist: a child process whose
MediaPipe, PyQt6, av, sounddevice, OpenCV and matplotlib imports fail (a meta-path hook), on the CPU with
the tiny config; the JSON it writes is checked."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("mediapipe", "PyQt6", "av", "sounddevice", "cv2", "matplotlib")

CHILD = textwrap.dedent("""
    import importlib.abc, json, runpy, sys
    BLOCKED = set(json.loads(sys.argv[1]))
    attempts = []

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                attempts.append(name)
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Block())
    sys.argv = ["app", *sys.argv[2:]]
    try:
        runpy.run_module("app", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = exit.code
    else:
        code = 0
    print("LOADED " + json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
    print("ATTEMPTED " + json.dumps(sorted(set(attempts))), file=sys.stderr)
    sys.exit(code)
""")


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIMIC_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", CHILD, json.dumps(BLOCKED), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)


def test_report_runs_with_only_torch_and_numpy(tmp_path):
    out = tmp_path / "report.json"
    done = _run(["bench", "--report", str(out), "--configs", "tiny", "--runtimes", "eager",
                 "--precisions", "fp32,fp16,bf16", "--batches", "1,2", "--repeats", "1", "--threads", "1"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(next(line for line in done.stderr.splitlines() if line.startswith("LOADED "))[7:])
    assert not set(loaded) & set(BLOCKED), loaded
    assert "torch" in loaded and "numpy" in loaded

    report = json.loads(out.read_text())
    machine = report["machine"]
    assert machine["torch"] and machine["device"] == "cpu" and machine["numpy"]
    assert {"gpu", "driver", "cuda_runtime"} <= set(machine)
    # item 1's check of the configs it ran
    assert report["fp16_nonfinite"] == {"tiny": 0}
    assert report["fp16_psnr_db"]["tiny"] is None or report["fp16_psnr_db"]["tiny"] >= 40
    assert isinstance(report["fp16_max_levels"]["tiny"], int)
    assert report["configs"]["tiny"]["fp16"]["fp16_passed"] is True
    assert report["configs"]["tiny"]["flops"]["G"] > 0

    rows = {(r["runtime"], r["precision"], r["batch"], r["cuda_graphs"]): r for r in report["rows"]}
    fp32 = rows[("eager", "fp32", 1, False)]
    assert fp32["error"] is None and fp32["max_levels"] == 0 and fp32["fps"] > 0 and fp32["g_tflops"] > 0
    assert set(fp32["ms"]) == {"E_m", "map", "G", "frame"}
    assert "fp16 is for CUDA" in rows[("eager", "fp16", 1, False)]["error"]  # a reason, not a crash
    bf16 = rows[("eager", "bf16", 1, False)]
    assert bf16["error"] is None and bf16["psnr_db"] > 30
    auto = report["configs"]["tiny"]["auto_precision"]
    batched = rows[("eager", auto, 2, False)]
    assert batched["error"] is None and batched["batch"] == 2 and batched["fps"] > 0
    assert not any(r["cuda_graphs"] for r in report["rows"])  # none on the CPU
    assert "report written to" in done.stdout and "| tiny | eager | fp32 | 1 |" in done.stdout


def test_report_plot_without_matplotlib_is_one_error_line(tmp_path):
    done = _run(["bench", "--report", str(tmp_path / "r.json"), "--configs", "tiny", "--plot",
                 str(tmp_path / "r.png")], tmp_path)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "matplotlib" in errors[0], done.stderr[-2000:]
    assert not (tmp_path / "r.json").exists()  # refused before the run, not after it


def test_replot_makes_the_chart(tmp_path):
    """With matplotlib (the normal environment): the chart of a report, here a two-row one."""
    from benchmarks.gpu_report import main

    rows = [{"config": "256", "runtime": rt, "precision": p, "batch": 1, "cuda_graphs": g, "fps": fps,
             "error": None} for rt, p, g, fps in (("compile", "fp16", False, 40.0), ("compile", "fp16", True, 61.5))]
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"machine": {"gpu": "NVIDIA H200", "cpu": "x"}, "rows": rows}))
    assert main([str(report), "--replot", str(tmp_path / "chart.png")]) == 0
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_command_whose_package_is_missing_is_one_error_line(tmp_path):
    """On such a machine the other commands stay listed; running one says what is missing, in one line."""
    done = _run(["render", "--driving", "clip.mp4", "--target", "random", "-o", str(tmp_path / "o.mp4")], tmp_path)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-2000:]
    assert "`render` needs the package" in errors[0] and "not installed" in errors[0]
    listed = _run(["--help"], tmp_path)
    assert "bench" in listed.stdout and "render" in listed.stdout
