"""The hierarchical memory M: an MLP-Mixer VQ autoencoder over keypoint configurations
(official ``Memory``), and the prior T distilled from it."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ppl_edge.model.config import ModelConfig
from ppl_edge.model.nn_lookup import nearest_code


class MixerLayer(nn.Module):
    """out = x + y + z with y = TokenMLP(LN(x)) across tokens, z = ChannelMLP(LN(x + y)).

    The residual form is the official one (it differs from the standard Mixer).
    """

    def __init__(self, hidden: int, hidden_inter: int, tokens: int, token_inter: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.token_mlp = nn.Sequential(
            nn.Linear(tokens, token_inter), nn.GELU(), nn.Linear(token_inter, tokens)
        )
        self.channel_mlp = nn.Sequential(
            nn.Linear(hidden, hidden_inter), nn.GELU(), nn.Linear(hidden_inter, hidden)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        y = self.token_mlp(self.ln1(x).transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        z = self.channel_mlp(self.ln2(x + y))
        return x + y + z


class MemoryOutput(NamedTuple):
    """Result of one pass through the memory.

    quantized: (B, M, D) z with straight-through gradients to z_e.
    indices: (B, M) int64 prototype id per bank.
    commit_loss: () MSE(sg(z_q), z_e).
    distances: (B, M) squared distance of z_e to its code.
    keypoints: (B, N, 2) T'_recon = Dec(z_q), xy in [-1, 1].
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    commit_loss: torch.Tensor
    distances: torch.Tensor
    keypoints: torch.Tensor


class HierarchicalMemory(nn.Module):
    """M banks x K entries x D dims, EMA-updated codebook (a buffer, not a parameter)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n, d, m = cfg.num_keypoints, cfg.mem_dim, cfg.mem_banks
        self.decay, self.eps = cfg.mem_decay, cfg.mem_eps
        self.enc_in = nn.Linear(2, d)
        self.enc_mixers = nn.Sequential(
            *[MixerLayer(d, d, n, cfg.mem_token_hidden) for _ in range(cfg.mem_mixer_layers)]
        )
        self.enc_ln = nn.LayerNorm(d)
        self.enc_tokens = nn.Linear(n, m)  # N keypoint tokens -> M bank tokens
        self.enc_out = nn.Linear(d, d)
        self.dec_tokens = nn.Linear(m, n)
        self.dec_in = nn.Linear(d, cfg.mem_dec_dim)
        self.dec_mixer = MixerLayer(cfg.mem_dec_dim, 2 * cfg.mem_dec_dim, n, cfg.mem_token_hidden)
        self.dec_ln = nn.LayerNorm(cfg.mem_dec_dim)
        self.dec_out = nn.Linear(cfg.mem_dec_dim, 2)
        codebook = torch.randn(m, cfg.mem_entries, d)  # official: N(0, 1) buffer
        self.register_buffer("codebook", codebook)
        # DEVIATION(official): counts start at 1 and sums at the codebook, so an entry unused in the
        # first batch keeps its value instead of jumping to 0.9·N(0,1)/1e-5 (ppl_official_code.md
        # §2.4).
        self.register_buffer("ema_count", torch.ones(m, cfg.mem_entries))
        self.register_buffer("ema_sum", codebook.clone())
        self.frozen = False

    def encode(self, kpts: torch.Tensor) -> torch.Tensor:
        """kpt2token: (B, N, 2) -> z_e (B, M, D)."""
        x = self.enc_ln(self.enc_mixers(self.enc_in(kpts)))  # (B, N, D)
        x = self.enc_tokens(x.transpose(1, 2)).transpose(1, 2)  # (B, M, D)
        return self.enc_out(x)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """token2kpt: (B, M, D) -> (B, N, 2)."""
        x = self.dec_tokens(tokens.transpose(1, 2)).transpose(1, 2)  # (B, N, D)
        x = self.dec_ln(self.dec_mixer(self.dec_in(x)))  # (B, N, d_dec)
        return self.dec_out(x)

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pure, exportable lookup: (z_q (B, M, D), indices (B, M), distances (B, M))."""
        return nearest_code(z_e, self.codebook)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Inverse of quantisation: prototype ids (B, M) -> keypoints (B, N, 2)."""
        bank = torch.arange(self.codebook.shape[0], device=indices.device)
        return self.decode(self.codebook[bank.unsqueeze(0), indices])  # (B, M, D) -> (B, N, 2)

    @torch.no_grad()
    def update_ema(self, z_e: torch.Tensor, indices: torch.Tensor) -> None:
        """EMA codebook update (official decay 0.9, Laplace smoothing), fp32, all ranks summed."""
        K = self.codebook.shape[1]
        onehot = F.one_hot(indices, K).float()  # (B, M, K)
        counts = onehot.sum(0)  # (M, K)
        sums = torch.einsum("bmk,bmd->mkd", onehot, z_e.float())  # (M, K, D)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        total = self.ema_count.sum(-1, keepdim=True)  # (M, 1)
        self.ema_count.copy_((self.ema_count + self.eps) / (total + K * self.eps) * total)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.codebook.copy_(self.ema_sum / self.ema_count.unsqueeze(-1))

    def forward(self, kpts: torch.Tensor) -> MemoryOutput:
        """Reconstruct a keypoint configuration through the memory.

        Args:
            kpts: (B, N, 2) T' (the caller detaches it, paper A6).

        Returns:
            MemoryOutput; the codebook is EMA-updated only in training mode and when not frozen.
        """
        z_e = self.encode(kpts)
        with torch.autocast(device_type=z_e.device.type, enabled=False):
            z_e32 = z_e.float()
            z_q, indices, distances = self.quantize(z_e32)
            if self.training and not self.frozen:
                self.update_ema(z_e32, indices)
        commit = F.mse_loss(z_e32, z_q.detach())
        z = z_e32 + (z_q - z_e32).detach()  # straight-through (VQ-VAE, paper A6 (1))
        return MemoryOutput(z, indices, commit, distances, self.decode(z))

    def distill_prior(self) -> torch.Tensor:
        """Prior T = Dec(mean_j C_b,j for each bank), detached (official ``get_template``):
        (N, 2)."""
        with torch.no_grad():
            return self.decode(self.codebook.mean(dim=1, keepdim=False).unsqueeze(0))[0]
