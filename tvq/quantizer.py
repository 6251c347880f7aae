"""The vector quantiser of stage 1 (thesis Eq. 11-12, 41, 73 and appendix D's EMA codebook).

Reading order: what one pass returns (:class:`VQOutput`) → token counts → the loss of Eq. (73)
→ :class:`VectorQuantizer`: projections, nearest token, EMA update, one straight-through pass.
Each band's VQ-VAE (:mod:`tvq.vqvae`) holds one.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .equations import implements
from .errors import ConfigError, TvqError

__all__ = ["VQOutput", "token_counts", "vq_loss", "VectorQuantizer"]


@dataclasses.dataclass
class VQOutput:
    """What one pass through :class:`VectorQuantizer` gives."""

    z: torch.Tensor              # (B, H, W, d) continuous, after the input projection
    z_q: torch.Tensor            # (B, H, W, d) quantised; straight-through to z in training
    h_q: torch.Tensor            # (B, C, H, W) z_q after the output projection: decoder input
    indices: torch.Tensor        # (B, H, W) int64 token indices
    codebook_loss: torch.Tensor  # ||sg[z] - z_q||^2 (mean); no gradient reaches anything
    commit_loss: torch.Tensor    # beta ||z - sg[z_q]||^2 (mean)
    perplexity: torch.Tensor     # exp(entropy of token usage in this batch)


@implements("73")
def token_counts(indices: torch.Tensor, codebook_size: int, dtype: torch.dtype) -> torch.Tensor:
    """How many of ``indices`` fall on each of the K tokens: ``bincount(minlength=K)`` with a
    shape fixed at K (bincount's output shape depends on the data, which ends a compiled graph).
    The counts are whole numbers, exact in float32 for any batch below 2^24 vectors."""
    return torch.zeros(codebook_size, dtype=dtype, device=indices.device).index_add_(
        0, indices, torch.ones_like(indices, dtype=dtype))


def vq_loss(z: torch.Tensor, z_q: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (73): ``(||sg[z] - z_q||^2, beta * ||z - sg[z_q]||^2)``, each a mean over elements.

    Means (not sums) as the thesis's code. With an EMA codebook ``z_q`` is a buffer
    look-up, so the first term carries no gradient: it is reported, while the tokens move
    by the EMA update of appendix D instead. Only the commitment term trains the encoder.
    """
    codebook = F.mse_loss(z_q, z.detach())
    commit = beta * F.mse_loss(z, z_q.detach())
    return codebook, commit


class VectorQuantizer(nn.Module):
    """Eq. (11): a codebook of ``K`` tokens of dimension ``d``, with projections and EMA updates.

    The encoder's ``input_dim`` (64) channels are projected to ``d`` (4) by a linear layer,
    snapped to the nearest token (Eq. 12/41), and projected back to ``input_dim`` for the
    decoder. The tokens are not trained by gradient descent but by the exponential moving
    average of appendix D (decay ``gamma``); ``N_k`` and ``m_k`` are buffers.

    Two choices the thesis leaves open, made here:

    * Initial state ``N_k = 1``, ``m_k = e_k`` (one pseudo-observation at the random initial
      token), so that ``e_k = m_k / N_k`` holds from the first step. The thesis's code starts
      from ``N_k = 0``, which divides an unused token by about ``1e-5`` in the first update
      and throws it far out of reach.
    * Laplace smoothing of the counts before the division,
      ``N_k' = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j``, so a token that has not been
      chosen for a long time (``N_k`` → 0) does not divide by zero; its ``e_k`` then decays
      smoothly towards the origin instead of becoming NaN.
    """

    def __init__(self, input_dim: int = 64, codebook_size: int = 512, codebook_dim: int = 4,
                 decay: float = 0.8, beta: float = 1.0, eps: float = 1e-5, chunk: int = 2048,
                 ema_init: str = "one") -> None:
        super().__init__()
        if ema_init not in ("one", "zeros"):
            raise ConfigError(f"ema_init must be 'one' or 'zeros', got {ema_init!r}")
        if codebook_size < 1 or codebook_dim < 1 or input_dim < 1:
            raise ConfigError("codebook size, codebook dimension and input dimension must be positive")
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must lie in [0, 1), got {decay}")
        self.project_in = nn.Linear(input_dim, codebook_dim)
        self.project_out = nn.Linear(codebook_dim, input_dim)
        codebook = torch.randn(codebook_size, codebook_dim)
        self.register_buffer("codebook", codebook)                      # e_k, (K, d)
        # N_k: one pseudo-observation per token, or none (the thesis code's start; "zeros")
        self.register_buffer("cluster_size", torch.ones(codebook_size) if ema_init == "one" else torch.zeros(codebook_size))
        self.register_buffer("embed_sum", codebook.clone())               # m_k
        self.codebook_size, self.codebook_dim, self.input_dim = codebook_size, codebook_dim, input_dim
        self.decay, self.beta, self.eps, self.chunk = decay, beta, eps, chunk

    # -- projections ----------------------------------------------------------------------
    def project(self, h: torch.Tensor) -> torch.Tensor:
        """Encoder output ``(B, C, H, W)`` → projected latent ``z`` ``(B, H, W, d)`` (Table 1 layout)."""
        return self.project_in(h.permute(0, 2, 3, 1))

    def unproject(self, z_q: torch.Tensor) -> torch.Tensor:
        """Projected (quantised) latent ``(B, H, W, d)`` → decoder input ``(B, C, H, W)``."""
        return self.project_out(z_q).permute(0, 3, 1, 2)

    # -- nearest token ----------------------------------------------------------------------
    @implements("12", "41")
    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. (12)/(41): index of the token closest to each ``d``-vector of ``z`` (Euclidean).

        ``z`` is ``(..., d)``; returns int64 ``(...)``. ``||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2``
        and the first term does not change the arg-min, so it is dropped. Rows are
        processed in chunks of ``chunk``: the distance block then stays in cache (about
        twice as fast on CPU as one big matrix) and large sampling batches never build a
        huge one.
        """
        if z.shape[-1] != self.codebook_dim:
            raise TvqError(f"latent's last axis is {z.shape[-1]}, the codebook's dimension is {self.codebook_dim}")
        flat = z.detach().reshape(-1, self.codebook_dim).to(self.codebook.dtype)
        e = self.codebook
        e_sq = e.pow(2).sum(1)
        out = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
        for start in range(0, flat.shape[0], self.chunk):
            rows = flat[start:start + self.chunk]
            out[start:start + self.chunk] = torch.addmm(e_sq, rows, e.t(), alpha=-2.0).argmin(dim=1)
        return out.view(z.shape[:-1])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Token vectors for int64 ``indices`` ``(...)`` → ``(..., d)``."""
        return F.embedding(indices, self.codebook)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Snap continuous projected latents ``(..., d)`` to their nearest tokens: ``(z_q, indices)``.

        For sampling: diffusion produces continuous ``z`` in the projected space; the
        decoder then takes ``unproject(z_q)``.
        """
        indices = self.nearest(z)
        return self.lookup(indices).to(z.dtype), indices

    # -- EMA codebook update (appendix D) -----------------------------------------------------
    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        """Appendix D: ``N_k ← γ N_k + (1-γ) n_k``, ``m_k ← γ m_k + (1-γ) Σ_i z_{k,i}``, ``e_k = m_k / N_k``.

        ``n_k`` counts the vectors of this batch assigned to token ``k`` and the sum runs
        over them; the division uses Laplace-smoothed counts (class docstring).
        """
        flat = z.detach().reshape(-1, self.codebook_dim).to(self.embed_sum.dtype)
        idx = indices.reshape(-1)
        n_k = token_counts(idx, self.codebook_size, self.cluster_size.dtype)
        sum_k = torch.zeros_like(self.embed_sum).index_add_(0, idx, flat)
        gamma = self.decay
        self.cluster_size.mul_(gamma).add_(n_k, alpha=1 - gamma)
        self.embed_sum.mul_(gamma).add_(sum_k, alpha=1 - gamma)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.codebook.copy_(self.embed_sum / smoothed.unsqueeze(1))

    # -- one pass -------------------------------------------------------------------------------
    def forward(self, h: torch.Tensor) -> VQOutput:
        """Project, quantise (straight-through in training), update the codebook (training), project back.

        Always float32, even inside an autocast region: nearest-token distances and the EMA
        statistics are where reduced precision would change results.
        """
        with torch.autocast(h.device.type, enabled=False):
            return self._forward(h.float())

    def _forward(self, h: torch.Tensor) -> VQOutput:
        z = self.project(h)
        indices = self.nearest(z)
        # Look-up with the codebook as it was before this batch's update, as in the thesis code.
        z_q = self.lookup(indices).to(z.dtype)
        codebook_loss, commit_loss = vq_loss(z, z_q, self.beta)
        counts = token_counts(indices.reshape(-1), self.codebook_size, z.dtype)
        p = counts / counts.sum()
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-10))).sum())
        if self.training:
            self.ema_update(z, indices)
            # Straight-through estimator: the forward value is z_q, the gradient goes to z.
            z_q = z + (z_q - z).detach()
        return VQOutput(z=z, z_q=z_q, h_q=self.unproject(z_q), indices=indices,
                        codebook_loss=codebook_loss.detach(), commit_loss=commit_loss, perplexity=perplexity)
