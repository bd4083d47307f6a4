"""Helpers for the modules that keep upstream cellucid's import paths working.

Upstream ``cellucid`` 0.0.9 exposed ``cellucid.jupyter``, ``cellucid.server``,
``cellucid.anndata_server``, ``cellucid.anndata_adapter``, ``cellucid.prepare_data``,
``cellucid.session_bundle``, ``cellucid.session_codecs``, ``cellucid.anndata_session`` and
``cellucid.vector_fields``. Those modules here re-export our implementation under the same
public names. Names that have no meaning in this implementation (upstream's ``http.server``
request handlers, its global callback registries) raise an error that says what to use.
"""

from __future__ import annotations

from typing import Any, NoReturn


class UpstreamOnlyError(AttributeError, NotImplementedError):
    """An upstream cellucid name that has no equivalent here (the message says what to use)."""


def missing(module: str, name: str, advice: dict[str, str]) -> NoReturn:
    """Raise for ``module.name``: :class:`UpstreamOnlyError` with ``advice[name]`` when it is an
    upstream name without equivalent, else a plain ``AttributeError``."""
    if name in advice:
        raise UpstreamOnlyError(
            f"{module}.{name} (upstream cellucid) has no equivalent here: {advice[name]}"
        )
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def unsupported(qualified: str, advice: str) -> Any:
    """A callable that raises :class:`UpstreamOnlyError` when called (for upstream functions
    that must stay importable)."""

    def call(*_args: Any, **_kwargs: Any) -> NoReturn:
        raise UpstreamOnlyError(f"{qualified} (upstream cellucid) has no equivalent here: {advice}")

    call.__name__ = qualified.rsplit(".", 1)[-1]
    call.__qualname__ = call.__name__
    call.__doc__ = f"Upstream's ``{qualified}``: not available here. {advice}"
    return call
