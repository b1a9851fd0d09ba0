"""Meter a plain PyTorch training loop: energy, dollars, tokens/s and MFU of every step.

    python docs/examples/pytorch_training_loop.py                 # a GPU if there is one, else the CPU
    python docs/examples/pytorch_training_loop.py --steps 200 --out runs/loop.json

A small causal language model (embedding, 4 transformer layers, head) trains on random tokens.
``meter.Meter`` wraps each step in a window (``tokens=`` the step's tokens) and writes a job run file
at the end, which ``meter report`` and ``meter calibrate`` read. The FLOPs per token are the usual
6 x parameters of training, so MFU is against the GPU's dense bf16 datasheet peak (none on a CPU).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import meter


def build(vocab: int, dim: int, layers: int) -> nn.Module:
    block = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=4 * dim, batch_first=True, norm_first=True)
    return nn.ModuleDict(
        {
            "embed": nn.Embedding(vocab, dim),
            "body": nn.TransformerEncoder(block, layers, enable_nested_tensor=False),
            "head": nn.Linear(dim, vocab),
        }
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--price", type=float, default=2.0, help="$ per GPU-hour")
    p.add_argument("--out", default="runs/pytorch-loop.json")
    args = p.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    vocab, dim = 1024, 128
    model = build(vocab, dim, layers=4).to(device)
    params = sum(t.numel() for t in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    mask = nn.Transformer.generate_square_subsequent_mask(args.seq, device=device)

    m = meter.Meter(
        gpus=[0] if device == "cuda" else [],  # on a CPU: time and dollars only, energy None
        price_usd_per_gpu_hour=args.price,
        model="4-layer LM",
        flops_per_token=6 * params,
        phase="train",
        seq=args.seq,
    )
    tokens = args.batch * args.seq
    for step in range(args.steps):
        x = torch.randint(0, vocab, (args.batch, args.seq + 1), device=device)
        with m.window("step", tokens=tokens) as w:
            h = model["body"](model["embed"](x[:, :-1]), mask=mask, is_causal=True)
            loss = nn.functional.cross_entropy(model["head"](h).flatten(0, 1), x[:, 1:].flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if step % 10 == 0 or step == args.steps - 1:
            r = w.result
            energy = "energy n/a" if r.energy_j is None else f"{r.energy_j:.2f} J"
            cost = f"  ${r.usd:.2e}" if r.gpus else ""
            print(f"step {step:4d} loss {loss.item():.3f}  {r.tokens_per_s:9.0f} tokens/s  {energy}{cost}")
    m.close()
    job = m.result()
    mfu = job.work.mfu_basis if job.work.mfu is None else f"{job.work.mfu:.2%}"
    print(f"{job.work.tokens:.0f} tokens in {job.duration_s:.2f} s; MFU {mfu}")
    print(f"run file: {m.save(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
