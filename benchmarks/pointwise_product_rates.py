"""How fast a 1×1 convolution over a point sequence runs in each formulation, shape by shape.

The 1-D subnet's 1×1 kernels (``models.convert.pointwise_conv1d``) run as a batched matrix
product with the bias in its accumulator (``baddbmm``). This times that against the product
followed by a bias pass, the product alone, oneDNN's ``conv1d`` and ``matmul``, on the shapes
of AK-Net-TSM-R50's subnet (channels in → out, points N at α = 0.3, 8×224² clips), each shape
alone, the formulations interleaved round by round (``analysis.bench.time_interleaved``);
medians in ms and GMAC/s.

    python benchmarks/pointwise_product_rates.py [--threads 2] [--runs 15]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from aknet_cli._machine import cpu_description
from aknet_cli.analysis.bench import summarize, time_interleaved

#: (batch, C_in, C_out, N): res2's 7,526 points (0.3·8·56²), res3's 1,882, res4's 470; one at batch 8.
SHAPES = ((1, 256, 64, 7526), (1, 64, 256, 7526), (1, 512, 128, 1882), (1, 128, 512, 1882),
          (1, 1024, 256, 470), (1, 256, 1024, 470), (8, 256, 128, 7526))


def formulations(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> dict:
    w = weight[:, :, 0].expand(x.shape[0], -1, -1)
    b = bias.view(1, -1, 1)
    return {
        "baddbmm": lambda: torch.baddbmm(b, w, x),
        "bmm + add": lambda: torch.bmm(w, x).add_(b),
        "bmm (no bias)": lambda: torch.bmm(w, x),
        "conv1d": lambda: F.conv1d(x, weight, bias),
        "matmul + add": lambda: torch.matmul(weight[:, :, 0], x).add_(b),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{cpu_description()}, {torch.get_num_threads()} threads; median ms (GMAC/s)")
    for batch, c_in, c_out, n in SHAPES:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, c_in, n, generator=gen)
        weight, bias = torch.randn(c_out, c_in, 1, generator=gen), torch.randn(c_out, generator=gen)
        times = time_interleaved(formulations(x, weight, bias), runs=args.runs, warmup=3, device=torch.device("cpu"))
        gmac = batch * c_in * c_out * n / 1e9
        medians = {name: summarize(seconds)["median"] for name, seconds in times.items()}
        cells = [f"{k} {ms:.2f} ({gmac / ms * 1e3:.0f})" for k, ms in medians.items()]
        print(f"B={batch} {c_in}→{c_out} N={n}: " + " | ".join(cells))


if __name__ == "__main__":
    main()
