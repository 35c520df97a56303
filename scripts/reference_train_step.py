#!/usr/bin/python3
"""The reference's DreamBooth training step in plain PyTorch, to time it on this machine.

The reference (diffusers 0.25.1 `examples/dreambooth/train_dreambooth.py` + transformers 4.36.2 on torch
1.13) cannot be installed here: it needs PyPI. Debian ships PyTorch 1.13 itself (`apt install
python3-torch`), the same LibTorch build our binary links. This script rebuilds the three models the
reference's step runs (CLIP text encoder, VAE encoder, UNet2DConditionModel), module for module and operator
for operator as the reference's eager code paths on torch 1.13 run them (attention as baddbmm + softmax + bmm,
GEGLU feed-forward, nearest upsampling + conv, padded stride-2 VAE downsampling), with the reference's module
names so that its checkpoints load as they are.

  --check GOLDEN   runs ../shared/golden's `dreambooth_step` case with its weights and inputs and compares
                   every output with the reference's numbers (exit 1 on a mismatch): it proves this is the
                   reference's computation, not an approximation of it (on this machine all 17 compared
                   tensors, from the loss to the AdamW-updated weights, are bit-identical).
  --bench          times the step of the reference's loop (text encoder + VAE encode + UNet forward and
                   backward + clip_grad_norm_ + torch.optim.AdamW + zero_grad) on a full-size SD1.5-shaped
                   model with random weights: the figure `scripts/bench_train.sh` compares us with.

Not part of the product and not run by the tests (it needs python3-torch, which the project does not).
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

# ----------------------------------------------------------------------------------------------- configs

SD15_UNET = dict(in_channels=4, out_channels=4, block_out_channels=[320, 640, 1280, 1280], layers_per_block=2,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, attention_head_dim=8,
                 cross_attention_dim=768, norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0)
SD15_VAE = dict(in_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                norm_num_groups=32, scaling_factor=0.18215)
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=77, layer_norm_eps=1e-5)

# ----------------------------------------------------------------------------------------------- UNet

# unet.enable_gradient_checkpointing(): each resnet and each transformer of the UNet's blocks is recomputed
# in the backward pass (torch.utils.checkpoint, use_reentrant=False, as diffusers 0.25 calls it on torch 1.13).
GRADIENT_CHECKPOINTING = False


def call(module, *args):
    if GRADIENT_CHECKPOINTING and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False)
    return module(*args)


class Attention(nn.Module):
    """diffusers' Attention with AttnProcessor (the torch < 2.0 path)."""

    def __init__(self, query_dim, heads, dim_head, context_dim=None, bias=False, group_norm=None):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.group_norm = group_norm
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=bias)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def split_heads(self, x):
        b, n, d = x.shape
        return x.reshape(b, n, self.heads, d // self.heads).permute(0, 2, 1, 3).reshape(b * self.heads, n, d // self.heads)

    def merge_heads(self, x):
        bh, n, d = x.shape
        return x.reshape(bh // self.heads, self.heads, n, d).permute(0, 2, 1, 3).reshape(bh // self.heads, n, d * self.heads)

    def forward(self, x, context=None):
        q = self.split_heads(self.to_q(x))
        context = x if context is None else context
        k = self.split_heads(self.to_k(context))
        v = self.split_heads(self.to_v(context))
        empty = torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype, device=q.device)
        scores = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        probs = scores.softmax(dim=-1)
        out = self.merge_heads(torch.bmm(probs, v))
        return self.to_out[1](self.to_out[0](out))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * 4), nn.Dropout(0.0), nn.Linear(dim * 4, dim)])

    def forward(self, x):
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, context_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim // heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim // heads, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, channels, heads, context_dim, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(channels, heads, context_dim)])
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x, context):
        b, c, h, w = x.shape
        residual = x
        x = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        for block in self.transformer_blocks:
            x = block(x, context)
        x = x.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(x) + residual


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb_channels, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, cout) if temb_channels else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    def __init__(self, channels, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, cin, cout, layers, temb, heads, context_dim, groups, eps, cross_attention, downsample):
        super().__init__()
        # Registered before the resnets, as diffusers does: the parameter order is the order of the squares
        # that clip_grad_norm_ sums.
        if cross_attention:
            self.attentions = nn.ModuleList([Transformer2DModel(cout, heads, context_dim, groups) for _ in range(layers)])
        else:
            self.attentions = None
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, temb, groups, eps) for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(cout, 1)]) if downsample else None

    def forward(self, x, temb, context):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = call(resnet, x, temb)
            if self.attentions is not None:
                x = call(self.attentions[i], x, context)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    def __init__(self, prev, cout, skip_ins, temb, heads, context_dim, groups, eps, cross_attention, upsample):
        super().__init__()
        if cross_attention:
            self.attentions = nn.ModuleList([Transformer2DModel(cout, heads, context_dim, groups) for _ in skip_ins])
        else:
            self.attentions = None
        self.resnets = nn.ModuleList(
            [ResnetBlock2D((prev if i == 0 else cout) + skip, cout, temb, groups, eps) for i, skip in enumerate(skip_ins)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if upsample else None

    def forward(self, x, skips, temb, context):
        for i, resnet in enumerate(self.resnets):
            x = call(resnet, torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                x = call(self.attentions[i], x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    def __init__(self, channels, temb, heads, context_dim, groups, eps):
        super().__init__()
        self.attentions = nn.ModuleList([Transformer2DModel(channels, heads, context_dim, groups)])
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, temb, groups, eps) for _ in range(2)])

    def forward(self, x, temb, context):
        x = call(self.resnets[0], x, temb)
        return call(self.resnets[1], call(self.attentions[0], x, context), temb)


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch = cfg["block_out_channels"]
        layers, groups, eps = cfg["layers_per_block"], cfg["norm_num_groups"], cfg["norm_eps"]
        heads, context_dim = cfg["attention_head_dim"], cfg["cross_attention_dim"]
        temb = ch[0] * 4
        self.flip_sin_to_cos, self.freq_shift = cfg["flip_sin_to_cos"], cfg["freq_shift"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.down_blocks = nn.ModuleList()
        for i, kind in enumerate(cfg["down_block_types"]):
            self.down_blocks.append(DownBlock(ch[max(i - 1, 0)], ch[i], layers, temb, heads, context_dim, groups, eps,
                                              kind.startswith("CrossAttn"), i + 1 < len(ch)))
        self.up_blocks = nn.ModuleList()  # filled below; registered before mid_block, as in diffusers
        self.mid_block = MidBlock(ch[-1], temb, heads, context_dim, groups, eps)
        rev = list(reversed(ch))
        for i, kind in enumerate(cfg["up_block_types"]):
            below = rev[min(i + 1, len(ch) - 1)]
            skip_ins = [rev[i]] * layers + [below]
            self.up_blocks.append(UpBlock(rev[max(i - 1, 0)], rev[i], skip_ins, temb, heads, context_dim, groups, eps,
                                          kind.startswith("CrossAttn"), i + 1 < len(ch)))
        self.conv_norm_out = nn.GroupNorm(groups, ch[0], eps=eps)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def timestep_features(self, timesteps, dtype):
        half = self.conv_in.out_channels // 2
        exponent = -math.log(10000) * torch.arange(0, half, dtype=torch.float32) / (half - self.freq_shift)
        angles = timesteps[:, None].float() * torch.exp(exponent)[None, :]
        emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        if self.flip_sin_to_cos:
            emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
        return emb.to(dtype)

    def forward(self, sample, timesteps, context):
        timesteps = timesteps.expand(sample.shape[0])
        temb = self.time_embedding(self.timestep_features(timesteps, sample.dtype))
        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, context)
            skips += block_skips
        x = self.mid_block(x, temb, context)
        for block in self.up_blocks:
            n = len(block.resnets)
            x = block(x, skips[-n:], temb, context)
            del skips[-n:]
        return self.conv_out(F.silu(self.conv_norm_out(x)))

# ----------------------------------------------------------------------------------------------- VAE encoder


class VaeMidBlock(nn.Module):
    def __init__(self, channels, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, 0, groups, 1e-6) for _ in range(2)])
        self.attentions = nn.ModuleList(
            [Attention(channels, 1, channels, bias=True, group_norm=nn.GroupNorm(groups, channels, eps=1e-6))])

    def forward(self, x):
        x = self.resnets[0](x)
        b, c, h, w = x.shape
        attn = self.attentions[0]
        tokens = attn.group_norm(x.view(b, c, h * w)).transpose(1, 2)
        x = attn(tokens).transpose(-1, -2).reshape(b, c, h, w) + x
        return self.resnets[1](x)


class DownEncoderBlock(nn.Module):
    def __init__(self, cin, cout, layers, groups, downsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, 0, groups, 1e-6) for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(cout, 0)]) if downsample else None

    def forward(self, x):
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsamplers is None else self.downsamplers[0](x)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, groups = cfg["block_out_channels"], cfg["norm_num_groups"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            [DownEncoderBlock(ch[max(i - 1, 0)], ch[i], cfg["layers_per_block"], groups, i + 1 < len(ch))
             for i in range(len(ch))])
        self.mid_block = VaeMidBlock(ch[-1], groups)
        self.conv_norm_out = nn.GroupNorm(groups, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class VaeEncoder(nn.Module):
    """AutoencoderKL's encoding half: `encode(x).latent_dist` as (mean, std)."""

    def __init__(self, cfg):
        super().__init__()
        self.encoder = Encoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg["latent_channels"], 2 * cfg["latent_channels"], 1)

    def forward(self, x):
        mean, logvar = torch.chunk(self.quant_conv(self.encoder(x)), 2, dim=1)
        return mean, torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))

# ----------------------------------------------------------------------------------------------- CLIP text


class ClipAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x, causal_mask):
        b, n, d = x.shape
        split = lambda t: t.view(b, n, self.heads, d // self.heads).transpose(1, 2).reshape(b * self.heads, n, -1)
        q, k, v = split(self.q_proj(x) * self.scale), split(self.k_proj(x)), split(self.v_proj(x))
        weights = torch.bmm(q, k.transpose(1, 2)).view(b, self.heads, n, n) + causal_mask
        probs = F.softmax(weights.view(b * self.heads, n, n), dim=-1)
        out = torch.bmm(probs, v).view(b, self.heads, n, -1).transpose(1, 2).reshape(b, n, d)
        return self.out_proj(out)


class ClipMlp(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, inner), nn.Linear(inner, dim)

    def forward(self, x):
        x = self.fc1(x)
        return self.fc2(x * torch.sigmoid(1.702 * x))


class ClipLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dim = cfg["hidden_size"]
        self.self_attn = ClipAttention(dim, cfg["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(dim, eps=cfg["layer_norm_eps"])
        self.mlp = ClipMlp(dim, cfg["intermediate_size"])
        self.layer_norm2 = nn.LayerNorm(dim, eps=cfg["layer_norm_eps"])

    def forward(self, x, causal_mask):
        x = x + self.self_attn(self.layer_norm1(x), causal_mask)
        return x + self.mlp(self.layer_norm2(x))


class ClipEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.position_embedding = nn.Embedding(cfg["max_position_embeddings"], cfg["hidden_size"])


class ClipEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList([ClipLayer(cfg) for _ in range(cfg["num_hidden_layers"])])


class ClipTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = ClipEmbeddings(cfg)
        self.encoder = ClipEncoder(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])


class ClipTextModel(nn.Module):
    """CLIPTextModel's last_hidden_state (what train_dreambooth.py's encode_prompt returns)."""

    def __init__(self, cfg):
        super().__init__()
        self.text_model = ClipTransformer(cfg)

    def forward(self, ids):
        tm = self.text_model
        n = ids.shape[1]
        x = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding(torch.arange(n)[None, :])
        mask = torch.full((n, n), torch.finfo(x.dtype).min).triu(1)[None, None]
        for layer in tm.encoder.layers:
            x = layer(x, mask)
        return tm.final_layer_norm(x)

# ----------------------------------------------------------------------------------------------- the step


def alphas_cumprod(steps=1000):
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, steps, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def add_noise(acp, x0, noise, t):
    a = acp[t].flatten() ** 0.5
    s = (1 - acp[t]).flatten() ** 0.5
    return a[:, None, None, None] * x0 + s[:, None, None, None] * noise


def forward_loss(models, acp, pixel_values, ids, posterior_eps, noise, timesteps, prior_weight=1.0):
    """train_dreambooth.py's loss for a batch [instance..., class...] (prior preservation, epsilon target)."""
    text_encoder, vae, unet = models
    mean, std = vae(pixel_values)
    model_input = (mean + std * posterior_eps) * 0.18215
    noisy = add_noise(acp, model_input, noise, timesteps)
    context = text_encoder(ids)
    pred = unet(noisy, timesteps, context)
    pred, pred_prior = torch.chunk(pred, 2, dim=0)
    target, target_prior = torch.chunk(noise, 2, dim=0)
    instance = F.mse_loss(pred.float(), target.float(), reduction="mean")
    prior = F.mse_loss(pred_prior.float(), target_prior.float(), reduction="mean")
    return instance + prior_weight * prior, instance, prior, model_input, noisy, context, torch.cat([pred, pred_prior])


def train_step(models, params, optimizer, acp, batch, max_grad_norm=1.0):
    loss = forward_loss(models, acp, *batch)[0]
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)  # train_dreambooth.py's default (--set_grads_to_none off)
    return loss.item(), norm.item()

# ----------------------------------------------------------------------------------------------- --check


def read_safetensors(path):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        blob = f.read()
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "F16": torch.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(blob[begin:end])
        t = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]) if raw else torch.empty(0, dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out


def load(module, path, keep=lambda name: True):
    state = {k: v for k, v in read_safetensors(path).items() if keep(k)}
    state.pop("text_model.embeddings.position_ids", None)
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"{path}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def check(golden):
    model_dir = os.path.join(golden, "tiny-sd1")
    cfg = lambda part: json.load(open(os.path.join(model_dir, part, "config.json")))
    unet_cfg = {**SD15_UNET, **{k: v for k, v in cfg("unet").items() if k in SD15_UNET}}
    vae_cfg = {**SD15_VAE, **{k: v for k, v in cfg("vae").items() if k in SD15_VAE}}
    text_cfg = {**SD15_TEXT, **{k: v for k, v in cfg("text_encoder").items() if k in SD15_TEXT}}
    unet, vae, text = UNet2DConditionModel(unet_cfg), VaeEncoder(vae_cfg), ClipTextModel(text_cfg)
    load(unet, os.path.join(model_dir, "unet", "diffusion_pytorch_model.safetensors"))
    vae_state = os.path.join(model_dir, "vae", "diffusion_pytorch_model.safetensors")
    load(vae, vae_state, keep=lambda name: name.startswith(("encoder.", "quant_conv.")))
    load(text, os.path.join(model_dir, "text_encoder", "model.safetensors"))
    vae.requires_grad_(False)
    text.requires_grad_(False)

    index = json.load(open(os.path.join(model_dir, "golden", "index.json")))
    case = next(c for c in index["cases"] if c["name"] == "dreambooth_step")
    g = read_safetensors(os.path.join(model_dir, "golden", case["file"]))
    acp = alphas_cumprod()
    batch = (g["input.pixel_values"], g["input.input_ids"], g["input.posterior_eps"], g["input.noise"],
             g["input.timesteps"])
    params = list(unet.parameters())
    optimizer = torch.optim.AdamW(params, lr=case["params"]["lr"], betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=case["params"]["weight_decay"])
    loss, instance, prior, model_input, noisy, context, pred = forward_loss((text, vae, unet), acp, *batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in unet.named_parameters()}
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    clip_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()

    ours = {"intermediate.model_input": model_input, "intermediate.noisy_model_input": noisy,
            "intermediate.encoder_hidden_states": context, "intermediate.model_pred": pred,
            "output.loss": loss.reshape(1), "output.instance_loss": instance.reshape(1),
            "output.prior_loss": prior.reshape(1), "output.clip_total_norm": clip_norm.reshape(1)}
    weights = dict(unet.named_parameters())
    for name in g:
        for role, table in (("param_before.", before), ("grad.", grads), ("param_after.", weights)):
            if name.startswith(role) and name[len(role):] in table:
                ours[name] = table[name[len(role):]]
    failures = identical = 0
    for name, mine in sorted(ours.items()):
        if name not in g:
            continue
        atol = case["tensors"][name].get("suggested_atol", 1e-5)
        diff = (mine.detach().double() - g[name].double()).abs().max().item()
        ok = diff <= atol
        failures += not ok
        identical += diff == 0
        print(f"{'ok  ' if ok else 'FAIL'} {name:70s} max|diff| {diff:.3g} (atol {atol:.3g})")
    compared = sum(1 for n in ours if n in g)
    print(f"{compared} tensors compared: {identical} bit-identical, {failures} outside the reference's tolerance")
    return 1 if failures or compared < 10 else 0

# ----------------------------------------------------------------------------------------------- --bench


def bench(resolution, steps, threads, seed):
    torch.manual_seed(seed)
    unet, vae, text = UNet2DConditionModel(SD15_UNET), VaeEncoder(SD15_VAE), ClipTextModel(SD15_TEXT)
    vae.requires_grad_(False)
    text.requires_grad_(False)
    params = list(unet.parameters())
    optimizer = torch.optim.AdamW(params, lr=5e-6, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    acp = alphas_cumprod()
    latent = resolution // 8
    ids = torch.tensor([[49406, 320, 1125, 539, 48136, 1929] + [49407] * 71,
                        [49406, 320, 1125, 539, 1929] + [49407] * 72])
    print(f"reference step (PyTorch {torch.__version__} eager, {threads} threads): SD1.5 shapes, random weights, "
          f"fp32, {resolution}x{resolution}, batch 1 + 1 prior image, {steps} steps"
          f"{', gradient checkpointing' if GRADIENT_CHECKPOINTING else ''}", flush=True)
    times = []
    for step in range(1, steps + 1):
        batch = (torch.rand(2, 3, resolution, resolution) * 2 - 1, ids, torch.randn(2, 4, latent, latent),
                 torch.randn(2, 4, latent, latent), torch.randint(0, 1000, (2,)))
        start = time.perf_counter()
        loss, norm = train_step((text, vae, unet), params, optimizer, acp, batch)
        times.append(time.perf_counter() - start)
        print(f"step {step}: {times[-1]:.3f} s (loss {loss:.4f}, grad norm {norm:.3f})", flush=True)
    timed = times[1:] if len(times) > 1 else times
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"reference s/step (mean after the first): {sum(timed) / len(timed):.3f}")
    print(f"reference peak RSS MiB: {peak_mib:.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", metavar="GOLDEN", help="compare with the golden dreambooth_step case")
    parser.add_argument("--bench", action="store_true", help="time the step on a full-size SD1.5 shape")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gradient-checkpointing", action="store_true", help="the UNet's blocks are recomputed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global GRADIENT_CHECKPOINTING
    GRADIENT_CHECKPOINTING = args.gradient_checkpointing
    if args.check:
        sys.exit(check(args.check))
    if args.bench:
        bench(args.resolution, args.steps, args.threads, args.seed)
        return
    parser.print_help()
    sys.exit(2)


if __name__ == "__main__":
    main()
