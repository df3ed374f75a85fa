"""Runtime selection and execution: explicit choices, no silent GPU→CPU fallback, same numbers everywhere."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.errors import RuntimeUnavailableError
from engine.runtime.runtimes import build_graph, runtime_status, select_runtime


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.leaky_relu(self.up(self.conv(x)), 0.2) * y.mean()


@pytest.fixture(scope="module")
def net_and_inputs():
    torch.manual_seed(0)
    return SmallNet().eval(), (torch.randn(1, 3, 16, 16), torch.randn(1, 5))


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory) -> Path:
    """One graph cache for the small net's tests: the first test builds each runtime's graph, the others
    load it as a second start would (an AOTInductor build costs 12–35 s on 2 cores)."""
    return tmp_path_factory.mktemp("small-net-cache")


def test_auto_on_a_machine_without_gpu_says_why(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from engine.runtime.cpu_precision import native_bf16

    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    choice = select_runtime("auto")
    assert choice.device == "cpu" and choice.precision in ("fp32", "bf16")
    assert "no CUDA GPU" in choice.reason
    assert "CPU" in choice.describe()
    if choice.precision == "bf16":  # only where the CPU has it natively, and says which
        assert native_bf16() is not None and f"bf16 (native {native_bf16()})" in choice.describe()
        assert (tmp_path / "bf16_probe.json").is_file()  # measured once, kept


def test_asking_for_a_missing_gpu_is_an_error_not_a_fallback():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeUnavailableError, match="CUDA GPU was requested"):
        select_runtime("eager", device="cuda")
    with pytest.raises(RuntimeUnavailableError, match="tensorrt is unavailable"):
        select_runtime("tensorrt")
    assert runtime_status()["tensorrt"] is not None


def test_without_a_cpp_compiler_auto_skips_compile(monkeypatch):
    """A standalone bundle or a Windows box without MSVC: `auto` must not pick torch.compile there."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    import engine.runtime.runtimes as runtimes

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(runtimes.shutil, "which", lambda name: None)
    assert "no C++ compiler" in runtime_status()["compile"]
    with pytest.raises(RuntimeUnavailableError, match="runtime compile is unavailable: no C\\+\\+ compiler"):
        select_runtime("compile")
    expected = "onnx" if runtime_status()["onnx"] is None else "eager"
    assert select_runtime("auto").name == expected


@pytest.mark.parametrize("bad", [("warp-drive", "auto", "auto"), ("eager", "tpu", "auto"), ("eager", "cpu", "fp16")])
def test_bad_requests_are_one_line_errors(bad):
    with pytest.raises(RuntimeUnavailableError) as err:
        select_runtime(*bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("runtime,precision,tol", [("eager", "fp32", 0), ("onnx", "fp32", 1e-5),
                                                   ("compile", "fp32", 1e-5), ("eager", "bf16", 5e-2)])
def test_every_cpu_runtime_matches_eager(net_and_inputs, small_cache, runtime, precision, tol, monkeypatch):
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(small_cache))
    net, inputs = net_and_inputs
    with torch.no_grad():
        expected = net(*inputs)
    graph = build_graph(copy.deepcopy(net), inputs, select_runtime(runtime, "cpu", precision), cache_key="small:net")
    out = graph(*inputs)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert (out - expected).abs().max().item() <= tol * max(1.0, expected.abs().max().item())


def _compilations() -> int:
    """Graphs traced by dynamo plus graphs compiled by inductor so far in this process."""
    from torch._dynamo.utils import counters

    return sum(counters["stats"].values()) + sum(counters["inductor"].values()) + sum(counters["aot_autograd"].values())


@pytest.mark.slow
def test_no_compilation_after_warm_up_and_none_on_a_second_start(tmp_path, monkeypatch):
    """Real frames come in as the app makes them (a permuted uint8 image; W+ made under inference mode):
    the warm-up must leave nothing to compile for them, a second start with the same weights loads the
    cached graphs without compiling anything, and both give eager's picture (within one level). This is
    the compiled pipeline's match with eager too (tests/test_stylegan_pipeline.py checks onnx's), in
    one build: each AOTInductor build of the pipeline costs ~50 s of the test run on 2 cores."""
    import numpy as np

    from engine.stylegan.options import StyleGANOptions
    from engine.stylegan.pipeline import StyleGANReenactor
    from models.paper import PaperConfig, PaperModel

    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    config = PaperConfig.tiny()
    g = config.generator
    w_id = np.random.RandomState(1).randn(g.n_latent, g.style_dim).astype(np.float32)
    frames = [np.random.RandomState(i).randint(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(3)]

    def fresh_model() -> PaperModel:
        torch.manual_seed(0)  # the same random weights on every start
        model = PaperModel(config).eval()
        with torch.no_grad():  # random init leaves some parameters at exact constants: perturb every path
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        return model

    eager = StyleGANReenactor(fresh_model(), nn.Module(), "tiny", select_runtime("eager", "cpu", "fp32"),
                              StyleGANOptions(aligned_input=True))
    eager.set_identity(w_id)
    expected = [eager.drive(f).image for f in frames]
    outputs = []
    for start in ("cold", "warm"):
        model = fresh_model()
        before_build = _compilations()
        heard: list[str] = []
        reenactor = StyleGANReenactor(model, nn.Module(), "tiny", select_runtime("compile", "cpu", "fp32"),
                                      StyleGANOptions(aligned_input=True), progress=lambda f, m: heard.append(m))
        built = _compilations()
        stage = "building G (compile, first use of this pack: ~" if start == "cold" else "loading compiled G from cache"
        assert any(m.startswith(stage) for m in heard), heard
        if start == "warm":
            assert built == before_build, "the second start compiled again instead of loading the cache"
        reenactor.set_identity(w_id)
        outputs.append([reenactor.drive(f).image for f in frames])
        assert _compilations() == built, "a real frame triggered a compilation after the warm-up"
    assert len(list((tmp_path / "compiled").glob("*.pt2"))) == 2
    for cold, warm, want in zip(*outputs, expected):
        assert np.array_equal(cold, warm)
        assert np.abs(cold.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("runtime", ["compile", "onnx"])
def test_inputs_of_any_layout_give_the_eager_result(net_and_inputs, small_cache, runtime, monkeypatch):
    """A compiled graph assumes the layout it was built for: permuted, sliced or inference-mode inputs
    (and float64 ones) must still give eager's numbers."""
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(small_cache))
    net, (x, y) = net_and_inputs
    with torch.no_grad():
        expected = net(x, y)
    graph = build_graph(copy.deepcopy(net), (x, y), select_runtime(runtime, "cpu", "fp32"), cache_key="small:net")
    permuted = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels-last strides
    with torch.inference_mode():
        y_inference = y.clone()
    wide = torch.zeros(1, 10)
    wide[:, ::2] = y  # a strided view
    for inputs in ((permuted, y_inference), (x.double(), wide[:, ::2]), (x.requires_grad_(False), y)):
        assert torch.allclose(graph(*inputs), expected, atol=1e-5)


@pytest.mark.parametrize("runtime,suffix", [("compile", ".pt2"), ("onnx", ".onnx")])
def test_stale_or_corrupt_cache_entries_are_rebuilt_with_a_log_line(net_and_inputs, small_cache, runtime, suffix,
                                                                   tmp_path, monkeypatch, caplog):
    net, inputs = net_and_inputs
    with torch.no_grad():
        expected = net(*inputs)
    choice = select_runtime(runtime, "cpu", "fp32")
    folder = "compiled" if runtime == "compile" else "onnx"
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(small_cache))
    build_graph(copy.deepcopy(net), inputs, choice, cache_key="small:net")  # built once for the module
    shutil.copytree(small_cache / folder, tmp_path / folder)  # a good entry of our own, to damage
    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    (entry,) = (tmp_path / folder).glob(f"*{suffix}")
    for damage in (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),  # truncated
                   lambda p: p.write_bytes(b"not a compiled graph")):  # from something else entirely
        damage(entry)
        caplog.clear()
        with caplog.at_level("WARNING", logger="engine.runtime.graph_cache"):
            graph = build_graph(copy.deepcopy(net), inputs, choice, cache_key="small:net")
        assert any("stale or corrupt" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
        assert torch.allclose(graph(*inputs), expected, atol=1e-5)
        assert entry.exists()


def test_cache_key_follows_weights_shapes_and_precision(net_and_inputs):
    from engine.runtime.graph_cache import GraphKey

    net, inputs = net_and_inputs
    base = GraphKey.of("small:net", net, inputs, "compile", "cpu", "fp32")
    assert GraphKey.of("small:net", copy.deepcopy(net), inputs, "compile", "cpu", "fp32").digest == base.digest
    changed = copy.deepcopy(net)
    with torch.no_grad():
        changed.conv.weight[0, 0, 0, 0] += 1e-3
    others = [GraphKey.of("small:net", changed, inputs, "compile", "cpu", "fp32"),
              GraphKey.of("small:net", net, (torch.zeros(1, 3, 8, 8), inputs[1]), "compile", "cpu", "fp32"),
              GraphKey.of("small:net", net, inputs, "compile", "cpu", "bf16"),
              GraphKey.of("small:net", net, inputs, "onnx", "cpu", "fp32")]
    assert len({k.digest for k in others} | {base.digest}) == 5


def test_precision_auto_picks_bf16_only_when_native_and_faster():
    from engine.runtime.cpu_precision import ProbeResult, decide

    faster, slower = ProbeResult(fp32_ms=100.0, bf16_ms=50.0), ProbeResult(fp32_ms=100.0, bf16_ms=120.0)
    assert decide("AMX", faster)[0] == "bf16" and "AMX" in decide("AMX", faster)[1]
    assert decide("AVX512-BF16", slower)[0] == "fp32"
    assert decide("AVX512-BF16", ProbeResult(100.0, 98.0))[0] == "fp32"  # a tie does not pay for the accuracy
    assert decide(None, faster)[0] == "fp32"
    assert decide(None, None)[0] == "fp32"


def test_precision_auto_follows_the_cpu_and_the_probe(tmp_path, monkeypatch):
    """The decision is wired through select_runtime: no native bf16 → fp32 without probing; a slow probe → fp32."""
    import engine.runtime.cpu_precision as cpu_precision
    from engine.runtime.cpu_precision import ProbeResult

    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cpu_precision, "native_bf16", lambda: None)
    monkeypatch.setattr(cpu_precision, "measure", lambda: pytest.fail("probed a CPU without native bf16"))
    assert select_runtime("eager", "cpu").precision == "fp32"
    monkeypatch.setattr(cpu_precision, "native_bf16", lambda: "AMX")
    monkeypatch.setattr(cpu_precision, "measure", lambda: ProbeResult(fp32_ms=100.0, bf16_ms=150.0))
    assert select_runtime("eager", "cpu").precision == "fp32"
    (tmp_path / "bf16_probe.json").unlink()
    monkeypatch.setattr(cpu_precision, "measure", lambda: ProbeResult(fp32_ms=100.0, bf16_ms=40.0))
    choice = select_runtime("eager", "cpu")
    assert choice.precision == "bf16" and "bf16 (native" in choice.describe()
    monkeypatch.setattr(cpu_precision, "measure", lambda: pytest.fail("the probe's result was not cached"))
    assert select_runtime("eager", "cpu").precision == "bf16"
    assert select_runtime("onnx", "cpu").precision == "fp32"


def test_bf16_graph_is_close_to_fp32_and_leaves_the_module_in_fp32(tmp_path, monkeypatch):
    """G in bf16 (compiled, as `auto` picks it on native-bf16 CPUs) gives the fp32 image within bf16's
    accuracy, and the caller's module — shared with the identity inverter — stays float32."""
    from models.stylegan2 import Generator, GeneratorConfig

    monkeypatch.setenv("MIMIC_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(size=32, style_dim=32, n_mlp=1, channel_max=16)).eval()
    w = torch.randn(1, g.config.n_latent, g.config.style_dim)
    with torch.no_grad():
        expected = g(w).clamp(-1, 1)
    graph = build_graph(g, (w,), select_runtime("compile", "cpu", "bf16"), cache_key="tiny:G")
    out = graph(w)
    assert out.dtype == torch.float32 and all(p.dtype == torch.float32 for p in g.parameters())
    mse = ((out.clamp(-1, 1) - expected) / 2).pow(2).mean().item()
    assert 10 * torch.log10(torch.tensor(1 / mse)).item() >= 30.0  # PSNR in dB on [0, 1] images


def test_image_difference_reports_psnr_and_max_levels():
    import numpy as np

    from benchmarks.pipeline_bench import image_difference

    a = np.full((4, 4, 3), 100, np.uint8)
    b = a.copy()
    assert image_difference(a, b) == (float("inf"), 0)
    b[0, 0, 0] = 110
    psnr, levels = image_difference(b, a)
    assert levels == 10 and abs(psnr - 10 * np.log10(255.0**2 / (100 / 48))) < 1e-9


@pytest.mark.slow
def test_bench_command_reports_image_difference_and_starts(tmp_path):
    """`python -m app bench … --startup …` as docs/runtimes.md (Performance) runs it, on the tiny config."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "app", "bench", "--configs", "tiny", "--runtimes", "eager:fp32,eager:bf16",
           "--repeats", "1", "--startup", "eager:fp32", "--json", str(out)]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {r["runtime"]: r for r in report["rows"]}
    assert rows["eager:fp32"]["psnr_db"] == float("inf") and rows["eager:fp32"]["max_levels"] == 0
    assert 25.0 <= rows["eager:bf16"]["psnr_db"] < float("inf")
    assert set(report["g_convolutions_ms"]["tiny"]) == {"fp32", "bf16"}
    (start,) = report["startup"]["tiny"]
    for when in ("cold", "warm"):
        assert set(start[when]["s"]) >= {"load", "build", "first_frame"}
        assert start[when]["compilations_after_warm_up"] == 0
    assert start["render_warm_wall"] > 0
    assert "image vs fp32" in done.stdout and "starts (fresh processes" in done.stdout
