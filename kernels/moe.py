"""DeepSeekMoE: gate (softmax, sigmoid or sqrt-softplus scores, selection bias, group-limited top-k,
optional renormalisation), shared experts, and fine-grained routed experts computed as one grouped
GEMM over tokens sorted by expert.

The gate covers the routers of the MoE models people serve: DeepSeek-V3/Kimi K2/GLM-4.5 (sigmoid,
selection bias, groups, renormalised), DeepSeek-V2 (softmax, not renormalised), Qwen3 MoE
(softmax, renormalised when ``norm_topk_prob``), Mixtral and gpt-oss (softmax over the top-k
logits, which is softmax then renormalise; gpt-oss's router Linear has a bias), Llama 4 (sigmoid of
the top-k logits, not renormalised) and DeepSeek-V4 (sqrt(softplus), renormalised).

Pipeline: gate -> sort token-expert assignments by expert -> grouped SwiGLU -> weight -> scatter-add
back -> plus shared experts. Routing can be forced (uniform, or a Zipf skew) to study load balance.

Shape legend: T tokens, D model dim, E experts (local to this GPU), K top-k, F expert hidden dim,
N = T*K assignments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kernels.args import ModelArgs, RoutingMode
from kernels.dense import SwiGLU
from kernels.grouped import Backend, choose_backend, grouped_linear


@dataclass(frozen=True)
class Routing:
    """How tokens pick experts: the learned gate, or forced for load-balance studies.

    ``skew`` draws each token's experts from a Zipf law with exponent ``skew_exponent`` (0 is
    uniform at random; 1.2 gives a few hot experts). Gate weights are still the gate's scores at
    the chosen experts, so gradients reach the gate either way.
    """

    mode: RoutingMode = "learned"
    skew_exponent: float = 1.0
    seed: int = 0


def expert_scores(logits_TE: torch.Tensor, score_func: str) -> torch.Tensor:
    """Per-expert scores from router logits (the same dtype as ``logits``)."""
    if score_func == "sigmoid":
        return logits_TE.sigmoid()
    if score_func == "softmax":
        return logits_TE.softmax(dim=-1)
    if score_func == "sqrtsoftplus":
        return F.softplus(logits_TE).sqrt()
    raise ValueError(f"unknown score_func {score_func!r}")


class Gate(nn.Module):
    """The router. Returns (weights [T, K], expert indices [T, K]).

    The selection bias (``gate_bias``, V3's auxiliary-loss-free balancing) is added to the scores
    that choose experts and never to the weights; a router bias (``router_bias``, gpt-oss) is part
    of the logits, so it moves both.
    """

    def __init__(self, args: ModelArgs, routing: Routing = Routing(), dtype=None, device=None):
        super().__init__()
        self.args = args
        self.routing = routing
        self.weight = nn.Parameter(torch.empty(args.n_routed_experts, args.dim, dtype=dtype, device=device))
        nn.init.normal_(self.weight, std=args.dim**-0.5)
        self.logit_bias = (
            nn.Parameter(torch.zeros(args.n_routed_experts, dtype=dtype, device=device)) if args.router_bias else None
        )
        if args.gate_bias:
            # A buffer, not a parameter: it is updated by the balancing rule, not by gradients.
            self.register_buffer("bias", torch.zeros(args.n_routed_experts, dtype=torch.float32, device=device))
        else:
            self.bias = None
        self._generator: torch.Generator | None = None

    def forward(self, x_TD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.args
        # Router math in float32 at least (float64 stays float64, for reference checks).
        logits = F.linear(x_TD, self.weight, self.logit_bias).to(torch.promote_types(x_TD.dtype, torch.float32))
        scores = expert_scores(logits, a.score_func)
        if self.routing.mode == "learned":
            indices = self._select(scores)
        else:
            indices = self._forced(x_TD.shape[0], scores.device)
        weights = scores.gather(1, indices)
        if a.renormalizes_topk:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return (weights * a.route_scale).type_as(x_TD), indices

    def _select(self, scores_TE: torch.Tensor) -> torch.Tensor:
        a = self.args
        choice = scores_TE if self.bias is None else scores_TE + self.bias
        if a.n_expert_groups > 1:
            grouped = choice.view(choice.shape[0], a.n_expert_groups, -1)
            if self.bias is None:
                group_scores = grouped.amax(dim=-1)
            else:
                group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)
            keep = group_scores.topk(a.n_limited_groups, dim=-1).indices
            dropped = torch.ones_like(group_scores, dtype=torch.bool).scatter_(1, keep, False)
            choice = grouped.masked_fill(dropped.unsqueeze(-1), float("-inf")).flatten(1)
        return choice.topk(a.n_activated_experts, dim=-1).indices

    def _forced(self, n_tokens: int, device: torch.device) -> torch.Tensor:
        a = self.args
        e, k = a.n_routed_experts, a.n_activated_experts
        if self.routing.mode == "uniform":
            # Token t takes experts (t*k + j) mod E: distinct per token, perfectly balanced when E | T*k.
            base = torch.arange(n_tokens, device=device)[:, None] * k + torch.arange(k, device=device)[None, :]
            return base % e
        if self._generator is None or self._generator.device != torch.device(device):
            self._generator = torch.Generator(device=device).manual_seed(self.routing.seed)
        ranks = torch.arange(1, e + 1, dtype=torch.float32, device=device)
        probs = ranks ** (-self.routing.skew_exponent)
        return torch.multinomial(probs.expand(n_tokens, e), k, replacement=False, generator=self._generator)

    @torch.no_grad()
    def update_bias(self, tokens_per_expert_E: torch.Tensor, rate: float = 1e-3) -> None:
        """Auxiliary-loss-free balancing: raise the bias of under-loaded experts, lower the others."""
        if self.bias is None:
            raise RuntimeError("this gate has no selection bias (gate_bias is false)")
        load = tokens_per_expert_E.float()
        self.bias += rate * torch.sign(load.mean() - load)


class GroupedExperts(nn.Module):
    """``n_experts`` SwiGLU experts as stacked weights: w13 [E, 2F, D] (gate and up fused), w2 [E, D, F]."""

    def __init__(self, n_experts: int, dim: int, hidden: int, dtype=None, device=None):
        super().__init__()
        self.n_experts, self.hidden = n_experts, hidden
        self.w13 = nn.Parameter(torch.empty(n_experts, 2 * hidden, dim, dtype=dtype, device=device))
        self.w2 = nn.Parameter(torch.empty(n_experts, dim, hidden, dtype=dtype, device=device))
        nn.init.normal_(self.w13, std=dim**-0.5)
        nn.init.normal_(self.w2, std=hidden**-0.5)
        self.backend: Backend | None = None  # None: choose per call from device, dtype and shapes

    def backend_choice(self, x_ND: torch.Tensor) -> tuple[Backend, str | None]:
        """(the backend a call on ``x`` uses, why it is the loop); the set ``backend`` wins."""
        if self.backend is not None:
            return self.backend, None if self.backend == "grouped_mm" else "set explicitly"
        dev = x_ND.device
        capability = torch.cuda.get_device_capability(dev) if dev.type == "cuda" else None
        dims = (self.w13.shape[2], self.w13.shape[1], self.w2.shape[2])  # D, 2F, F
        backend, why = choose_backend(dev.type, x_ND.dtype, capability, dims)
        if backend == "grouped_mm" and dev.type == "cuda":
            from kernels.ops import probe_ops

            probe = probe_ops(str(dev))
            if not probe.ok("grouped_mm_bf16"):
                return "loop", f"grouped_mm failed its probe on {dev}: {probe.reason('grouped_mm_bf16')}"
        return backend, why

    def forward(self, x_ND: torch.Tensor, tokens_per_expert_E: torch.Tensor) -> torch.Tensor:
        offsets = torch.cumsum(tokens_per_expert_E, dim=0, dtype=torch.int32)
        backend = self.backend or self.backend_choice(x_ND)[0]
        h = grouped_linear(x_ND, self.w13, offsets, backend)
        gate, up = h.split(self.hidden, dim=-1)
        return grouped_linear(F.silu(gate) * up, self.w2, offsets, backend)


class MoE(nn.Module):
    """DeepSeekMoE FFN: ``x [..., D] -> [..., D]``.

    Args:
        n_local_experts: experts this GPU holds in an expert-parallel group (E / ep). The gate still
            scores all E experts; each assignment goes to local expert ``id mod n_local``, so the
            local grouped GEMM gets the T*K rows per GPU that an EP deployment delivers to it, in
            the production GEMM shapes. No communication is modelled here.
    """

    def __init__(
        self,
        args: ModelArgs,
        *,
        routing: Routing = Routing(),
        n_local_experts: int | None = None,
        dtype=None,
        device=None,
    ):
        super().__init__()
        if not args.is_moe:
            raise ValueError("MoE needs a model with routed experts")
        self.args = args
        self.n_local = n_local_experts or args.n_routed_experts
        if args.n_routed_experts % self.n_local:
            raise ValueError(f"n_local_experts {self.n_local} must divide n_routed_experts {args.n_routed_experts}")
        self.gate = Gate(args, routing, dtype=dtype, device=device)
        self.experts = GroupedExperts(self.n_local, args.dim, args.moe_inter_dim, dtype=dtype, device=device)
        self.shared = (
            SwiGLU(args.dim, args.n_shared_experts * args.moe_inter_dim, dtype=dtype, device=device)
            if args.n_shared_experts
            else None
        )
        self.last_tokens_per_expert: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x_TD = x.reshape(-1, shape[-1])
        weights_TK, experts_TK = self.gate(x_TD)
        if self.n_local != self.args.n_routed_experts:
            experts_TK = experts_TK % self.n_local
        k = experts_TK.shape[1]
        # histc with fixed bins, unlike bincount, needs no device-to-host sync (CUDA-graph safe).
        counts_E = torch.histc(experts_TK.flatten().float(), bins=self.n_local, min=0, max=self.n_local).to(torch.int32)
        order_N = torch.argsort(experts_TK.flatten(), stable=True)
        token_N = order_N // k
        y_ND = self.experts(x_TD[token_N], counts_E)
        y_ND = y_ND * weights_TK.flatten()[order_N].unsqueeze(-1)
        out_TD = torch.zeros_like(x_TD).index_add_(0, token_N, y_ND)
        if self.shared is not None:
            out_TD = out_TD + self.shared(x_TD)
        self.last_tokens_per_expert = counts_E.detach()
        return out_TD.view(shape)
