"""handlers.media.processes: videos read in child processes answer what reading them in the thread answers;
a child that dies is replaced, and a child whose parent dies ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.app.settings import Settings
from handlers.base.errors import ConfigurationError
from handlers.media.facts import UnplayableOutput
from handlers.media.frames import FRAME_ROLES, describe_file
from handlers.media.processes import MediaProcesses, MediaReaderFailed
from handlers.sandbox.media import render_video
from tests.support.clips import HTML_PAGE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    path.write_bytes(render_video(seconds=2, width=320, height=240, audio=True))
    return path


@pytest.fixture
def processes() -> Iterator[MediaProcesses]:
    pool = MediaProcesses(2)
    yield pool
    pool.close()


def _gone(pid: int, within: float) -> bool:
    """Whether process ``pid`` ended (a zombie not yet reaped has ended) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_a_child_answers_what_the_thread_answers(video: Path, processes: MediaProcesses) -> None:
    facts, pictures = processes.describe(video, video.stat().st_size)
    assert (facts, pictures) == describe_file(video, video.stat().st_size)
    assert tuple(pictures) == FRAME_ROLES
    assert facts.width == 320 and facts.has_audio
    assert len(processes.pids) == 1 and processes.pids[0] != os.getpid()


def test_a_file_that_is_not_a_video_is_unplayable_as_in_the_thread(tmp_path: Path, processes: MediaProcesses) -> None:
    page = tmp_path / "output-0.mp4"
    page.write_bytes(HTML_PAGE)
    with pytest.raises(UnplayableOutput) as in_thread:
        describe_file(page, len(HTML_PAGE))
    with pytest.raises(UnplayableOutput) as in_child:
        processes.describe(page, len(HTML_PAGE))
    assert in_child.value.message == in_thread.value.message
    assert not in_child.value.permanent


def test_videos_are_read_at_once_up_to_the_count(video: Path, processes: MediaProcesses) -> None:
    size = video.stat().st_size
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(processes.describe(video, size)[0].frames))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [48] * 6
    assert len(processes.pids) == 2


def test_a_child_killed_between_videos_is_replaced(video: Path, processes: MediaProcesses) -> None:
    size = video.stat().st_size
    processes.describe(video, size)
    [first] = processes.pids
    os.kill(first, signal.SIGKILL)
    assert _gone(first, 10)
    assert processes.describe(video, size)[0].frames == 48
    assert processes.pids and first not in processes.pids


def test_a_child_killed_while_reading_fails_that_call_only(tmp_path: Path, video: Path,
                                                            processes: MediaProcesses) -> None:
    """A named pipe nobody writes to keeps the child reading until it is killed: the call fails as a
    transient error (the job's message is retried), and the next call gets a new child."""
    stuck = tmp_path / "stuck.mp4"
    os.mkfifo(stuck)
    failure: list[BaseException] = []

    def read() -> None:
        try:
            processes.describe(stuck, 1000)
        except BaseException as exc:  # noqa: BLE001  # checked below
            failure.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 30
    while not processes.pids and time.monotonic() < deadline:
        time.sleep(0.05)
    [child] = processes.pids
    time.sleep(0.3)  # the child is inside the read
    os.kill(child, signal.SIGKILL)
    reader.join(30)
    [error] = failure
    assert isinstance(error, MediaReaderFailed)
    assert error.code == "media_reader_failed" and "stuck.mp4" in error.message
    assert processes.describe(video, video.stat().st_size)[0].frames == 48
    assert child not in processes.pids


def test_close_stops_every_child(video: Path) -> None:
    pool = MediaProcesses(1)
    pool.describe(video, video.stat().st_size)
    [child] = pool.pids
    pool.close()
    assert _gone(child, 10)
    with pytest.raises(MediaReaderFailed, match="closed"):
        pool.describe(video, video.stat().st_size)


def test_children_end_when_their_parent_is_killed(video: Path) -> None:
    """A relay killed with SIGKILL leaves no reader behind: each child reads until its stdin ends."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from handlers.media.processes import MediaProcesses
        pool = MediaProcesses(1)
        pool.describe(Path({str(video)!r}), {video.stat().st_size})
        print(pool.pids[0], flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not _gone(child, 0.2)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    parent.stdout.close()
    assert _gone(child, 10)


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("0", 0), ("3", 3)])
def test_the_setting(value: str | None, expected: int | None) -> None:
    env = {} if value is None else {"RELAY_MEDIA_PROCESSES": value}
    assert Settings.from_env(env).media_processes == expected


@pytest.mark.parametrize("value", ["-1", "65", "two"])
def test_a_bad_setting_names_the_variable_and_the_limit(value: str) -> None:
    with pytest.raises(ConfigurationError, match="RELAY_MEDIA_PROCESSES") as error:
        Settings.from_env({"RELAY_MEDIA_PROCESSES": value})
    if value != "two":
        assert "0 to 64" in error.value.message
