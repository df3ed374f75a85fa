"""The main window's panels. Each renders one part of `engine.session.SessionState` and sends intents.

    source.SourcePanel   camera / video file, resolution          → Session.use_source
    target.TargetPanel   gallery, Open…, Random identity          → Session.choose_target / random_identity
    model.ModelPanel     running model, Load pack…, Import…       → Session.load_model
    paper.PaperPanel     paste-back, motion, smoothing, expression → Session.set_option (paper model)
    retarget.RetargetPanel expression, head, eyes, mouth, eye contact → Session.set_option (landmark warp)
    record.RecordPanel   Record, Snapshot, output folder, v. cam  → Session.start/stop_recording, snapshot, …
    view.ViewPanel       driver + output views, toolbar, banner   → Session.set_mirror, retake_neutral

A new control that changes how frames are made is a named option: see `base.option_slider`,
`option_checkbox`, `option_combo` (persisted in the settings, sent with `Session.set_option`).
Options only one reenactor reads go in a `base.ReenactorOptionsPanel`: shown while it runs, else one line why not.
"""
