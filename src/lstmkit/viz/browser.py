"""Load an HTML file in headless Chromium; collect console errors, requests and a screenshot.

Used by the report tests, and by hand: ``python -m lstmkit.viz.browser report.html``.
Chromium runs isolated (no sandbox for containers, no GPU, no background networking, a
fresh profile in a temporary directory, every host name resolving to nothing) and is
driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages
separated by NUL bytes on file descriptors 3 and 4), which reports each console message
with its level, every uncaught exception, every log entry (failed loads included) and
every request the page makes. No extra Python packages are needed.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = "install Chromium (Debian/Ubuntu: apt-get install chromium)"


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    screenshot: Path
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, log errors
    requests: list[str] = field(default_factory=list)  # every URL the page requested
    loaded: bool = False  # the load event fired
    font_faces: list[tuple[str, str]] = field(default_factory=list)  # (family, status) loaded
    # per probed CSS selector: (font family, custom i.e. web font?, glyphs drawn) that Chromium
    # used for the text directly inside the first matching element
    fonts_used: dict[str, list[tuple[str, bool, int]]] = field(default_factory=dict)

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file:", "data:", "about:"))]


class _Pipe:
    """The DevTools protocol over Chromium's remote-debugging pipe."""

    def __init__(self, proc: subprocess.Popen, to_fd: int, from_fd: int):
        self.proc, self.to_fd, self.from_fd = proc, to_fd, from_fd
        self.next_id, self.buf, self.events = 0, b"", []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_fd], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.from_fd, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:  # fmt: skip
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_fd, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return True
        while time.monotonic() < deadline:
            try:
                msg = self._read_message(deadline)
            except TimeoutError:
                return False
            self.events.append(msg)
            if msg.get("method") == method:
                return True
        return False


def _collect(check: PageCheck, events: list[dict]) -> None:
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(
                str(a.get("value", a.get("description", ""))) for a in p.get("args", [])
            )
            check.console.append((p.get("type", ""), text))
            if p.get("type") in ("error", "assert"):
                check.errors.append(f"console.{p.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            desc = d.get("exception", {}).get("description") or d.get("text", "")
            check.errors.append(f"uncaught exception: {desc}")
        elif method == "Log.entryAdded":
            entry = p.get("entry", {})
            if entry.get("level") == "error":
                check.errors.append(
                    f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"
                )
        elif method == "Network.requestWillBeSent":
            check.requests.append(p.get("request", {}).get("url", ""))


def check_page(
    html_path: str | Path,
    screenshot: str | Path,
    width: int = 1280,
    height: int = 1600,
    timeout: float = 90.0,
    settle: float = 1.0,
    chromium: str | None = None,
    font_probes: tuple[str, ...] = (),
) -> PageCheck:
    """Open ``html_path`` headless; save a full-page PNG screenshot; report what happened.

    ``font_probes`` are CSS selectors whose rendered fonts are reported in ``fonts_used``
    (which font really drew the text: a missing glyph shows up as a system fallback)."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError(f"no Chromium found ({INSTALL_HINT})")
    url = Path(html_path).resolve().as_uri()
    shot = Path(screenshot).resolve()
    shot.parent.mkdir(parents=True, exist_ok=True)
    check = PageCheck(shot)
    to_r, to_w = os.pipe()  # we write commands -> Chromium reads fd 3
    from_r, from_w = os.pipe()  # Chromium writes fd 4 -> we read
    with tempfile.TemporaryDirectory(prefix="lstmkit-chromium-") as profile:
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
                "--remote-debugging-pipe", f"--window-size={width},{height}", "about:blank"]  # fmt: skip

        def child_fds() -> None:  # the pipe ends Chromium expects at fds 3 and 4
            # copies first, in case to_r or from_w is 3 or 4 already; the copies may land on
            # 3 or 4 themselves, and dup2 onto the same fd keeps close-on-exec, hence the
            # explicit set_inheritable
            r, w = os.dup(to_r), os.dup(from_w)
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        # close_fds=False rather than pass_fds=(3, 4): pass_fds fails (EBADF) when this
        # process has nothing open at 3 or 4, and close_fds=True would close what child_fds
        # made; Python's own descriptors are non-inheritable (PEP 446), so apart from 3 and 4
        # Chromium only gets what this process was itself given to pass on
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, close_fds=False,
                                preexec_fn=child_fds)  # fmt: skip
        os.close(to_r)
        os.close(from_w)
        pipe = _Pipe(proc, to_w, from_r)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
            sid = pipe.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                pipe.call(f"{domain}.enable", session=sid)
            pipe.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                      session=sid)  # fmt: skip
            pipe.events.clear()
            pipe.call("Page.navigate", {"url": url}, session=sid)
            check.loaded = pipe.wait_for("Page.loadEventFired", timeout)
            pipe.wait_for("never.arrives", settle)  # let late scripts and loads report
            _fonts(pipe, sid, check, font_probes)
            shot_data = pipe.call("Page.captureScreenshot",
                                  {"format": "png", "captureBeyondViewport": True}, session=sid)  # fmt: skip
            shot.write_bytes(base64.b64decode(shot_data["data"]))
            _collect(check, pipe.events)
            try:
                pipe.call("Browser.close", timeout=5)
            except (RuntimeError, TimeoutError):
                pass
        finally:
            os.close(to_w)
            os.close(from_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return check


_FACES_JS = (
    "document.fonts.ready.then(() => JSON.stringify([...document.fonts]"
    ".map(f => [f.family.replace(/^\"|\"$/g, ''), f.status])))"
)


def _fonts(pipe: _Pipe, sid: str, check: PageCheck, probes: tuple[str, ...]) -> None:
    res = pipe.call("Runtime.evaluate", {"expression": _FACES_JS, "awaitPromise": True,
                                         "returnByValue": True}, session=sid)  # fmt: skip
    check.font_faces = [tuple(x) for x in json.loads(res.get("result", {}).get("value", "[]"))]
    if not probes:
        return
    pipe.call("DOM.enable", session=sid)
    pipe.call("CSS.enable", session=sid)
    root = pipe.call("DOM.getDocument", session=sid)["root"]["nodeId"]
    for sel in probes:
        node = pipe.call("DOM.querySelector", {"nodeId": root, "selector": sel}, session=sid)
        if not node.get("nodeId"):
            check.fonts_used[sel] = []
            continue
        used = pipe.call("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]}, session=sid)
        check.fonts_used[sel] = [(f["familyName"], bool(f["isCustomFont"]), int(f["glyphCount"]))
                                 for f in used.get("fonts", [])]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m lstmkit.viz.browser PAGE.html [SCREENSHOT.png]")
        return 2
    shot = args[1] if len(args) > 1 else str(Path(args[0]).with_suffix(".png"))
    res = check_page(args[0], shot)
    for level, text in res.console:
        print(f"console.{level}: {text}")
    for err in res.errors:
        print(f"ERROR {err}")
    print(f"loaded={res.loaded} requests={len(res.requests)} external={res.external_requests}")
    print(f"screenshot: {res.screenshot}")
    return 1 if res.errors or res.external_requests or not res.loaded else 0


if __name__ == "__main__":
    sys.exit(main())
