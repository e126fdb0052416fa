"""d3rlpy, imported the quiet way: importing it imports the legacy ``gym`` package, which
prints an "unmaintained / NumPy 2" notice to stderr; it configures structlog globally and
logs every fit to stdout; torch and gym raise deprecation warnings. `import_d3rlpy` imports
it with stderr and warnings captured, restores the caller's structlog configuration, and
points d3rlpy's loggers at a DEBUG-level stdlib logger (``trademl.models.offline_rl.d3rlpy``);
training and export run under `quiet` (warnings suppressed). No asset log sees its noise."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["import_d3rlpy", "quiet"]

_LOG = logging.getLogger(__name__)
_D3_LOG = logging.getLogger("trademl.models.offline_rl.d3rlpy")
_D3RLPY: Any = None


class _DebugLog:
    """Stand-in for d3rlpy's structlog ``LOG``: every call becomes one stdlib DEBUG record.

    d3rlpy logs through a module-level structlog logger configured to print coloured lines
    to stdout; replacing it keeps training quiet while leaving the events reachable by
    enabling DEBUG on ``trademl.models.offline_rl.d3rlpy``.
    """

    def __getattr__(self, level: str) -> Any:
        def log(event: object = "", *args: object, **kw: object) -> None:
            if _D3_LOG.isEnabledFor(logging.DEBUG):
                _D3_LOG.debug("d3rlpy %s: %s %s", level, event, kw or "")

        return log

    def bind(self, **kw: object) -> _DebugLog:
        return self


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Suppress warnings (NumPy 2 / gym / torch deprecations) raised by d3rlpy and torch.

    Used around d3rlpy training, saving and TorchScript / ONNX export, never around project
    code, so the project's own warnings still surface.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def import_d3rlpy() -> Any:
    """Import d3rlpy once, quietly, and silence its loggers — the one way project code
    should import it (FQE in `ope` included), so no asset log sees its noise.

    Returns
    -------
    module
        The ``d3rlpy`` package.

    Raises
    ------
    ImportError
        With the install hint when the ``rl`` extra is missing.
    """
    global _D3RLPY
    if _D3RLPY is not None:
        return _D3RLPY
    import structlog

    saved = structlog.get_config() if structlog.is_configured() else None
    notices = io.StringIO()
    try:
        with quiet(), contextlib.redirect_stderr(notices):
            import d3rlpy  # the legacy gym package prints its NumPy 2 notice here
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "offline RL training needs d3rlpy: pip install -e '.[rl]' (make install does it)"
        ) from exc
    finally:
        # d3rlpy calls structlog.configure() at import: give the process its config back
        if saved is not None:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()
    if notices.getvalue():
        _LOG.debug("d3rlpy import notices: %s", notices.getvalue().strip())
    _silence_d3rlpy_loggers()
    _D3RLPY = d3rlpy
    return d3rlpy


def _silence_d3rlpy_loggers() -> None:
    """Point every loaded d3rlpy module's ``LOG`` at `_DebugLog` (idempotent)."""
    import sys

    quiet_log = _DebugLog()
    for name, module in list(sys.modules.items()):
        is_d3rlpy = name == "d3rlpy" or name.startswith("d3rlpy.")
        if is_d3rlpy and not isinstance(getattr(module, "LOG", quiet_log), _DebugLog):
            module.LOG = quiet_log
