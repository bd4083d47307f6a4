"""Upstream cellucid's ``cellucid.jupyter``: notebook viewers.

``show``, ``show_anndata``, ``CellucidViewer``, ``AnnDataViewer`` are ours
(:mod:`cellucid.viewer`); ``BaseViewer`` is :class:`cellucid.CellucidWidget`; ``ViewerState``
is the state snapshot ``viewer.state`` returns; ``cleanup_all()`` closes every open viewer.

Upstream's global callback registries (``register_event_callback``,
``unregister_event_callback``, ``register_session_bundle_request``, ``HookRegistry``) have
no equivalent: each viewer has its own hooks (``viewer.on_selection``, ``viewer.on_message``,
``viewer.register_hook``) and ``viewer.get_session_bundle()`` makes its own request. Calling
them raises :class:`~cellucid._compat.UpstreamOnlyError` saying so.
"""

from __future__ import annotations

from typing import Any

from ._compat import missing, unsupported
from .server.channel import ViewerState
from .server.runner import DEFAULT_PORT, CellucidServer
from .viewer import AnnDataViewer, CellucidViewer, show, show_anndata
from .widget import CellucidWidget as BaseViewer
from .widget import close_all_viewers as cleanup_all

#: upstream's link to the hosted web app (our viewer is bundled and works offline)
CELLUCID_WEB_URL = "https://www.cellucid.com"

_HOOKS = "use the viewer's own hooks: viewer.on_message / viewer.register_hook(event, callback)"
register_event_callback = unsupported("cellucid.jupyter.register_event_callback", _HOOKS)
unregister_event_callback = unsupported(
    "cellucid.jupyter.unregister_event_callback", "use viewer.unregister_hook(event, callback)"
)
register_session_bundle_request = unsupported(
    "cellucid.jupyter.register_session_bundle_request",
    "call viewer.get_session_bundle(), which makes and waits for its own request",
)

__all__ = [
    "CELLUCID_WEB_URL",
    "DEFAULT_PORT",
    "AnnDataViewer",
    "BaseViewer",
    "CellucidServer",
    "CellucidViewer",
    "ViewerState",
    "cleanup_all",
    "register_event_callback",
    "register_session_bundle_request",
    "show",
    "show_anndata",
    "unregister_event_callback",
]


def __getattr__(name: str) -> Any:
    missing(__name__, name, {"HookRegistry": _HOOKS})
