"""Media read as tracks: a video's display rotation and mirror are applied where it is read (render, the live
source and so the recorder's driver side); a sound track that does not decode is left out with one warning;
a picture track that breaks part-way keeps the frames before it; images and videos too small for a face are one
`error:` line wherever they are read."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.cli import main
from engine.errors import MediaError
from engine.media.audio import AudioError, FileAudio
from engine.media.camera import VideoFileSource
from engine.media.video_io import DecodeError, VideoReader, sound_track_problem
from tests.media_files import decoded_frames, has_sound, marked_frame, write_broken_mjpeg, write_video


@pytest.mark.parametrize("rotation,hflip", [(0, False), (90, False), (-90, False), (180, False), (0, True),
                                            (90, True), (270, True)])
def test_display_rotation_and_mirror_are_applied_when_read(rotation, hflip, tmp_path) -> None:
    frames = [marked_frame(i) for i in range(4)]
    path = write_video(tmp_path / "phone.mp4", frames, rotation=rotation, hflip=hflip)
    expected = np.rot90(frames[0], (rotation // 90) % 4)  # PyAV: counter-clockwise degrees, then the mirror
    expected = expected[:, ::-1] if hflip else expected
    with VideoReader(path) as video:
        got = list(video)
        assert video.size == (expected.shape[1], expected.shape[0])
    assert len(got) == 4 and got[0].shape == expected.shape
    assert np.abs(got[0].astype(int) - expected.astype(int)).mean() < 4  # H.264's own loss only


def test_the_live_source_shows_a_phone_video_upright(tmp_path) -> None:
    path = write_video(tmp_path / "phone.mp4", [marked_frame(i) for i in range(4)], rotation=90)
    source = VideoFileSource(path, loop=False)
    try:
        frame, _ = source.read()
    finally:
        source.close()
    assert frame.shape == (64, 48, 3) and source.size == (48, 64)
    assert frame[-4:, 8:40].min() > 200  # the stored left-edge bar is along the bottom once turned upright


def test_a_sideways_phone_clip_is_reenacted_upright(clip, portrait, tmp_path) -> None:
    """The real talking head stored sideways with a 90° display rotation: every frame's face is found, as in
    the upright clip (read sideways, MediaPipe finds no face in most of them)."""
    upright = decoded_frames(clip)[:16]
    sideways = [np.ascontiguousarray(np.rot90(f, -1)) for f in upright]  # how the phone's sensor stored it
    phone = write_video(tmp_path / "phone.mp4", sideways, rotation=90, fps=25)
    seen = decoded_frames(phone)
    assert seen[0].shape == upright[0].shape
    assert np.abs(seen[5].astype(int) - upright[5].astype(int)).mean() < 6
    out = tmp_path / "out.mp4"
    assert main(["render", "--driving", str(phone), "--target", str(portrait), "-o", str(out)]) == 0
    assert len(decoded_frames(out)) == 16


def test_an_undecodable_sound_track_is_left_out_with_one_warning(portrait, tmp_path, caplog) -> None:
    driver = write_video(tmp_path / "bogus.mp4", [marked_frame(i) for i in range(8)], sound="bogus")
    assert sound_track_problem(driver) is not None
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING):
        assert main(["render", "--driving", str(driver), "--target", str(portrait), "-o", str(out)]) == 0
    warnings = [r.getMessage() for r in caplog.records if "sound track" in r.getMessage()]
    assert len(warnings) == 1 and f"the sound track of {driver} cannot be decoded" in warnings[0]
    assert len(decoded_frames(out)) == 8 and not has_sound(out)


def test_a_sound_track_that_decodes_is_kept(portrait, tmp_path) -> None:
    driver = write_video(tmp_path / "tone.mp4", [marked_frame(i) for i in range(8)], sound="tone")
    assert sound_track_problem(driver) is None
    out = tmp_path / "out.mp4"
    assert main(["render", "--driving", str(driver), "--target", str(portrait), "-o", str(out)]) == 0
    assert has_sound(out)


def test_the_live_source_own_sound_refuses_an_undecodable_track(tmp_path) -> None:
    driver = write_video(tmp_path / "bogus.mp4", [marked_frame(i) for i in range(8)], sound="bogus")
    source = VideoFileSource(driver)
    try:
        with pytest.raises(AudioError, match="the sound track of bogus.mp4 cannot be decoded"):
            FileAudio(source)
    finally:
        source.close()


def test_a_broken_picture_track_keeps_the_frames_before_it(portrait, tmp_path, capsys) -> None:
    driver = write_broken_mjpeg(tmp_path / "broken.avi", [marked_frame(i) for i in range(12)], broken_from=5)
    with pytest.raises(DecodeError) as info:
        decoded_frames(driver)
    assert info.value.frame == 5
    out = tmp_path / "out.mp4"
    assert main(["render", "--driving", str(driver), "--target", str(portrait), "-o", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and f"cannot decode {driver} at frame 6" in err[0] and "5 frame(s) before it" in err[0]
    assert len(decoded_frames(out)) == 5 and not list(tmp_path.glob("*.partial.mp4"))


def test_a_picture_track_broken_from_its_first_frame_is_one_error(tmp_path) -> None:
    driver = write_broken_mjpeg(tmp_path / "broken.avi", [marked_frame(i) for i in range(4)], broken_from=0)
    with pytest.raises(MediaError, match="broken.avi"):
        VideoReader(driver)


@pytest.mark.parametrize("size", [(1, 1), (15, 200), (200, 3)])
def test_images_too_small_for_a_face_are_one_error_line(size, clip, portrait, tmp_path, capsys) -> None:
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((size[1], size[0], 3), np.uint8))
    runs = [
        ["render", "--driving", str(clip), "--target", str(tiny), "-o", str(tmp_path / "o.mp4")],
        ["render", "--driving", str(tiny), "--target", str(portrait), "-o", str(tmp_path / "o.png")],
        ["align", str(tiny), "-o", str(tmp_path / "a.png")],
    ]
    for argv in runs:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == f"error: cannot use image {tiny}: it is {size[0]}x{size[1]} pixels, too small for a face " \
            "(at least 16x16)", err
        assert [line for line in err if line.startswith("error:")] == [err[-1]]
    assert not list(tmp_path.glob("o.*")) and not (tmp_path / "a.png").exists()


def test_a_video_too_small_for_a_face_is_one_error(tmp_path) -> None:
    tiny = write_video(tmp_path / "tiny.mp4", [np.zeros((8, 8, 3), np.uint8)] * 3)
    with pytest.raises(MediaError, match="cannot use video .*tiny.mp4: it is 8x8 pixels, too small for a face"):
        VideoReader(tiny)



def test_the_window_shows_a_phone_video_upright_and_refuses_a_tiny_portrait(qtbot, settings, tmp_path) -> None:
    """The GUI reads through the same readers: the driver view gets upright frames (and so does a side-by-side
    recording's driver half), and a 1x1 portrait is one error notice while the app keeps running."""
    from engine.session import Notice
    from tests.support import LONG, open_window

    phone = write_video(tmp_path / "phone.mp4", [marked_frame(i) for i in range(30)], rotation=90)
    window = open_window(qtbot, settings, phone)
    assert window.session.latest_frame.shape == (64, 48, 3)
    notices: list[str] = []
    window.session.subscribe(lambda e: notices.append(e.text) if isinstance(e, Notice) and e.kind == "error" else None)
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    window.session.choose_target_file(tiny)
    qtbot.waitUntil(lambda: bool(notices), timeout=LONG)
    assert notices == [f"cannot use image {tiny}: it is 1x1 pixels, too small for a face (at least 16x16)"]
    shown = window.view_panel.driver_view.frames_shown
    qtbot.waitUntil(lambda: window.view_panel.driver_view.frames_shown > shown + 2, timeout=LONG)  # still running
