"""The LSTM network of the ``lstm`` forecaster: the sequence's channels through an LSTM, the
last step's hidden state through a linear head (training and the gate: `sequence`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trademl.models.forecasts.sequence import SequenceParams

__all__ = ["lstm_network"]


def lstm_network(params: SequenceParams) -> Any:
    """An `nn.Module`: (N, seq_len, C) → (N,) forecasts."""
    import torch

    class LSTMForecaster(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(
                params.n_channels, params.hidden, params.layers, batch_first=True
            )
            self.head = torch.nn.Linear(params.hidden, 1)
            torch.nn.init.zeros_(self.head.weight)  # it starts at the zero baseline
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            return self.head(out[:, -1, :]).squeeze(-1)

    return LSTMForecaster()
