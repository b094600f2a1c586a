"""One error hierarchy. Anything a user can cause raises a subclass of EdgetlError; the CLI prints its
message (what was received, what was expected, how to fix it) and exits with its `exit_code`, no traceback:
2 for bad input, 3 for a stage that failed on valid input (StageError). README.md lists the exit codes."""

from __future__ import annotations

import reprlib

MAX_PROBLEMS = 50  # listed per error; the rest are counted ("... and N more")
MAX_LINE = 1000  # characters per rendered line: a fallback for messages that quote user text in full

_short = reprlib.Repr()  # (keyword arguments need Python 3.12)
_short.maxstring = _short.maxother = _short.maxlong = 80
_short.maxlist = _short.maxdict = 6


def shown(value: object) -> str:
    """A user-given value for a message: its repr (control characters escaped), cut to about 80 characters."""
    try:
        text = _short.repr(value)
    except Exception:  # a repr that fails (an int past Python's 4,300-digit str limit) must not hide the error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def clip(text: str, limit: int = MAX_LINE) -> str:
    """`text` cut to `limit` characters, with control characters escaped so a message cannot drive the terminal."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return "".join(c if c.isprintable() or c in "\n" else repr(c)[1:-1] for c in text)


class EdgetlError(Exception):
    """Base class of every error edgetl raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None):
        self.problems = list(problems or [])
        self.hint = hint
        super().__init__(message)

    def render(self) -> str:
        lines = [clip(str(self), 4 * MAX_LINE)]
        lines += [f"  - {clip(p)}" for p in self.problems[:MAX_PROBLEMS]]
        if len(self.problems) > MAX_PROBLEMS:
            lines.append(f"  ... and {len(self.problems) - MAX_PROBLEMS} more")
        if self.hint:
            lines.append(f"hint: {clip(self.hint)}")
        return "\n".join(lines)


class RecipeError(EdgetlError):
    """The recipe file or an override is wrong (schema, stage order, paths)."""


class DataError(EdgetlError):
    """A dataset is missing, malformed, or does not match the model."""


class ModelError(EdgetlError):
    """A model cannot be found, loaded or adapted."""


class BundleError(ModelError):
    """A deployment bundle is malformed, misses files, or was changed after it was written or signed."""


class StageError(EdgetlError):
    """A stage failed on valid input (a budget that cannot be met, a failed check, diverged training)."""

    exit_code = 3
    stage: str | None = None  # set by the runner ("1 (finetune)") so the message names the stage that failed

    def __str__(self) -> str:
        text = super().__str__()
        return f"stage {self.stage}: {text}" if self.stage else text


class NonFiniteError(StageError):
    """A loss or the logits became NaN or infinite (diverged training): the weights are no longer usable."""


class ExportError(StageError):
    """ONNX export failed or the exported model disagrees with the source model."""


class BackendUnavailableError(EdgetlError):
    """A runtime or library the recipe needs is not installed on this machine."""


class BenchmarkError(StageError):
    """A benchmark could not run or produced unusable numbers."""

    exit_code = 2  # `edgetl bench` raises it for its own bad options (--batch, --backend, a missing file)


class RunFolderBusyError(EdgetlError):
    """Another edgetl process is writing into the same run folder."""
