"""The weights-free reenactor: MediaPipe landmarks drive a dense mesh warp of the target's own pixels."""
from engine.warp.reenactor import WarpReenactor

__all__ = ["WarpReenactor"]
