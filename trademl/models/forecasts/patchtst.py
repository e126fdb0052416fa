"""The multichannel PatchTST network of the ``patchtst`` forecaster (after Nie et al. 2023,
"A Time Series is Worth 64 Words"), built here from its settings, never downloaded.

Each channel's sequence is cut into non-overlapping patches of `patch_len` sessions; a patch is
embedded by a linear map shared across channels, plus a learned position embedding (which
patch) and a channel embedding (which channel). Unlike the channel-independent original, the
C × P patch tokens attend to each other across channels in one Transformer encoder
(`n_layers` layers, `n_heads` heads, pre-norm) — the forecaster is multivariate: a sentiment
or fundamentals channel can move the return forecast. The tokens' mean goes through a linear
head to the one forecast (training and the gate: `sequence`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trademl.models.forecasts.sequence import SequenceParams

__all__ = ["patchtst_network"]


def patchtst_network(params: SequenceParams) -> Any:
    """An `nn.Module`: (N, seq_len, C) → (N,) forecasts."""
    import torch

    if params.seq_len % params.patch_len:
        raise ValueError(
            f"patchtst: seq_len {params.seq_len} must be a multiple of patch_len {params.patch_len}"
        )
    if params.d_model % params.n_heads:
        raise ValueError(f"patchtst: d_model {params.d_model} must divide by n_heads")
    n_patches = params.seq_len // params.patch_len

    class PatchTST(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = params.d_model
            self.embed = torch.nn.Linear(params.patch_len, d)
            self.position = torch.nn.Parameter(torch.randn(1, 1, n_patches, d) * 0.02)
            self.channel = torch.nn.Parameter(torch.randn(1, params.n_channels, 1, d) * 0.02)
            layer = torch.nn.TransformerEncoderLayer(
                d, params.n_heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True
            )
            self.encoder = torch.nn.TransformerEncoder(
                layer, params.n_layers, enable_nested_tensor=False
            )
            self.norm = torch.nn.LayerNorm(d)
            self.head = torch.nn.Linear(d, 1)
            torch.nn.init.zeros_(self.head.weight)  # it starts at the zero baseline
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, _, c = x.shape
            patches = x.transpose(1, 2).reshape(n, c, n_patches, params.patch_len)
            tokens = self.embed(patches) + self.position + self.channel  # (N, C, P, d)
            h = self.encoder(tokens.reshape(n, c * n_patches, -1))
            return self.head(self.norm(h).mean(dim=1)).squeeze(-1)

    return PatchTST()
