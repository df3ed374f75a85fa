"""Data-channel control messages: a schema, a validator, and the replies.

Client → server (JSON objects, at most Limits.max_control_bytes):
    {"type": "set", "name": NAME, "value": V}     an option (OPTIONS: name → type and range)
    {"type": "neutral"}                           the next driving frames become the neutral reference
    {"type": "target", "kind": "random", "seed": N}  a random identity (model packs; portraits and
                                                  latents are uploaded with POST /target)
    {"type": "ping", "t": T}                      answered with {"type": "pong", "t": T} (round trip)
Server → client:
    {"type": "hello", "session": ID, "reenactor": LINE, "kind": "warp"|"stylegan", "options": [...], "targets": [...]}
    {"type": "ok", "of": TYPE}  |  {"type": "error", "message": ONE_LINE}  |  {"type": "pong", "t": T}
    {"type": "stats", "in_pts": P, "out_pts": Q, "stages_ms": {...}, "queue_ms": Q, "server_ms": S,
     "out_wait_ms": W, "dropped": N, "processed": N, "face": bool}      one per output frame:
        in_pts: the camera frame it came from (the client's pts); out_pts: this output's pts;
        queue_ms: arrival → taken by the model; server_ms: arrival → output ready; out_wait_ms: ready →
        taken by the encoder; dropped: camera frames skipped so far (a newer one came first, or limits)
A malformed message gets an error reply; it never ends the session.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

MOTION_MODES = ("relative", "absolute")


@dataclass(frozen=True)
class Option:
    kind: Literal["float", "bool", "choice"]
    low: float = 0.0  # float options: the range
    high: float = 1.0
    choices: tuple[str, ...] = ()


# The options a client may set (both reenactors share the names; each takes the ones it knows).
OPTIONS: dict[str, Option] = {
    "expression": Option("float", 0.0, 2.0),  # expression strength
    "smoothing": Option("float", 0.0, 1.0),  # temporal smoothing strength
    "head": Option("float", 0.0, 2.0),  # landmark warp: head-motion strength
    "eyes": Option("float", -1.0, 1.0),  # landmark warp: eye openness offset
    "mouth": Option("float", 0.0, 2.0),  # landmark warp: mouth openness gain
    "eye_contact": Option("bool"),  # landmark warp: irises held at rest
    "paste_back": Option("bool"),  # model packs: the face pasted back into the portrait
    "motion": Option("choice", choices=MOTION_MODES),  # model packs: relative or the paper's absolute motion
}
MAX_SEED = 2**31 - 1


class ProtocolError(ValueError):
    """A control message that does not follow the schema (its text is the one-line reply)."""


@dataclass(frozen=True)
class Control:
    type: Literal["set", "neutral", "target", "ping"]
    name: str = ""  # set
    value: Any = None  # set: the validated value
    seed: int = 0  # target
    t: float = 0.0  # ping


def parse_control(message: str | bytes, max_bytes: int) -> Control:
    """One validated control message; raises ProtocolError with a one-line reason."""
    if isinstance(message, bytes):
        raise ProtocolError("control messages are JSON text, not binary")
    if len(message) > max_bytes:
        raise ProtocolError(f"control message too long ({len(message)} characters; at most {max_bytes})")
    try:
        data = json.loads(message, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a control message is a JSON object with a \"type\"")
    kind = data.get("type")
    fields = {"set": {"type", "name", "value"}, "neutral": {"type"}, "target": {"type", "kind", "seed"},
              "ping": {"type", "t"}}
    if not isinstance(kind, str) or kind not in fields:
        raise ProtocolError(f"unknown message type {_show(kind)}; expected one of {', '.join(fields)}")
    extra = set(data) - fields[kind]
    if extra:
        raise ProtocolError(f"unexpected field(s) in {kind!r}: {', '.join(sorted(map(_show, extra)))}")
    missing = fields[kind] - set(data) - ({"seed"} if kind == "target" else set())
    if missing:
        raise ProtocolError(f"{kind!r} needs field(s): {', '.join(sorted(missing))}")
    if kind == "set":
        name = data["name"]
        if not isinstance(name, str) or name not in OPTIONS:
            raise ProtocolError(f"unknown option {_show(name)}; expected one of {', '.join(OPTIONS)}")
        return Control("set", name=name, value=_value(name, OPTIONS[name], data["value"]))
    if kind == "target":
        if data["kind"] != "random":
            raise ProtocolError("only {\"kind\": \"random\"} targets go over the data channel; "
                                "upload portraits and latents with POST /target")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ProtocolError(f"seed must be a whole number from 0 to {MAX_SEED}")
        return Control("target", seed=seed)
    if kind == "ping":
        t = data["t"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ProtocolError("ping's t must be a finite number")
        return Control("ping", t=float(t))
    return Control("neutral")


def _value(name: str, option: Option, value: Any) -> Any:
    if option.kind == "bool":
        if not isinstance(value, bool):
            raise ProtocolError(f"{name} takes true or false, not {_show(value)}")
        return value
    if option.kind == "choice":
        if value not in option.choices:
            raise ProtocolError(f"{name} takes one of {', '.join(option.choices)}, not {_show(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError(f"{name} takes a number from {option.low:g} to {option.high:g}, not {_show(value)}")
    if not option.low <= value <= option.high:
        raise ProtocolError(f"{name} must be from {option.low:g} to {option.high:g} (got {value:g})")
    return float(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def reply(type_: str, **fields: Any) -> str:
    return json.dumps({"type": type_, **fields}, separators=(",", ":"))


def error(message: str) -> str:
    return reply("error", message=" ".join(str(message).split())[:300])
