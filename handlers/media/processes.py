"""Reading videos in child processes, so a ``serve`` process reads media on more than one core.

Reading a video (its facts, the decode that proves it plays, the poster and last frame as JPEG) is
CPU work that holds Python's GIL for much of its time. In one ``serve`` process the ingest workers,
the API and the in-process sandbox share one GIL, so the media step caps the whole relay at about
one core. :class:`MediaProcesses` runs that step in child processes instead: each child is
``python -m handlers.media.processes``, reads ``(path, size)`` requests on its stdin and answers
each with the facts and pictures :func:`describe_file` finds, on its stdout.

- A worker thread takes a free child for one video and gives it back; at most ``count`` videos are
  read at once, and a thread waits for a free child otherwise.
- Children start on first use. One that dies (killed, out of memory) is replaced by the next call;
  the call it was serving raises :class:`MediaReaderFailed`, which retries the job's message as any
  other transient failure does.
- A child reads until its stdin ends, so it exits with the relay, even one killed with SIGKILL.
- Only files on this machine are read this way (the folder blob store). Objects in S3 are read in
  the calling thread through :class:`~handlers.media.ranged.RangedFile`, as a Lambda function does.

Requests and answers are pickled: both ends are this package, and nothing from outside goes through
the pipe but the file's bytes, which only the child parses.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from handlers.base.errors import RelayError
from handlers.media.facts import MediaFacts, UnplayableOutput
from handlers.media.frames import describe_file

__all__ = ["MediaProcesses", "MediaReaderFailed"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
"""The folder ``handlers`` is in: children import the same code as their parent."""


class MediaReaderFailed(RelayError):
    """A media reader process died or answered nothing; the message is retried."""

    code = "media_reader_failed"


class _Child:
    """One reader process and its two pipes."""

    def __init__(self) -> None:
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, (_PACKAGE_ROOT, os.environ.get("PYTHONPATH"))))}
        self.process = subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "handlers.media.processes"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=environment, close_fds=True)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._requests: IO[bytes] = self.process.stdin
        self._answers: IO[bytes] = self.process.stdout

    def describe(self, path: Path, size: int) -> tuple[MediaFacts, dict[str, bytes]]:
        try:
            pickle.dump((str(path), size), self._requests, protocol=pickle.HIGHEST_PROTOCOL)
            self._requests.flush()
            kind, value = pickle.load(self._answers)  # noqa: S301  # our own child's answer
        except (OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:  # ValueError: closed meanwhile
            raise MediaReaderFailed(f"the media reader process (pid {self.process.pid}) stopped while reading "
                                    f"{path.name}: {type(exc).__name__}") from exc
        if kind == "ok":
            facts, pictures = value
            return MediaFacts.from_dict(facts), pictures
        if kind == "unplayable":
            raise UnplayableOutput(value)
        raise MediaReaderFailed(f"the media reader process failed on {path.name}: {value}")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            self._requests.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._answers.close()


class MediaProcesses:
    """Up to ``count`` reader processes, each reading one video at a time (see the module)."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self.count = count
        self._free: queue.SimpleQueue[_Child | None] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(None)  # a slot whose child starts when first used
        self._lock = threading.Lock()
        self._children: set[_Child] = set()
        self._closed = False

    def describe(self, path: Path, size: int) -> tuple[MediaFacts, dict[str, bytes]]:
        """Read the file at ``path`` in a free child; raises what :func:`~handlers.media.frames.describe_file`
        raises, or :class:`MediaReaderFailed` if the child stopped."""
        child = self._free.get()
        try:
            if child is None or not child.alive:
                child = self._replace(child)
            return child.describe(path, size)
        except MediaReaderFailed:
            if child is not None:
                self._discard(child)
                child = None
            raise
        finally:
            self._free.put(child)

    @property
    def pids(self) -> list[int]:
        """The running children's process ids."""
        with self._lock:
            return [child.process.pid for child in self._children if child.alive]

    def close(self) -> None:
        """Stop every child (each ends when its stdin does)."""
        with self._lock:
            self._closed, children = True, list(self._children)
            self._children.clear()
        for child in children:
            child.close()

    def _replace(self, old: _Child | None) -> _Child:
        if old is not None:
            self._discard(old)
        with self._lock:
            if self._closed:
                raise MediaReaderFailed("the media reader processes are closed")
            try:
                child = _Child()
            except OSError as exc:
                raise MediaReaderFailed(f"a media reader process did not start: {exc}") from exc
            self._children.add(child)
            return child

    def _discard(self, child: _Child) -> None:
        with self._lock:
            self._children.discard(child)
        child.close(timeout=1.0)


# --- the child -----------------------------------------------------------------------------------

def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answer each ``(path, size)`` until the parent closes the pipe (or dies)."""
    while True:
        try:
            path, size = pickle.load(requests)  # noqa: S301  # our own parent's request
        except EOFError:
            return
        answer: tuple[str, Any]
        try:
            facts, pictures = describe_file(Path(path), size)
            answer = ("ok", (facts.as_dict(), pictures))
        except UnplayableOutput as exc:
            answer = ("unplayable", exc.message)
        except Exception as exc:  # noqa: BLE001  # reported to the parent, which retries the job
            answer = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


def _main() -> None:
    """The child: answers go to the stdout it was started with; anything else printed goes to stderr. Ctrl-C
    in a terminal reaches the whole process group: the child leaves it to the parent and ends with its stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    _main()
