"""Media in and out: cameras and video files, sound, MP4 writing, recording, the virtual camera.

Nothing here knows about faces or networks (an import contract, `.importlinter`).
"""
