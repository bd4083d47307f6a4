"""Smoke tests of the Jupyter harness (conftest.py, _lab.py) in a real JupyterLab and
Notebook 7, with ipywidgets and a tiny anywidget defined in a cell (nothing of cellucid)."""

from __future__ import annotations

import pytest
from _lab import CellError, wait_until
from playwright.sync_api import expect

# A widget with a button that increments a synced Int trait from the front end.
COUNTER = '''
import anywidget
import traitlets

class Counter(anywidget.AnyWidget):
    _esm = """
    function render({ model, el }) {
      const button = document.createElement("button");
      button.className = "harness-counter";
      const show = () => { button.textContent = `count is ${model.get("count")}`; };
      button.addEventListener("click", () => {
        model.set("count", model.get("count") + 1);
        model.save_changes();
      });
      model.on("change:count", show);
      show();
      el.appendChild(button);
    }
    export default { render };
    """
    count = traitlets.Int(0).tag(sync=True)

counter = Counter()
counter
'''


IFRAME = """from IPython.display import HTML
HTML('<iframe srcdoc="<p id=inner>inside a frame</p>" width=300 height=60></iframe>')"""


def test_cells_run_and_kernel_eval_reads_values(open_notebook):
    nb = open_notebook(["x = 41 + 1", "y = x * 2\nprint('y is', y)", IFRAME])
    nb.run_cell(0)
    assert nb.kernel_eval("x") == 42
    assert nb.cell_info(0)["executionCount"] == 1
    nb.run_all()
    assert nb.output_text(1) == "y is 84\n"
    assert [nb.cell_info(i)["executionCount"] for i in (0, 1, 2)] == [2, 3, 4]
    assert nb.cell_count() == 3, "kernel_eval must not leave cells behind"
    expect(nb.output_frame(2).locator("#inner")).to_have_text("inside a frame")
    assert nb.kernel_eval("{'a': [1, 2.5, None], 'b': 'text'}") == {
        "a": [1, 2.5, None],
        "b": "text",
    }
    nb.restart_kernel()
    assert nb.kernel_eval("'x' in globals()") is False


def test_ipywidgets_slider_follows_python(open_notebook):
    nb = open_notebook(
        [
            "import ipywidgets\nslider = ipywidgets.IntSlider(value=3, min=0, max=10)\nslider",
            "slider.value = 7",
        ]
    )
    nb.run_cell(0)
    output = nb.cell_output_locator(0)
    readout = output.locator(".widget-slider .widget-readout")
    expect(output.locator(".widget-slider .noUi-handle")).to_be_visible(timeout=20_000)
    expect(readout).to_have_text("3")
    nb.run_cell(1)
    expect(readout).to_have_text("7", timeout=10_000)
    expect(output.locator(".noUi-handle")).to_have_attribute("aria-valuenow", "7.0")


def test_anywidget_click_reaches_the_kernel(open_notebook):
    nb = open_notebook([COUNTER])
    nb.run_cell(0)
    button = nb.cell_output_locator(0).locator("button.harness-counter")
    expect(button).to_have_text("count is 0", timeout=20_000)
    button.click()
    button.click()
    expect(button).to_have_text("count is 2")
    wait_until(lambda: nb.kernel_eval("counter.count") == 2, 20.0, "count == 2 in the kernel")
    nb.execute("counter.count = 10")
    expect(button).to_have_text("count is 10", timeout=10_000)


def test_cell_errors_are_reported_with_the_traceback(open_notebook):
    nb = open_notebook(["def fail():\n    raise ValueError('boom 123')", "fail()", "ok = 1"])
    nb.run_cell(0)
    with pytest.raises(CellError) as raised:
        nb.run_cell(1)
    assert raised.value.ename == "ValueError"
    assert raised.value.evalue == "boom 123"
    assert "raise ValueError('boom 123')" in raised.value.traceback
    assert "\x1b[" not in str(raised.value)
    assert "cell 1 raised ValueError: boom 123" in str(raised.value)
    with pytest.raises(CellError, match="NameError"):
        nb.kernel_eval("no_such_name")
    with pytest.raises(CellError, match="boom 123"):
        nb.run_all()  # reports cell 1's error (whether the kernel still ran cell 2 is racy)
    nb.run_cell(2)
    assert nb.kernel_eval("ok") == 1


def test_notebook7_opens_and_runs_a_cell(open_nb7_notebook):
    nb = open_nb7_notebook(["import sys\nprint('nb7', sys.version_info[0])"])
    assert "/notebooks/" in nb.page.url
    assert nb.page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
    nb.run_cell(0)
    assert nb.output_text(0) == "nb7 3\n"
    assert nb.kernel_eval("sys.version_info[0]") == 3
    expect(nb.cell_output_locator(0)).to_contain_text("nb7 3")


def test_comm_messages_wait_for_the_running_cell(open_notebook):
    """A fact the widget design depends on: while a cell runs, the kernel does not handle
    comm messages from the front end (they are shell messages, handled one at a time, in
    order). The click updates the page's model at once, but the kernel-side trait changes
    only after the cell returns: the sleeping cell still sees 0 after its sleep, and the
    value read right after it finished is 1.

    Observed with ipykernel 7.4 / JupyterLab 4.6: ``after sleep 0`` — unchanged during the
    sleep, so Python code cannot wait inside a cell for an answer from the front end."""
    sleeper = (
        "import time\n"
        "print('sleeping', counter.count, flush=True)\n"
        "time.sleep(8)\n"
        "print('after sleep', counter.count)"
    )
    nb = open_notebook([COUNTER, sleeper])
    nb.run_cell(0)
    button = nb.cell_output_locator(0).locator("button.harness-counter")
    expect(button).to_have_text("count is 0", timeout=20_000)
    run = nb.run_cell(1, wait=False)
    wait_until(lambda: "sleeping" in nb.output_text(1), 20.0, "the cell to start sleeping")
    button.click()
    expect(button).to_have_text("count is 1")  # the front end's model changed at once
    assert not run.done(), "the click should land while the cell sleeps"
    run.wait(30.0)
    assert nb.output_text(1) == "sleeping 0\nafter sleep 0\n"
    assert nb.kernel_eval("counter.count") == 1
