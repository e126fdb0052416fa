"""Imported first by `trademl_jobs.definitions`: the cyclic collector pauses while the code
location loads, and `done` freezes what the load built before it resumes.

The load allocates about a million objects that live as long as the process (Dagster's
definitions, pydantic models, calendars). The collector would walk them in ~5 full
collections on the way (≈ 0.4 s of every Dagster CLI start here) and free nothing; frozen,
it never walks them again — not during a run, nor at interpreter exit.
"""

import atexit
import gc

_WAS_ENABLED = gc.isenabled()
gc.disable()


def done() -> None:
    """Freeze everything allocated so far and let the collector run again; at exit, freeze
    again, so the interpreter's last collection does not walk what a run loaded (≈ 0.2–0.7 s
    of a CLI command here; objects are still finalized by reference counting)."""
    gc.freeze()
    if _WAS_ENABLED:
        gc.enable()
    atexit.register(gc.freeze)
