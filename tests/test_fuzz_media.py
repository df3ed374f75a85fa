"""Seeded fuzzing of the media readers through `render`: mutations (bits flipped, byte runs, truncations, MP4 boxes /
RIFF and PNG chunks removed or duplicated, tracks dropped) of small valid MP4, WebM, AVI, GIF, PNG and JPEG files made
here, as the driver and as the target, each in a forked `python -m app` under RLIMIT_AS = 2 GiB and a 10 s limit.

Each case ends as a rendered file that plays to its end (exit 0; or exit 2 with one `error:` line when the driver's
picture broke part-way and the frames before it were kept), or as exit 2 with one `error:` line — never a traceback,
a hang, a leftover `.partial.mp4` or an unplayable file under the final name.

MIMIC_FUZZ_MEDIA=N runs N cases (default 30: 20 s on 2 quiet cores, about 2 minutes on busy ones);
MIMIC_FUZZ_MEDIA_SEED picks the mutations.
"""
from __future__ import annotations

import os
import random
import struct
from collections import Counter
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests import hostile_corpus as hc
from tests.media_files import write_video

CASES = int(os.environ.get("MIMIC_FUZZ_MEDIA", "30"))
SEED = int(os.environ.get("MIMIC_FUZZ_MEDIA_SEED", "27"))
DRIVERS = ("mp4", "webm", "avi", "gif", "png", "jpg")
TARGETS = ("png", "jpg", "gif")


# ------------------------------------------------------------------------------------------ seed files


def write_seed_files(d: Path, fixtures: Path) -> dict[str, Path]:
    """A talking head of 8 frames in each container, and a portrait in each image format (small: fast renders)."""
    with av.open(str(fixtures / "video" / "carphone_pristine.mp4")) as clip:
        frames = [f.to_ndarray(format="rgb24")[:, 8:168] for _, f in zip(range(8), clip.decode(video=0))]
    portrait = cv2.resize(cv2.imread(str(fixtures / "portraits" / "astronaut.png")), (160, 160))
    files = {
        "mp4": write_video(d / "seed.mp4", frames, sound="tone"),
        "webm": write_video(d / "seed.webm", frames, codec="libvpx", sound="tone"),
        "avi": write_video(d / "seed.avi", frames, codec="mjpeg", sound="tone"),
        "gif": write_video(d / "seed.gif", frames, codec="gif"),
    }
    face = cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR)
    for kind in ("png", "jpg"):
        cv2.imwrite(str(d / f"seed.{kind}"), face)
        files[kind] = d / f"seed.{kind}"
        cv2.imwrite(str(d / f"portrait.{kind}"), portrait)
        files[f"portrait.{kind}"] = d / f"portrait.{kind}"
    write_video(d / "portrait.gif", [cv2.cvtColor(portrait, cv2.COLOR_BGR2RGB)], codec="gif")
    files["portrait.gif"] = d / "portrait.gif"
    return files


# ------------------------------------------------------------------------------------------ mutations


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def byte_run(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    run = bytes([rng.choice([0x00, 0xFF, rng.randrange(256)])]) * rng.randint(4, 256)
    return data[:i] + run + data[i + len(run):]


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def _boxes(data: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of the ISO-BMFF boxes in data[start:end] (a malformed size stops the walk)."""
    out, pos = [], start
    while pos + 8 <= end:
        size = struct.unpack(">I", data[pos:pos + 4])[0]
        if size < 8 or pos + size > end:
            break
        out.append((pos, pos + size))
        pos += size
    return out


def _chunks(data: bytes, kind: str) -> list[tuple[int, int]]:
    """The units a container is made of: MP4 boxes (top level and inside moov/trak/mdia), RIFF chunks of an AVI,
    PNG chunks, JPEG segments, GIF blocks (approximated by its frames' separators), WebM's top-level elements."""
    if kind == "mp4":
        top = _boxes(data, 0, len(data))
        inner = [b for s, e in top if data[s + 4:s + 8] == b"moov" for b in _boxes(data, s + 8, e)]
        deeper = [b for s, e in inner if data[s + 4:s + 8] == b"trak" for b in _boxes(data, s + 8, e)]
        return top + inner + deeper
    if kind == "avi":
        out, pos = [], 12
        while pos + 8 <= len(data):
            size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
            end = min(len(data), pos + 8 + size + (size & 1))
            out.append((pos, end))
            if data[pos:pos + 4] == b"LIST":  # descend: hdrl, movi
                pos += 12
            else:
                pos = end
        return out
    if kind == "png":
        out, pos = [], 8
        while pos + 12 <= len(data):
            size = struct.unpack(">I", data[pos:pos + 4])[0]
            out.append((pos, min(len(data), pos + 12 + size)))
            pos += 12 + size
        return out
    markers = {"jpg": b"\xff", "gif": b"\x2c", "webm": b"\x1f\x43\xb6\x75"}[kind]  # segments, images, clusters
    starts = [i for i in range(2, len(data)) if data.startswith(markers, i)][:200]
    return [(s, e) for s, e in zip(starts, starts[1:] + [len(data)])]


def drop_chunk(data: bytes, kind: str, rng: random.Random) -> bytes:
    chunks = _chunks(data, kind)
    if not chunks:
        return truncate(data, rng)
    s, e = rng.choice(chunks)
    return data[:s] + data[e:]


def duplicate_chunk(data: bytes, kind: str, rng: random.Random) -> bytes:
    chunks = _chunks(data, kind)
    if not chunks:
        return byte_run(data, rng)
    s, e = rng.choice(chunks)
    return data[:e] + data[s:e] + data[e:]


def drop_track(path: Path, out: Path, rng: random.Random) -> bytes:
    """The file remuxed without one of its tracks (the picture or the sound)."""
    with av.open(str(path)) as src, av.open(str(out), "w", format=src.format.name.split(",")[0]) as dst:
        keep = [s for s in src.streams if s.type in ("video", "audio")]
        if len(keep) > 1:
            keep.remove(rng.choice(keep))
        mapping = {s.index: dst.add_stream_from_template(s) for s in keep}
        for packet in src.demux(*keep):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            dst.mux(packet)
    return out.read_bytes()


MUTATIONS = ("flip_bits", "byte_run", "truncate", "drop_chunk", "duplicate_chunk", "drop_track")


def make_cases(files: dict[str, Path], d: Path, count: int, seed: int) -> list[dict]:
    """`count` cases: (role, seed kind, mutation) taken in turn, the bytes chosen by a seeded random."""
    rng = random.Random(seed)
    plan = [("driver", kind) for kind in DRIVERS] + [("target", kind) for kind in TARGETS]
    cases = []
    for i in range(count):
        role, kind = plan[i % len(plan)]
        mutation = MUTATIONS[(i // len(plan) + i) % len(MUTATIONS)]
        source = files[kind] if role == "driver" else files[f"portrait.{kind}"]
        if mutation == "drop_track" and kind not in ("mp4", "webm", "avi"):
            mutation = "drop_chunk"
        data = source.read_bytes()
        mutant = d / f"case{i:03d}_{mutation}.{kind}"
        if mutation == "drop_track":
            drop_track(source, mutant, rng)
        elif mutation in ("drop_chunk", "duplicate_chunk"):
            mutant.write_bytes(globals()[mutation](data, kind, rng))
        else:
            mutant.write_bytes(globals()[mutation](data, rng))
        cases.append({"role": role, "kind": kind, "mutation": mutation, "path": mutant})
    return cases


# ------------------------------------------------------------------------------------------ judging


def render_argv(case: dict, files: dict[str, Path], out: Path) -> list[str]:
    if case["role"] == "driver":
        return ["render", "--driving", str(case["path"]), "--target", str(files["portrait.png"]), "-o", str(out)]
    return ["render", "--driving", str(files["png"]), "--target", str(case["path"]), "-o", str(out)]


def playable_frames(path: Path) -> int | None:
    """Frames of a rendered file when it decodes to its end (an image: 1), else None."""
    if path.suffix == ".png":
        return 1 if cv2.imread(str(path)) is not None else None
    try:
        with av.open(str(path)) as video:
            return sum(1 for _ in video.decode(video=0))
    except av.error.FFmpegError:
        return None


def judge(case: dict, outcome: hc.Outcome, out: Path) -> tuple[str, str | None]:
    """(class of the ending, a problem or None)."""
    errors = outcome.error_lines()
    if outcome.returncode is None:
        return "hang", f"killed after {hc.WALL_LIMIT_S:g} s"
    if "Traceback" in outcome.stderr or "Traceback" in outcome.stdout:
        return "traceback", outcome.stderr[-800:]
    if outcome.peak_rss_bytes > hc.MEMORY_LIMIT:
        return "memory", f"peak {outcome.peak_rss_bytes / 2**30:.1f} GiB"
    if list(out.parent.glob("*.partial.mp4")):
        return "partial left", "a .partial.mp4 was left behind"
    frames = playable_frames(out) if out.exists() else None
    if out.exists() and frames is None:
        return "unplayable output", f"{out.name} does not decode to its end"
    if outcome.returncode == 0:
        return ("rendered" if frames else "no output"), None if frames else "exit 0 without an output"
    if outcome.returncode != 2 or len(errors) != 1:
        return f"exit {outcome.returncode}", f"{len(errors)} error lines: {outcome.stderr[-800:]}"
    if out.exists():  # the driver's picture broke part-way: the frames before it were kept
        return "error, frames kept", None if "frame(s) before it were written" in errors[0] else errors[0]
    return "error: " + _error_class(errors[0]), None


def _error_class(line: str) -> str:
    for needle, name in (("cannot decode", "cannot decode"), ("not a video file", "not a video file"),
                         ("no video stream", "no video stream"), ("not an image file", "not an image file"),
                         ("too small for a face", "too small for a face"), ("no face found", "no face"),
                         ("has no frames", "no frames"), ("no frames", "no frames")):
        if needle in line:
            return name
    return line.split(":", 2)[-1].strip()[:60]


# ------------------------------------------------------------------------------------------ the test


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> tuple[Path, dict[str, Path]]:
    d = tmp_path_factory.mktemp("fuzz_media")
    return d, write_seed_files(d, fixtures_dir)


def test_the_seed_files_render(fuzz_dir: tuple[Path, dict[str, Path]]) -> None:
    """Unmutated, every seed renders (so a mutant's failure is the mutation's)."""
    d, files = fuzz_dir
    with hc.AppForkServer(preload=("engine.warp", "engine.face.landmarks")) as server:
        for kind in DRIVERS:
            out = d / f"seed_{kind}.{'png' if kind in ('png', 'jpg') else 'mp4'}"
            case = {"role": "driver", "kind": kind, "path": files[kind]}
            outcome = server.run(render_argv(case, files, out), cwd=d, timeout_s=30)
            assert outcome.returncode == 0 and playable_frames(out), outcome.stderr[-800:]


def test_mutated_media_render_or_fail_in_one_line(fuzz_dir: tuple[Path, dict[str, Path]], capsys) -> None:
    d, files = fuzz_dir
    cases = make_cases(files, d, CASES, SEED)
    classes: Counter[str] = Counter()
    problems = []
    with hc.AppForkServer(preload=("engine.warp", "engine.face.landmarks")) as server:
        for i, case in enumerate(cases):
            work = d / f"run{i:03d}"
            work.mkdir()
            out = work / ("out.png" if case["role"] == "target" or case["kind"] in ("png", "jpg") else "out.mp4")
            outcome = server.run(render_argv(case, files, out), cwd=work)
            ending, problem = judge(case, outcome, out)
            classes[f"{case['role']} {case['kind']}: {ending}"] += 1
            if problem:
                problems.append(f"{case['path'].name} ({case['role']}): {ending}: {problem}")
    with capsys.disabled():
        print(f"\nmedia fuzzer, {CASES} cases (seed {SEED}):")
        for name, n in sorted(classes.items()):
            print(f"  {n:3d}  {name}")
    assert not problems, "\n".join(problems)
