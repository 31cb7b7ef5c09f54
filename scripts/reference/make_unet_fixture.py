"""Reference outputs of diffusers' UNet2DModel for ddimlab's diffusers loader.

Builds two tiny, randomly initialised UNet2DModels of the DDPM family (seeded),
moves every parameter away from its initial value with small seeded noise (so
GroupNorm affines, biases and attention projections all matter), saves each with
save_pretrained(safe_serialization=True) and writes inputs and expected outputs
model(x, t).sample to cases.safetensors beside it.

    unet_tiny        the DDPM CIFAR-10 layout in miniature: attention_head_dim null
                     (one head), downsample_padding 0, flip_sin_to_cos false,
                     freq_shift 1, norm_eps 1e-6 (as google/ddpm-cifar10-32)
    unet_tiny_heads  diffusers' defaults: attention_head_dim 4 (several heads),
                     downsample_padding 1, flip_sin_to_cos true, freq_shift 0,
                     attention at both levels

Usage (see README.md for the versions used):
    python3 scripts/reference/make_unet_fixture.py
"""

import json
import os

import torch
from diffusers import UNet2DModel
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")

MODELS = {
    "unet_tiny": dict(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        norm_eps=1e-6,
        attention_head_dim=None,
        downsample_padding=0,
        flip_sin_to_cos=False,
        freq_shift=1,
        mid_block_scale_factor=1,
        act_fn="silu",
        time_embedding_type="positional",
        center_input_sample=False,
    ),
    "unet_tiny_heads": dict(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=4,
    ),
}

# (timestep of sample 0, timestep of sample 1)
TIMESTEPS = [(0, 0), (10, 10), (500, 500), (999, 999), (3, 777)]


def main():
    for k, (name, kwargs) in enumerate(MODELS.items()):
        torch.manual_seed(1000 + k)
        model = UNet2DModel(**kwargs).eval()
        gen = torch.Generator().manual_seed(2000 + k)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.03 * torch.randn(p.shape, generator=gen))
        out = os.path.join(ROOT, name)
        model.save_pretrained(out, safe_serialization=True)
        cases = {}
        with torch.no_grad():
            for i, ts in enumerate(TIMESTEPS):
                x = torch.randn((2, 3, 8, 8), generator=gen)
                t = torch.tensor(ts, dtype=torch.int64)
                eps = model(x, t).sample
                cases[f"case{i}.x"] = x.contiguous()
                cases[f"case{i}.t"] = t
                cases[f"case{i}.eps"] = eps.contiguous()
                print(name, ts, "max |eps|", float(eps.abs().max()))
        save_file(cases, os.path.join(out, "cases.safetensors"))
        with open(os.path.join(out, "config.json")) as f:
            print(json.dumps(json.load(f), sort_keys=True))


if __name__ == "__main__":
    main()
