"""A tiny headless Chromium driver: the DevTools protocol over ``--remote-debugging-pipe``.

No extra package and no debugging port: Chromium reads NUL-terminated JSON commands on fd 3
and writes replies and events on fd 4 (the transport Playwright and Puppeteer use too).
Only what the dashboard tests need: open a page, evaluate, wait, type, click, screenshot (all
of the viewport or one element), read and set the page's cookies, override its locale, and
collect the console errors, failed loads and CSP violations the page produced.

    with Chromium(profile_dir) as browser:
        page = browser.new_page(1280, 900)
        page.goto("http://127.0.0.1:8000/")
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = ("headless Chromium is needed at /usr/bin/chromium for the browser tests; install it with "
                "`apt-get update && apt-get install -y --no-install-recommends chromium fonts-liberation "
                "fonts-dejavu-core`")
STARTUP_TIMEOUT = 90.0
"""Seconds Chromium may take to answer its first command."""
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps", "--disable-breakpad",
         "--no-default-browser-check", "--password-store=basic", "--use-mock-keychain", "--mute-audio",
         "--hide-scrollbars", "--force-color-profile=srgb", "--autoplay-policy=no-user-gesture-required",
         "--lang=en-US", "--remote-debugging-pipe")
# The fields of a cookie that Storage.setCookies takes back from what Storage.getCookies gave.
COOKIE_FIELDS = ("name", "value", "domain", "path", "secure", "httpOnly", "sameSite", "expires")


class BrowserError(RuntimeError):
    """Chromium failed, answered a command with an error, or a wait ran out."""


class Chromium:
    """One headless Chromium process with a fresh profile in ``profile_dir``."""

    def __init__(self, profile_dir: Path, *, executable: str = CHROMIUM, timeout: float = 15.0) -> None:
        self.profile_dir = profile_dir
        self.executable = executable
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._pid = 0
        self._buffer = b""
        self._next_id = 0
        self._commands = self._replies = -1

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        if not os.access(self.executable, os.X_OK):
            raise BrowserError(INSTALL_HINT)
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        to_browser, from_browser = _high_pipe(), _high_pipe()
        log = os.open(self.profile_dir / "chromium.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        actions = [(os.POSIX_SPAWN_DUP2, to_browser[0], 3), (os.POSIX_SPAWN_DUP2, from_browser[1], 4),
                   (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)]
        argv = [self.executable, *FLAGS, f"--user-data-dir={self.profile_dir / 'profile'}", "about:blank"]
        try:
            self._pid = os.posix_spawn(self.executable, argv, dict(os.environ), file_actions=actions)
        finally:
            for fd in (to_browser[0], from_browser[1], log):
                os.close(fd)
        self._commands, self._replies = to_browser[1], from_browser[0]
        try:  # a first start on a busy machine (fonts, profile, GPU probing) can take far longer than a command
            self.send("Browser.getVersion", timeout=max(STARTUP_TIMEOUT, self.timeout))
        except BrowserError as exc:
            self.close()
            raise BrowserError(f"{exc}; its log ends:\n{self.log_tail()}") from exc

    def send(self, method: str, session: str | None = None, timeout: float | None = None,
             **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply; events met on the way go to ``events``."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read(deadline, method)
            if reply.get("id") != self._next_id:
                self.events.append(reply)
            elif "error" in reply:
                raise BrowserError(f"{method}: {reply['error'].get('message')}")
            else:
                result: dict[str, Any] = reply.get("result", {})
                return result

    def new_page(self, width: int, height: int) -> Page:
        """A tab in its own browser context (its own cookies), ``width`` by ``height`` CSS pixels at 1x."""
        context = self.send("Target.createBrowserContext")["browserContextId"]
        target = self.send("Target.createTarget", url="about:blank", browserContextId=context)["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session, context)
        page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        for domain in ("Page", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        return page

    def close(self) -> None:
        """Ask Chromium to quit, wait for it (killing it after a few seconds), release the pipes."""
        if self._pid:
            with contextlib.suppress(OSError):  # it may be gone already
                os.write(self._commands, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            if not _reaped(self._pid, 5.0):
                os.kill(self._pid, signal.SIGKILL)
                _reaped(self._pid, 5.0)
            self._pid = 0
        for fd in (self._commands, self._replies):
            if fd >= 0:
                os.close(fd)
        self._commands = self._replies = -1

    def log_tail(self, lines: int = 20) -> str:
        path = self.profile_dir / "chromium.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _read(self, deadline: float, method: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{method}: no answer from Chromium in time")
            ready, _, _ = select.select([self._replies], [], [], remaining)
            chunk = os.read(self._replies, 1 << 16) if ready else b""
            if ready and not chunk:
                raise BrowserError(f"Chromium exited during {method}:\n{self.log_tail()}")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message


class Page:
    """One tab, attached in flat mode (commands carry its ``sessionId``)."""

    def __init__(self, browser: Chromium, session: str, context: str) -> None:
        self.browser = browser
        self.session = session
        self.context = context

    def close(self) -> None:
        self.browser.send("Target.disposeBrowserContext", browserContextId=self.context)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.send(method, self.session, **params)

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", what=url)

    def evaluate(self, expression: str, *, user_gesture: bool = False) -> Any:
        """The value of ``expression`` (promises awaited); ``BrowserError`` if it throws."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True,
                           userGesture=user_gesture)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise BrowserError(f"{expression!r} threw: {details.get('exception', {}).get('description', details)}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 10.0, what: str = "") -> Any:
        """Poll ``expression`` until truthy (navigations in between are tolerated)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except BrowserError as exc:  # the context is replaced while a page loads
                value, last = None, exc
            if value:
                return value
            time.sleep(0.05)
        raise BrowserError(f"timed out after {timeout}s waiting for {what or expression} (last error: {last})")

    def type(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (scrolled into view first)."""
        box = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: "center"}}); const r = e.getBoundingClientRect();
            return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    def screenshot(self, path: Path, *, selector: str | None = None) -> bytes:
        """A PNG of the viewport, or of the element ``selector`` picks (scrolled into view), saved to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            params["clip"] = {**self.box(selector), "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])
        path.write_bytes(data)
        return data

    def box(self, selector: str) -> dict[str, float]:
        """The element's box in page CSS pixels (``x``, ``y``, ``width``, ``height``), after scrolling it into view."""
        box: dict[str, float] = self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: "nearest"}}); const r = e.getBoundingClientRect();
            return {{x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}}; }})()""")
        return box

    def cookies(self) -> list[dict[str, Any]]:
        """Every cookie of this page's browser context, ``HttpOnly`` ones included."""
        answer = self.browser.send("Storage.getCookies", browserContextId=self.context)
        cookies: list[dict[str, Any]] = answer["cookies"]
        return cookies

    def set_cookies(self, cookies: Iterable[Mapping[str, Any]]) -> None:
        """Put cookies (as :meth:`cookies` read them) back into this page's browser context."""
        params = [{name: cookie[name] for name in COOKIE_FIELDS if name in cookie} for cookie in cookies]
        self.browser.send("Storage.setCookies", cookies=params, browserContextId=self.context)

    def set_locale(self, locale: str) -> None:
        """What ``Intl`` and ``toLocaleString`` take as the viewer's locale from now on (e.g. ``de-DE``)."""
        self.send("Emulation.setLocaleOverride", locale=locale)

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP violations, failed loads)."""
        found = []
        for event in self.browser.events:
            params = event.get("params", {})
            if event.get("sessionId") != self.session:
                continue
            if event.get("method") == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"].get("text")))
            elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif event.get("method") == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}".strip())
        return found


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends sit above fd 9, so duplicating them onto 3 and 4 cannot clobber either."""
    ends = os.pipe()
    moved = (fcntl.fcntl(ends[0], fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(ends[1], fcntl.F_DUPFD_CLOEXEC, 10))
    for fd in ends:
        os.close(fd)
    return moved


def _reaped(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
        time.sleep(0.05)
    return False
