"""PyInstaller hook for Torch-TensorRT (GPU builds only; requirements-gpu.txt). PyInstaller ships none.

Torch-TensorRT keeps its runtime in native libraries under torch_tensorrt/lib (loaded with
torch.ops.load_library) and, like torch, needs its Python sources for TorchScript/dynamo tracing.
Not exercised here (no CUDA machine with a GPU build of the bundle): see docs/packaging.md, "GPU build".
"""
from PyInstaller.utils.hooks import collect_data_files, collect_dynamic_libs, collect_submodules

module_collection_mode = "pyz+py"
hiddenimports = collect_submodules("torch_tensorrt", filter=lambda name: ".tests" not in name) + ["tensorrt"]
binaries = collect_dynamic_libs("torch_tensorrt")
datas = collect_data_files("torch_tensorrt", excludes=["**/*.h", "**/*.hpp", "**/*.cmake"])
