"""The errors rpsloc raises for bad input: each message says what was expected, what was found
and where (file, line, key or image id)."""


class RpslocError(Exception):
    """Base class: a problem with the user's data, configuration or files, not a bug."""


class InputError(RpslocError, ValueError):
    """A dataset, metadata file, image or score map that does not meet the specification."""


class CheckpointError(RpslocError):
    """A checkpoint that is missing, unsafe to unpickle, or does not fit the architecture."""


class IncompleteFileError(RpslocError):
    """A stage output without its completeness mark: written by a run that did not finish."""
