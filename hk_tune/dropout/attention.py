"""Dropout inside attention: DropKey on the logits, DropAttention on the weights
(docs/design.md 2.1).

Torch only. Shapes: q (B, H, Lq, d), k and v (B, Hkv, Lk, d), the additive mask (B|1, 1|H, Lq, Lk)
holds 0 where a key may be seen and the dtype's min where it may not.

DropKey adds a large finite negative to dropped logits before softmax (the softmax renormalizes,
so there is no rescaling), which is exactly an additive attention mask: when only the logits are
dropped, the fused `scaled_dot_product_attention` kernel does the work and no attention matrix is
materialized here. DropAttention needs the weights themselves, so it computes them explicitly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hk_tune.dropout.pattern import draw
from hk_tune.dropout.spec import PositionSpec

KEYS, QUERIES = -1, -2


def additive_mask(
    mask: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor, is_causal: bool
) -> torch.Tensor:
    """Turns whatever mask transformers passed (None, bool True=attend, or additive float) into an
    additive float mask in the query's dtype, (B|1, 1, Lq, Lk)."""
    dtype, lq, lk = query.dtype, query.shape[-2], key.shape[-2]
    lowest = torch.finfo(dtype).min
    if mask is None:
        if not (is_causal and lq > 1):
            return torch.zeros(1, 1, lq, lk, dtype=dtype, device=query.device)
        # Causal, aligned to the end so cached keys (lk > lq) stay visible.
        allowed = torch.ones(lq, lk, dtype=torch.bool, device=query.device).tril(lk - lq)
        mask = allowed[None, None]
    if mask.dim() == 2:  # (B, Lk) padding mask, as flash-attention masks come
        causal = additive_mask(None, query, key, is_causal) == 0
        mask = mask.bool()[:, None, None, :] & causal
    if mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=dtype, device=query.device)
        return torch.where(mask, zero, torch.tensor(lowest, dtype=dtype, device=query.device))
    return mask[..., :lk].to(dtype)


def drop_logits(mask: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    """DropKey: add dtype.min / 2 to the dropped logits (finite, so no NaN). Entries already
    masked stay at the dtype's min."""
    lowest = torch.finfo(mask.dtype).min
    # The sum is taken on the (often broadcast, smaller) mask; `where` is one full-size pass.
    return torch.where(dropped, (mask + lowest / 2).clamp_min(lowest), mask)


def drop_weights(
    weights: torch.Tensor, dropped: torch.Tensor, rate: float, rescale: str
) -> torch.Tensor:
    """DropAttention on softmax weights w: w̄ = m·w, then either w̄ / stopgrad(Σ_k w̄) ("renorm",
    the paper's) or w̄ / (1 - p) ("inverted", what HF's attention dropout does)."""
    kept = weights.masked_fill(dropped, 0.0)
    if rescale == "inverted":
        return kept / (1.0 - rate)
    total = kept.sum(dim=KEYS, keepdim=True).detach()
    return kept / total.clamp_min(torch.finfo(total.dtype).tiny)


def _repeat_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, Hkv, L, d) -> (B, H, L, d) for grouped-query attention."""
    return x if x.shape[1] == heads else x.repeat_interleave(heads // x.shape[1], dim=1)


def attention_with_dropout(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor,
    scaling: float,
    logits: PositionSpec,
    weights: PositionSpec,
    stock_p: float = 0.0,
) -> torch.Tensor:
    """Attention with DropKey and/or DropAttention applied; returns (B, Lq, H, d).

    Args:
        query, key, value: (B, H, Lq, d), (B, Hkv, Lk, d), (B, Hkv, Lk, d).
        mask: additive mask from `additive_mask`.
        scaling: the logit scale, usually d ** -0.5.
        logits, weights: the `attn_logits` and `attn_weights` entries of the spec.
        stock_p: the backbone's own attention dropout, kept only under `stock_dropout`.
    """
    heads = query.shape[1]
    key, value = _repeat_kv(key, heads), _repeat_kv(value, heads)
    shape = (query.shape[0], heads, query.shape[2], key.shape[2])  # (B, H, Lq, Lk)
    valid = mask > torch.finfo(mask.dtype).min / 2
    if logits.active:
        dropped = draw(logits.pattern, shape, valid, logits.rate, KEYS, QUERIES, (KEYS,))
        valid = valid & ~dropped
        mask = drop_logits(mask, dropped)
    if not weights.active:
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=stock_p, scale=scaling
        )
        return out.transpose(1, 2).contiguous()

    scores = torch.matmul(query, key.transpose(2, 3)) * scaling + mask  # (B, H, Lq, Lk)
    probs = F.softmax(scores, dim=KEYS, dtype=torch.float32).to(query.dtype)
    dropped = draw(weights.pattern, shape, valid, weights.rate, KEYS, QUERIES, (KEYS,))
    probs = drop_weights(probs, dropped, weights.rate, weights.rescale)
    if stock_p > 0:
        probs = F.dropout(probs, p=stock_p, training=True)
    return torch.matmul(probs, value).transpose(1, 2).contiguous()
