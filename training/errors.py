"""Training failures the user can fix (missing weights, unusable data, mismatched resume)."""
from engine.errors import MimicError


class TrainingError(MimicError):
    """One line naming the file or setting and what was expected."""
