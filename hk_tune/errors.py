"""The error types users see: bad input, a checkpoint that cannot be resumed, a run that diverged
or failed.

Each message is one line that names the file or section, the key and what to do.
"""


class ConfigError(ValueError):
    """A configuration value, file or dataset that hk_tune refuses before spending any compute."""


class CheckpointError(ConfigError):
    """A checkpoint folder that cannot be resumed from: a file is missing, truncated or not what
    hk_tune wrote. The message names the folder and the file.

    A `ConfigError`, since like bad input it is refused before any training, and the user must
    act on a file (delete the run's folder, or set name=... to start a new run). Resuming never
    falls back to training from scratch under the same name.
    """


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step and the setting to
    change. Training stops there: every later step and evaluation would be NaN too."""


class TrainingFailedError(RuntimeError):
    """A run that did not finish: its loss diverged, or its workers failed more often than
    `max_failures` allows. The message is the cause in one line; the executor's own error (Ray
    Train's, with the workers' tracebacks) is its `__cause__`."""
