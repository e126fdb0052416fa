"""The position rule shared by training, evaluation and serving, importable without torch.

position = size · sign(y_hat): the policy decides how much of the forecast's direction to take,
never its sign. Serving (`OnnxPolicy`) uses it on numpy arrays; training on torch tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ACTION_MAX", "position"]

ACTION_MAX = 2.0  # action = ACTION_MAX · x with x ~ Beta(α, β) in (0, 1)


def position(action: Any, y_hat: Any) -> Any:
    """Signed position from a size: position = action · sign(y_hat).

    A zero forecast gives a flat book. numpy in → numpy out; a torch tensor in → a tensor out
    (dispatched on the type's module, so this module never imports torch itself).
    """
    if type(action).__module__.startswith("torch"):
        return action * y_hat.sign()
    return np.asarray(action) * np.sign(np.asarray(y_hat))
