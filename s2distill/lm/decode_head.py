"""The LM head a CPU decode loop uses: the vocabulary in cache-sized blocks, int8 where asked.

Gemma's head projects each row onto 262,144 tokens. Computed as one matmul, a 64-row decode step
writes a fresh [64 × 262k] result (64 MB in float32; in bf16 a 32 MB one, then its float32 copy),
and memory that large comes from the operating system each time, page-faulted in as it is written.
`DecodeHead` computes the vocabulary a block at a time (a block's result stays in the CPU's cache
while it is scaled and converted: 32,768 tokens for int8 and 16-bit weights, 2,048 for float32
ones, where smaller blocks also keep the weights' slice in cache) into one float32 buffer that it
keeps for the next step while `reusing_output()` is on: the decode loop turns that on, since it
reads a step's logits before the next step overwrites them. int8 head, one 64-row step here: 113 ms
as one matmul, 65 ms in blocks into the kept buffer (benchmarks/generation.py measures the whole
loop).

`int8=True` quantises the weights, one scale per vocabulary row, and each step's activations, one
scale per batch row, and multiplies them as integers (`torch._int_mm`, exact int32 sums). torch's
dynamic quantisation (s2distill/lm/int8.py's `quantize_int8`) would quantise a batch's
activations with one scale for the whole batch, so a row's logits would depend on which rows
share its batch; with one scale per row they do not, which keeps sample k of a prompt the same
whatever else is decoded beside it (s2distill/lm/hf.py).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

BLOCK = 32_768  # vocabulary rows per block: a 64-row block of float32 logits is 8 MB
# float32 weights: 2,048 rows per block (a 5 MB slice of the weights, a 512 KB slice of a 64-row
# result). On the AVX2-only EPYC (2 threads, MKL) a [64 × 640] × [640 × 262k] head ran at 103
# GFLOPS in 2,048-row blocks, 66 in 32,768-row blocks, 59 as one matmul (8 to 128 rows: 1.4-1.7×).
FLOAT32_BLOCK = 2_048


class DecodeHead(torch.nn.Module):
    """A drop-in for a model's output layer (`nn.Linear`) that returns float32 logits."""

    def __init__(self, head: torch.nn.Linear, *, int8: bool = False, block: int | None = None):
        super().__init__()
        self.out_features, self.in_features = head.weight.shape
        self.int8 = int8
        float32 = not int8 and head.weight.dtype == torch.float32
        self.block = block or (FLOAT32_BLOCK if float32 else BLOCK)
        self.bias = None if head.bias is None else head.bias.detach().float()
        if int8:
            quantised, scale = _int8_rows(head.weight.detach())
            self.blocks = [quantised[i : i + self.block].t().contiguous() for i in range(0, self.out_features, self.block)]
            self.scales = scale.squeeze(1).split(self.block)
        else:  # the model's own weights (shared with a tied input embedding: no copy), row blocks
            self.blocks = list(head.weight.detach().split(self.block))
        self._reuse = False
        self._buffer: torch.Tensor | None = None

    @contextmanager
    def reusing_output(self):
        """Within it, each call's logits live in one kept buffer that the next call overwrites."""
        self._reuse = True
        try:
            yield
        finally:
            self._reuse, self._buffer = False, None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        rows = hidden.reshape(-1, self.in_features)
        out = self._output(rows.shape[0], rows.device)
        if self.int8:
            quantised, row_scale = _int8_rows(rows)
            for block, scale, part in zip(self.blocks, self.scales, out.split(self.block, dim=1)):
                torch.mul(torch._int_mm(quantised, block), row_scale, out=part)
                part.mul_(scale)
        else:
            rows = rows.to(self.blocks[0].dtype)
            for block, part in zip(self.blocks, out.split(self.block, dim=1)):
                if block.dtype == torch.float32:
                    torch.mm(rows, block.t(), out=part)
                else:  # bf16 / fp16 weights: their product, converted into the float32 buffer
                    part.copy_(rows @ block.t())
        if self.bias is not None:
            out += self.bias
        return out.reshape(*hidden.shape[:-1], self.out_features)

    def _output(self, n: int, device) -> torch.Tensor:
        if not self._reuse:
            return torch.empty(n, self.out_features, device=device)
        if self._buffer is None or self._buffer.shape[0] < n:
            self._buffer = torch.empty(n, self.out_features, device=device)
        return self._buffer[:n]


def _int8_rows(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`matrix` ([rows, columns]) as int8 with one scale per row ([rows, 1]): row ≈ int8 row × scale."""
    matrix = matrix.float()
    scale = matrix.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
    return (matrix / scale).round().to(torch.int8), scale


def install_decode_head(model, *, int8: bool) -> DecodeHead:
    """Replace `model`'s output layer by a `DecodeHead` built from it; the input embedding it may
    be tied to stays as it was."""
    head = DecodeHead(model.get_output_embeddings(), int8=int8)
    model.set_output_embeddings(head)
    return head
