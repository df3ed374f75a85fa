"""Running networks: runtimes (eager, compile, ONNX, TensorRT), the graph cache, CPU precision,
memory policy, and loading weights. With `engine.stylegan` the only part of engine that imports torch.
"""
