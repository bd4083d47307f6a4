"""Helpers of the Jupyter tests: a real JupyterLab / Notebook 7 server in a process group of
its own, and :class:`LabNotebook`, one notebook opened in a Chromium page and driven through
``window.jupyterapp`` (the servers run with ``expose_app_in_browser``).

Nothing here knows about cellucid: the widget tests build on it.

How a notebook page is driven, and why:

* cells run through ``jupyterapp.commands.execute('notebook:run-cell')`` after the cell is
  made the active (and only selected) one; the command's promise resolves once the kernel
  answered *and* went idle for that request, so all of the cell's outputs are in its model by
  then. Key presses (Shift+Enter) depend on focus and are not used;
* results are read from the cell *models* (``cell.model.outputs``), not scraped from the DOM;
  the DOM is for what a person sees (:meth:`LabNotebook.cell_output_locator`);
* :meth:`LabNotebook.kernel_eval` sends its own ``execute_request`` on the page's kernel
  connection (``store_history=False``) instead of adding a cell: the notebook, its cell
  indices and execution counts stay as the test made them, and the request is still ordered
  after every comm message the page sent before it (same connection, same shell channel).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from _browser import CHROMIUM_ARGS, require_chromium, wait_until

VENV_BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 60.0
OPEN_TIMEOUT = 60.0
RUN_TIMEOUT = 60.0
VIEWPORT = {"width": 1280, "height": 900}

# Front-end plugins switched off in every test server (page_config.json of its config dir).
DISABLED_PLUGINS = {
    # the "get notified about Jupyter news?" toast, which covers the page and fetches the web
    "@jupyterlab/apputils-extension:announcements": True,
}

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium (``CHROMIUM_ARGS``) through the session's Playwright."""
    return playwright.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)


# ---- servers ---------------------------------------------------------------------------------


class JupyterServer:
    """A ``jupyter lab`` or ``jupyter notebook`` server started by :func:`start_server`.

    ``base_url`` (``http://127.0.0.1:<port>``, no trailing slash), ``token``, ``root_dir``
    (where notebooks go), ``home`` (the isolated config/runtime/settings dirs), ``log_path``.
    """

    def __init__(
        self,
        app: str,
        process: subprocess.Popen,
        port: int,
        token: str,
        home: Path,
        prefix: str = "/",
    ):
        self.app = app
        self.process = process
        self.port = port
        self.token = token
        self.home = home
        self.root_dir = home / "root"
        self.runtime_dir = home / "runtime"
        self.log_path = home / "server.log"
        self.prefix = prefix  # the server's base_url path, as JupyterHub gives "/user/<name>/"
        self.base_url = f"http://127.0.0.1:{port}{prefix.rstrip('/')}"
        self._stopped = False

    def url(self, path: str, **query: str) -> str:
        """``base_url/path?token=…`` (path relative to the server root, already quoted)."""
        query = {"token": self.token, **query}
        return f"{self.base_url}/{path.lstrip('/')}?{urllib.parse.urlencode(query)}"

    def notebook_url(self, name: str) -> str:
        """Where the server's own UI opens notebook ``name`` (relative to ``root_dir``);
        in JupyterLab inside a fresh workspace, so no state of other pages is restored."""
        quoted = urllib.parse.quote(name)
        if self.app == "lab":
            return self.url(f"lab/workspaces/t-{secrets.token_hex(4)}/tree/{quoted}")
        return self.url(f"notebooks/{quoted}")

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """A REST call (``/api/...``) with the token; the decoded JSON answer, or None."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kernel_processes(self) -> list[Any]:
        """Live processes of this server: its process group, and kernels (whose connection
        files are in this server's private runtime dir; they run in sessions of their own)."""
        import psutil

        marker = str(self.runtime_dir)
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                in_group = os.getpgid(proc.pid) == self.process.pid
                ours = in_group or any(marker in arg for arg in proc.info["cmdline"] or ())
                if ours and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        return found

    def stop(self, timeout: float = 20.0) -> None:
        """Shut the server down (``POST /api/shutdown``, which stops its kernels too), kill
        its process group if it lingers, and check that none of its processes remain: any
        left is killed and reported with an AssertionError."""
        if self._stopped:
            return
        self._stopped = True
        if self.alive():
            with contextlib.suppress(Exception):
                self.api("POST", "api/shutdown", timeout=5.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5.0)
        # kernels poll their parent (JPY_PARENT_PID) and exit soon after it is gone
        deadline = time.monotonic() + 10.0
        while (left := self.kernel_processes()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for proc in left:
            with contextlib.suppress(Exception):
                proc.kill()
        assert not left, f"processes of the {self.app} server outlived it: " + ", ".join(
            f"{p.pid} {' '.join(p.info['cmdline'] or ())}" for p in left
        )


def isolated_env(home: Path) -> dict[str, str]:
    """The environment of a test server: user config, data, runtime, IPython, settings and
    workspaces dirs inside ``home``. The venv's ``share/jupyter`` and ``etc/jupyter`` (lab
    extensions such as jupyterlab_widgets and anywidget, server extensions, the python3
    kernel) stay visible: they are system paths, not user ones."""
    dirs = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "IPYTHONDIR": "ipython",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    for var, sub in dirs.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_server(
    app: str, home: Path, timeout: float = STARTUP_TIMEOUT, prefix: str = "/"
) -> JupyterServer:
    """Start ``jupyter lab`` (``app="lab"``) or ``jupyter notebook`` (``app="notebook"``) in
    ``home`` and return once ``GET /api/status`` answers (AssertionError with the server's
    log after ``timeout`` s). The server runs in a new session (process group). ``prefix``
    is its base URL path: ``"/user/alice/"`` serves it as JupyterHub serves a user's server."""
    assert app in ("lab", "notebook"), app
    env = isolated_env(home)
    labconfig = home / "config" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": DISABLED_PLUGINS}), encoding="utf-8"
    )
    (home / "root").mkdir(exist_ok=True)
    token = secrets.token_hex(16)
    port = free_port()
    app_class = "LabApp" if app == "lab" else "JupyterNotebookApp"
    command = [
        str(VENV_BIN / "jupyter"),
        app,
        "--allow-root",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--{app_class}.expose_app_in_browser=True",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={home / 'root'}",
        f"--ServerApp.base_url={prefix}",
    ]
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = JupyterServer(app, process, port, token, home, prefix)

    def answers() -> bool:
        if not server.alive():
            raise AssertionError(f"jupyter {app} exited at startup:\n{server.log_tail()}")
        with contextlib.suppress(OSError):
            return server.api("GET", "api/status", timeout=2.0) is not None
        return False

    try:
        wait_until(answers, timeout, f"jupyter {app} to answer /api/status", interval=0.25)
    except AssertionError as error:
        server.stop()
        raise AssertionError(f"{error}\n--- server log ---\n{server.log_tail()}") from None
    return server


def write_notebook(path: Path, cells: Iterable[str], kernel: str = "python3") -> Path:
    """An .ipynb at ``path`` with one code cell per source string, for kernel ``kernel``."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    notebook = new_notebook(
        cells=[new_code_cell(source) for source in cells],
        metadata={
            "kernelspec": {"name": kernel, "display_name": kernel, "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(notebook, str(path))
    return path


# ---- notebook pages --------------------------------------------------------------------------

# Installed in every page before its scripts run; looks window.jupyterapp up at each call.
# Works the same in JupyterLab and Notebook 7 (both shells have widgets('main')).
HARNESS_JS = r"""
(() => {
  const H = window.__labHarness = { runs: {}, next: 0 };
  const app = () => window.jupyterapp;
  H.panel = (path) => {
    if (!app() || !app().shell) return null;
    for (const w of app().shell.widgets('main')) {
      if (w.context && w.context.path === path && w.content && w.sessionContext) return w;
    }
    return null;
  };
  H.mustPanel = (path) => {
    const panel = H.panel(path);
    if (!panel) throw new Error('no notebook panel for ' + path);
    return panel;
  };
  H.kernel = (path) => {
    const s = H.mustPanel(path).sessionContext.session;
    if (!s || !s.kernel) throw new Error('no kernel for ' + path);
    return s.kernel;
  };
  H.status = (path) => {
    const panel = H.panel(path);
    if (!panel) return { app: !!app(), panel: false };
    const sc = panel.sessionContext, k = sc.session && sc.session.kernel;
    return {
      app: true, panel: true, contextReady: panel.context.isReady, sessionReady: sc.isReady,
      session: sc.session ? sc.session.id : null, kernel: k ? k.name : null,
      status: k ? k.status : null, connection: k ? k.connectionStatus : null,
      cells: panel.content.widgets.length, pending: H.pending(),
    };
  };
  H.idle = (path) => {
    const s = H.status(path);
    return !!(s.panel && s.contextReady && s.sessionReady && s.status === 'idle'
              && s.connection === 'connected');
  };
  H.pending = () => Object.values(H.runs).filter((r) => !r.done).length;
  H.start = (path, command, index) => {
    const panel = H.mustPanel(path);
    app().shell.activateById(panel.id);
    const nb = panel.content;
    if (index !== null) {
      if (index < 0 || index >= nb.widgets.length) throw new Error('no cell ' + index);
      nb.activeCellIndex = index;
      nb.deselectAll();
    }
    const id = H.next++;
    const run = H.runs[id] = { done: false, ok: null, error: null };
    Promise.resolve(app().commands.execute(command)).then(
      (ok) => { run.ok = ok; run.done = true; },
      (err) => { run.error = String(err); run.done = true; });
    return id;
  };
  H.cell = (path, index) => {
    const cells = H.mustPanel(path).content.widgets;
    if (index < 0 || index >= cells.length) throw new Error('no cell ' + index);
    return cells[index];
  };
  H.cellInfo = (path, index) => {
    const cell = H.cell(path, index);
    cell.node.dataset.labHarnessCell = cell.model.id;
    return {
      id: cell.model.id, type: cell.model.type,
      executionCount: cell.model.type === 'code' ? cell.model.executionCount : null,
      outputs: cell.model.type === 'code' ? cell.model.outputs.toJSON() : [],
    };
  };
  H.cellCount = (path) => H.mustPanel(path).content.widgets.length;
  H.execute = (path, code, timeoutMs) => new Promise((resolve, reject) => {
    const out = { stdout: '', stderr: '', error: null, status: null };
    const future = H.kernel(path).requestExecute(
      { code, silent: false, store_history: false, allow_stdin: false, stop_on_error: false });
    future.onIOPub = (msg) => {
      const t = msg.header.msg_type, c = msg.content;
      if (t === 'stream') out[c.name] += c.text;
      else if (t === 'error') out.error = { ename: c.ename, evalue: c.evalue, traceback: c.traceback };
    };
    const timer = setTimeout(() => reject(new Error('no reply after ' + timeoutMs + ' ms')), timeoutMs);
    future.done.then(
      (reply) => { clearTimeout(timer); out.status = reply.content.status; resolve(out); },
      (err) => { clearTimeout(timer); reject(err); });
  });
  H.restart = async (path) => { await H.kernel(path).restart(); };
})();
"""

EVAL_START, EVAL_END = "\x02lab-eval:", "\x03"


class CellError(AssertionError):
    """A cell (or :meth:`LabNotebook.kernel_eval`) raised: ``ename``, ``evalue`` and the
    ``traceback`` text (ANSI colours removed) are in the message and attributes."""

    def __init__(self, where: str, error: dict[str, Any]):
        self.ename = error.get("ename", "")
        self.evalue = error.get("evalue", "")
        self.traceback = strip_ansi("\n".join(error.get("traceback") or ()))
        super().__init__(f"{where} raised {self.ename}: {self.evalue}\n{self.traceback}")


def _error_of(outputs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((o for o in outputs if o.get("output_type") == "error"), None)


def _not_run(info: dict[str, Any]) -> bool:
    return info["type"] == "code" and info["executionCount"] is None


def outputs_text(outputs: list[dict[str, Any]]) -> str:
    """Stream text and ``text/plain`` data of cell outputs (nbformat JSON), concatenated."""
    parts = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            text = output.get("text", "")
        elif kind in ("execute_result", "display_data"):
            text = output.get("data", {}).get("text/plain", "")
        else:
            continue
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


class CellRun:
    """A cell (or run-all) started by :meth:`LabNotebook.run_cell` / :meth:`run_all`."""

    def __init__(self, notebook: LabNotebook, run_id: int, cells: list[int], what: str):
        self.notebook = notebook
        self.run_id = run_id
        self.cells = cells
        self.what = what

    def done(self) -> bool:
        return bool(self.notebook._js("id => window.__labHarness.runs[id].done", self.run_id))

    def wait(self, timeout: float = RUN_TIMEOUT) -> None:
        """Wait until the front end's run command finished (the kernel replied and went idle
        for every cell it ran); raise :class:`CellError` for the first cell that raised."""
        nb = self.notebook
        nb._wait("id => window.__labHarness.runs[id].done", self.run_id, timeout, self.what)
        run = nb._js("id => window.__labHarness.runs[id]", self.run_id)
        if run["error"]:
            raise AssertionError(f"{self.what} failed in the front end: {run['error']}")
        infos = [nb.cell_info(index) for index in self.cells]
        for index, info in zip(self.cells, infos, strict=True):
            error = _error_of(info["outputs"])
            if error is not None:
                raise CellError(f"cell {index}", error)
        not_run = [i for i, info in zip(self.cells, infos, strict=True) if _not_run(info)]
        if not run["ok"] or not_run:
            raise AssertionError(f"{self.what}: not executed (cells {not_run}; aborted?)")


class LabNotebook:
    """One notebook of a test server, open in its own browser context (JupyterLab or
    Notebook 7 alike); made by :meth:`open`."""

    def __init__(self, server: JupyterServer, page: Any, name: str):
        self.server = server
        self.page = page
        self.name = name  # path relative to server.root_dir
        self.path = server.root_dir / name
        self.console: list[str] = []
        self.session_id: str | None = None
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))

    @classmethod
    def open(
        cls,
        server: JupyterServer,
        browser: Any,
        cells: Iterable[str],
        name: str,
        kernel: str = "python3",
        timeout: float = OPEN_TIMEOUT,
    ) -> LabNotebook:
        """Write ``cells`` (code) to ``server.root_dir/name``, open it in a new browser
        context and return once its kernel is connected and idle."""
        write_notebook(server.root_dir / name, cells, kernel)
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.add_init_script(HARNESS_JS)
        notebook = cls(server, context.new_page(), name)
        try:
            notebook.page.goto(server.notebook_url(name), timeout=timeout * 1000)
            notebook.wait_kernel_idle(timeout)
            notebook.session_id = notebook.status()["session"]
        except BaseException:
            notebook.close()
            raise
        return notebook

    # ---- plumbing

    def _js(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def _wait(self, predicate: str, arg: Any, timeout: float, what: str) -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000, polling=100)
        except PlaywrightTimeout:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what} in {self.name}; "
                f"front end: {self.status()}"
            ) from None

    def status(self) -> dict[str, Any]:
        """What the front end knows: panel/context/session readiness, kernel status and
        connection, number of cells, runs still pending."""
        return self._js("p => window.__labHarness.status(p)", self.name)

    # ---- kernel

    def wait_kernel_idle(self, timeout: float = RUN_TIMEOUT) -> None:
        """Wait until the notebook is loaded and its kernel connected and ``idle``. (Right
        after a run was *started* the kernel may not be busy yet: wait on the run instead.)"""
        self._wait("p => window.__labHarness.idle(p)", self.name, timeout, "an idle kernel")

    def restart_kernel(self, timeout: float = RUN_TIMEOUT) -> None:
        """Restart the kernel (no dialog) and wait until it is idle again."""
        self.page.evaluate("p => window.__labHarness.restart(p)", self.name)
        self.wait_kernel_idle(timeout)

    def execute(self, code: str, timeout: float = RUN_TIMEOUT) -> str:
        """Run ``code`` in the kernel without a cell (``store_history=False``); its stdout.
        Queued behind a running cell like any request. CellError if it raised."""
        result = self._js(
            "([p, code, ms]) => window.__labHarness.execute(p, code, ms)",
            [self.name, code, int(timeout * 1000)],
        )
        if result["error"] is not None:
            raise CellError("kernel code", result["error"])
        return result["stdout"]

    def kernel_eval(self, expr: str, timeout: float = RUN_TIMEOUT) -> Any:
        """The value of Python expression ``expr`` in the kernel, through JSON (non-JSON
        values come back as their ``repr``). See :meth:`execute`."""
        code = (
            f"print({EVAL_START!r} + __import__('json').dumps(({expr}), default=repr)"
            f" + {EVAL_END!r})"
        )
        stdout = self.execute(code, timeout)
        start = stdout.rfind(EVAL_START)
        assert start >= 0, f"no value in the kernel's output: {stdout!r}"
        return json.loads(stdout[start + len(EVAL_START) : stdout.index(EVAL_END, start)])

    # ---- cells

    def cell_count(self) -> int:
        return int(self._js("p => window.__labHarness.cellCount(p)", self.name))

    def cell_info(self, index: int) -> dict[str, Any]:
        """``id``, ``type``, ``executionCount`` and ``outputs`` (nbformat JSON) of a cell."""
        return self._js("([p, i]) => window.__labHarness.cellInfo(p, i)", [self.name, index])

    def _start(self, command: str, index: int | None, cells: list[int], what: str) -> CellRun:
        run_id = self._js(
            "([p, c, i]) => window.__labHarness.start(p, c, i)", [self.name, command, index]
        )
        return CellRun(self, run_id, cells, what)

    def run_cell(self, index: int, timeout: float = RUN_TIMEOUT, wait: bool = True) -> CellRun:
        """Select cell ``index`` (alone) and run it with ``notebook:run-cell``.

        With ``wait`` (default) return once it finished, raising :class:`CellError` with the
        traceback if it raised; with ``wait=False`` return at once (call ``.wait()`` on the
        returned :class:`CellRun` later) so the test can use the page meanwhile.
        """
        run = self._start("notebook:run-cell", index, [index], f"cell {index} to finish")
        if wait:
            run.wait(timeout)
        return run

    def run_all(self, timeout: float = RUN_TIMEOUT, wait: bool = True) -> CellRun:
        """Run every cell (``notebook:run-all-cells``); as :meth:`run_cell`."""
        cells = list(range(self.cell_count()))
        run = self._start("notebook:run-all-cells", None, cells, "all cells to finish")
        if wait:
            run.wait(timeout)
        return run

    def outputs(self, index: int) -> list[dict[str, Any]]:
        return self.cell_info(index)["outputs"]

    def output_text(self, index: int) -> str:
        """Stream text and ``text/plain`` results of cell ``index``, from its model."""
        return outputs_text(self.outputs(index))

    def cell_locator(self, index: int) -> Any:
        """A Playwright locator for cell ``index``'s node (it stays valid if cells move)."""
        cell_id = self.cell_info(index)["id"]
        return self.page.locator(f'[data-lab-harness-cell="{cell_id}"]')

    def cell_output_locator(self, index: int) -> Any:
        """A Playwright locator for the output area of cell ``index`` (widget views,
        iframes… are inside it)."""
        return self.cell_locator(index).locator(".jp-Cell-outputArea")

    def output_frame(self, index: int, selector: str = "iframe") -> Any:
        """A FrameLocator for the (first) iframe matching ``selector`` in cell ``index``'s
        output."""
        return self.cell_output_locator(index).locator(selector).first.content_frame

    # ---- end

    def save_artifacts(self, out: Path, stem: str) -> None:
        """A full-page screenshot and the console (plus the server log's tail) in ``out``."""
        with contextlib.suppress(Exception):
            self.page.screenshot(path=str(out / f"{stem}.png"), full_page=True)
        with contextlib.suppress(Exception):
            log = [*self.console, "--- server log ---", self.server.log_tail()]
            (out / f"{stem}.log").write_text("\n".join(log), encoding="utf-8")

    def close(self) -> None:
        """Close the page's browser context and shut the kernel down (``DELETE
        /api/sessions/<id>``). Safe to call twice."""
        with contextlib.suppress(Exception):
            self.page.context.close()
        if self.session_id is not None and self.server.alive():
            with contextlib.suppress(Exception):
                self.server.api("DELETE", f"api/sessions/{self.session_id}")
        self.session_id = None


class NotebookOpener:
    """The notebooks one test opened on one server; what the ``open_*`` fixtures call."""

    def __init__(
        self, server: JupyterServer, browser: Any, stem: str, also: list | None = None
    ) -> None:
        self.server = server
        self.also = also if also is not None else []  # e.g. the test's list for artefacts
        self.browser = browser
        self.stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)[:80]
        self.opened: list[LabNotebook] = []

    def __call__(
        self,
        cells: Iterable[str],
        name: str | None = None,
        kernel: str = "python3",
        timeout: float = OPEN_TIMEOUT,
    ) -> LabNotebook:
        if name is None:
            name = f"{self.stem}-{len(self.opened)}.ipynb"
        notebook = LabNotebook.open(self.server, self.browser, cells, name, kernel, timeout)
        self.opened.append(notebook)
        self.also.append(notebook)
        return notebook

    def close(self) -> None:
        for notebook in self.opened:
            notebook.close()
