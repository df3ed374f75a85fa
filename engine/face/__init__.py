"""Faces in images: landmarks, FFHQ alignment, temporal smoothing, framing and paste-back.

Nothing here knows about media or runtimes (an import contract, `.importlinter`).
"""
