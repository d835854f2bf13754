"""The one exception type for user mistakes (bad model, bad option, bad input file)."""


class RtlgenError(Exception):
    """A problem with the user's input. The CLI prints it as one line and exits with code 2.

    Messages name the layer or option, what was found, and what is supported.
    """


class UnsupportedError(RtlgenError):
    """The model uses a layer, option or quantizer rtlgen does not implement."""


class ModelFileError(RtlgenError):
    """A model or weights file that cannot be read (missing, truncated, malformed)."""


class RtlgenWarning(UserWarning):
    """Something the user should know about a model that still converts (a layer whose
    weights quantize to mostly zeros, a decision that depends on the float model's CPU).
    The CLI prints each as one ``warning:`` line on stderr."""
