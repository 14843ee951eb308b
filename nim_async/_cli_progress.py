"""What ``nim-async batch`` shows while it runs: the estimate line and the progress bar."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from ._results import BatchEstimate, Progress

if TYPE_CHECKING:
    import rich.progress

__all__ = ["ProgressBar", "duration", "estimate_line"]


def duration(seconds: float) -> str:
    """``3 min 0 s``, ``42 s``, ``0.4 s``, ``2 h 5 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, whole = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {whole} s" if minutes else f"{whole} s"


def estimate_line(estimate: BatchEstimate | None, progress: Progress, count: int | None) -> str:
    """The line printed before the first call: calls and time for what is left to send."""
    resumed = ""
    if progress.resumed:
        resumed = f"resuming: the journal records {progress.resumed:,} recipients as done; "
    if estimate is None or count is None:
        return resumed + (
            "the number of recipients is unknown (stdin or a pipe), so there is no estimate"
        )
    left = max(count - progress.done, 0)
    if not left:
        return resumed + "nothing is left to send"
    return resumed + (
        f"{estimate.calls:,} calls for {'the remaining ' if progress.resumed else ''}"
        f"{left:,} recipients, at least {duration(estimate.seconds)} at the current budget"
    )


class ProgressBar:
    """A rich progress bar (count, bar, rate, ETA) fed by ``on_progress``.

    It draws only when its stream (stderr) is a terminal: piped or redirected,
    the command prints nothing but its summary and its errors. Use it in a
    ``with`` block, so that the bar stops before any error line is printed.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._bar: rich.progress.Progress | None = None
        self._task: rich.progress.TaskID | None = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, progress: Progress) -> None:
        if not self._stream.isatty():
            return
        done = f"{progress.done:,}"
        failed = progress.failed_chunks
        fields: dict[str, Any] = {
            "count": f"{done}/{progress.total:,}" if progress.total else f"{done} recipients",
            "rate": "" if progress.rate is None else f"{progress.rate:,.0f}/s",
            "eta": "" if progress.eta is None else f"eta {duration(progress.eta)}",
            "failed": f"{failed} failed chunks" if failed else "",
        }
        if self._bar is None or self._task is None:
            self._bar = self._start()
            self._task = self._bar.add_task(
                "", total=progress.total, completed=progress.done, **fields
            )
            self._bar.start()
        else:
            self._bar.update(self._task, completed=progress.done, total=progress.total, **fields)

    def _start(self) -> rich.progress.Progress:
        from rich.console import Console
        from rich.progress import BarColumn, TaskProgressColumn, TextColumn
        from rich.progress import Progress as RichProgress

        return RichProgress(
            TextColumn("{task.fields[count]}"),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[failed]}"),
            console=Console(file=self._stream),
            # stdout is the summary's: never mix the bar into it.
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def close(self) -> None:
        """Draw the last state and leave the bar on its line, if one was drawn."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
