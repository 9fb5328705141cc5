"""A headless Chromium (Debian's) driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4), so the UI
tests need no websocket library and no npm driver.  One page per Browser."""
import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class CDPError(Exception):
    pass


class Browser:
    def __init__(self, tmp, width=1280, height=900):
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        # the child's fd 3 reads commands, fd 4 writes answers
        # (copies above 9 first, so putting one at 3 never overwrites the other)
        keep = {3: fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10), 4: fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)}

        def fds():
            for k, v in keep.items():
                os.dup2(v, k)
                os.set_inheritable(k, True)
        args = [CHROMIUM, "--headless=new", "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
                "--disable-gpu", "--disable-extensions", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
                f"--user-data-dir={os.path.join(tmp, 'chromium-profile')}", f"--window-size={width},{height}",
                "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root
        self.log_path = os.path.join(tmp, "chromium.log")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=open(self.log_path, "w"),
                                     stderr=subprocess.STDOUT, preexec_fn=fds, pass_fds=(3, 4), close_fds=True)
        for fd in (to_chrome_r, from_chrome_w, *keep.values()):
            os.close(fd)
        self._id = 0
        self._lock = threading.Lock()
        self._answers = {}
        self._cv = threading.Condition()
        self.events = queue.Queue()
        self.console = []
        threading.Thread(target=self._reader, daemon=True).start()
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.page("Page.enable")
        self.page("Runtime.enable")

    def _reader(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cv:
                    self._answers[None] = "closed"
                    self._cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                m = json.loads(msg)
                if "id" in m:
                    with self._cv:
                        self._answers[m["id"]] = m
                        self._cv.notify_all()
                else:
                    if m.get("method") == "Runtime.consoleAPICalled":
                        self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                                     for a in m["params"]["args"]))
                    if m.get("method") == "Runtime.exceptionThrown":
                        self.console.append("exception: " + json.dumps(m["params"]["exceptionDetails"])[:500])
                    self.events.put(m)

    def call(self, method, session=None, timeout=30, **params):
        with self._lock:
            self._id += 1
            i = self._id
            msg = {"id": i, "method": method, "params": params}
            if session:
                msg["sessionId"] = session
            os.write(self._w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        with self._cv:
            while i not in self._answers:
                if None in self._answers:
                    raise CDPError(f"{method}: chromium went away (log {self.log_path})")
                left = end - time.monotonic()
                if left <= 0:
                    raise CDPError(f"{method}: no answer in {timeout} s")
                self._cv.wait(left)
            m = self._answers.pop(i)
        if "error" in m:
            raise CDPError(f"{method}: {m['error']}")
        return m.get("result", {})

    def page(self, method, **params):
        return self.call(method, session=self.session, **params)

    def goto(self, url):
        self.page("Page.navigate", url=url)
        self.wait_js("document.readyState === 'complete'", 20, f"{url} loaded")

    def js(self, expr):
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        r = self.page("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise CDPError(f"{expr[:80]}: {r['exceptionDetails'].get('text')} "
                           f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r["result"].get("value")

    def wait_js(self, expr, timeout, what):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                last = self.js(expr)
            except CDPError as e:
                last = str(e)
            if last and not isinstance(last, str) or last is True:
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {expr} -> {last!r}; console: {self.console[-10:]}")

    def click(self, x, y):
        for t in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=t, x=x, y=y, button="left", clickCount=1)

    def drag(self, x0, x1, y):
        self.page("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y, button="left", clickCount=1)
        self.page("Input.dispatchMouseEvent", type="mouseMoved", x=(x0 + x1) / 2, y=y, button="left")
        self.page("Input.dispatchMouseEvent", type="mouseMoved", x=x1, y=y, button="left")
        self.page("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y, button="left", clickCount=1)

    def screenshot(self, path):
        data = base64.b64decode(self.page("Page.captureScreenshot", format="png")["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except CDPError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
