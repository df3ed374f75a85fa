"""The Mimic server: the reenactor on one machine, clients (browser or app) anywhere, over WebRTC.

    client camera ──WebRTC video──▶ drain (newest frame only) ──▶ ClientSession slot (one, latest wins)
                                                                        │
                                         Scheduler thread: the newest frame of every session that has one
                                         (batched for the paper model) ──▶ reenactor ──▶ OutputTrack
    client <video> ◀──WebRTC video── OutputTrack (newest output only) ◀─┘
    client ◀──data channel──▶ control messages (protocol.py) and per-frame stats

Signalling is one HTTPS POST of the SDP offer (aiohttp, http.py); every request carries the token in a
header (security.py). Media is DTLS-SRTP encrypted by WebRTC itself.
"""
