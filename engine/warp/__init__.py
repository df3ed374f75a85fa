"""The weights-free reenactor: MediaPipe landmarks drive a dense mesh warp of the target's own pixels."""
from engine.warp.reenactor import WarpConfig, WarpReenactor
from engine.warp.retarget import Retargeting

__all__ = ["Retargeting", "WarpConfig", "WarpReenactor"]
