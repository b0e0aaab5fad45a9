"""Visual backbones returning ``{"res2", "res3", "res4", "res5"}`` feature maps at strides 4, 8, 16, 32.

* ``ResNetBackbone``: torchvision's ResNet trunk (``resnet50`` for the reference R50 model, ``resnet18``/
  ``resnet34`` for tiny presets) with ``FrozenBatchNorm2d`` (eps 1e-5, as detectron2). The state_dict
  keys are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1`` ...); ``keymap.py`` renames detectron2
  checkpoints to them.
* ``SwinBackbone``: the Swin Transformer as Mask2Former's ``D2SwinTransformer`` builds it (the reference
  Swin-B model): same module tree and key names (``patch_embed``, ``layers.{s}.blocks.{b}``,
  ``layers.{s}.downsample``, ``norm0``..``norm3``), the same zero padding to patch/window multiples,
  the same shifted-window mask (-100, not -inf) and no absolute position embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import StochasticDepth

FEATURE_NAMES: tuple[str, str, str, str] = ("res2", "res3", "res4", "res5")


@dataclass
class ResNetConfig:
    depth: int = 50  # torchvision resnet18, resnet34 or resnet50
    # Blocks per stage, overriding the depth's (e.g. (1, 1, 1, 1): a ~5M-parameter trunk for tiny presets).
    blocks: tuple[int, int, int, int] | None = None


@dataclass
class SwinConfig:
    """Defaults: Swin-B as in the reference's ``OV_AVSS_SwinB.yaml``."""

    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.3  # stochastic depth, linearly increasing over blocks; only active in training
    patch_size: int = 4
    patch_norm: bool = True


class FrozenBatchNorm2d(torchvision.ops.FrozenBatchNorm2d):
    """torchvision's frozen batch norm (same buffers, eps 1e-5), applied as one fused eval-mode
    ``F.batch_norm`` pass instead of a multiply then an add (what detectron2 does without grad too)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


_TORCHVISION_RESNETS = {  # depth -> (block type, blocks per stage), as torchvision's resnet18/34/50
    18: (torchvision.models.resnet.BasicBlock, (2, 2, 2, 2)),
    34: (torchvision.models.resnet.BasicBlock, (3, 4, 6, 3)),
    50: (torchvision.models.resnet.Bottleneck, (3, 4, 6, 3)),
}


class ResNetBackbone(nn.Module):
    """torchvision ResNet trunk (no avgpool/fc) with frozen batch norm; stride on the 3×3 conv as detectron2's
    ``STRIDE_IN_1X1: False``."""

    def __init__(self, config: ResNetConfig | None = None):
        super().__init__()
        config = config or ResNetConfig()
        if config.depth not in _TORCHVISION_RESNETS:
            raise ValueError(f"ResNet depth must be one of {sorted(_TORCHVISION_RESNETS)}, got {config.depth}")
        block, blocks = _TORCHVISION_RESNETS[config.depth]
        trunk = torchvision.models.resnet.ResNet(block, list(config.blocks or blocks), norm_layer=FrozenBatchNorm2d)
        self.conv1 = trunk.conv1
        self.bn1 = trunk.bn1
        self.layer1, self.layer2, self.layer3, self.layer4 = trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4
        expansion = 4 if config.depth >= 50 else 1
        self.out_channels = {name: 64 * 2**i * expansion for i, name in enumerate(FEATURE_NAMES)}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (N, 3, H, W) -> {"res2": (N, C2, H/4, W/4), ..., "res5": (N, C5, H/32, W/32)}, channels-last."""
        # Channels-last convolutions skip oneDNN's layout reorders: ~1/3 less CPU time here.
        images = images.contiguous(memory_format=torch.channels_last)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(images))), kernel_size=3, stride=2, padding=1)
        features = {}
        for name, layer in zip(FEATURE_NAMES, (self.layer1, self.layer2, self.layer3, self.layer4), strict=True):
            x = layer(x)
            features[name] = x
        return features


# ----------------------------------------------------------------------------------------------- Swin


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ``window`` -> (B·nW, window², C), windows in row-major order."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def window_merge(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of ``window_partition``: (B·nW, window², C) -> (B, H, W, C)."""
    channels = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def shifted_window_mask(height: int, width: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, window², window²) additive mask for shifted windows on a padded (H, W) map.

    After the cyclic shift, a window at the bottom/right edge holds tokens from up to 4 separate image
    regions; tokens of different regions must not attend each other (Swin uses -100, not -inf).
    """
    regions = torch.zeros(1, height, width, 1, device=device)
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, (rows, cols) in enumerate((r, c) for r in bands for c in bands):
        regions[:, rows, cols, :] = i
    region_ids = window_partition(regions, window).squeeze(-1)  # (nW, window²)
    different = region_ids[:, None, :] != region_ids[:, :, None]
    return torch.zeros(different.shape, device=device).masked_fill(different, -100.0)


def relative_position_index(window: int) -> torch.Tensor:
    """(window², window²) index into the ((2·window − 1)², heads) relative position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # (N, N, 2) in [0, 2w-2]
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        # Persistent, as in the reference: official Swin checkpoints carry this buffer.
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """windows (B·nW, N, C) with N = window², mask (nW, N, N) additive or None -> (B·nW, N, C)."""
        count, tokens, channels = windows.shape
        q, k, v = self.qkv(windows).view(count, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)  # (heads, N, N)
        if mask is None:
            attn_bias = bias[None]  # (1, heads, N, N)
        else:
            num_windows = mask.shape[0]
            attn_bias = (bias[None, None] + mask[None, :, None]).expand(count // num_windows, -1, -1, -1, -1)
            attn_bias = attn_bias.reshape(count, self.num_heads, tokens, tokens)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(count, tokens, channels))


class SwinMlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """(Shifted-)window attention + MLP, both pre-norm with stochastic-depth residuals."""

    def __init__(
        self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, qkv_bias: bool, drop_path: float
    ):
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwinMlp(dim, int(dim * mlp_ratio))
        self.drop_path = StochasticDepth(drop_path, mode="row")

    def forward(self, x: torch.Tensor, shift_mask: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, C), shift_mask (nW, window², window²) for the padded map -> (B, H, W, C)."""
        _, height, width, channels = x.shape
        y = self.norm1(x)
        # Pad (after the norm, with zeros, as the reference) to window multiples; padded tokens take part.
        y = F.pad(y, (0, 0, 0, -width % self.window, 0, -height % self.window))
        padded_h, padded_w = y.shape[1:3]
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(y, self.window), shift_mask if self.shift else None)
        y = window_merge(windows, self.window, padded_h, padded_w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y[:, :height, :width, :])
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2×2 neighbours concatenated (order (0,0), (1,0), (0,1), (1,1)), normalised, projected 4C -> 2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C); odd sizes are zero-padded."""
        height, width = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """Blocks alternating regular and shifted windows, then (except the last stage) patch merging."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, config: SwinConfig, drop_paths: list[float], downsample: bool
    ):
        super().__init__()
        self.window = config.window_size
        self.shift = config.window_size // 2
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                num_heads,
                self.window,
                0 if i % 2 == 0 else self.shift,
                config.mlp_ratio,
                config.qkv_bias,
                drop_paths[i],
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, H, W, C) -> (stage output (B, H, W, C), downsampled (B, H/2, W/2, 2C) or None)."""
        height, width = x.shape[1:3]
        padded_h, padded_w = math.ceil(height / self.window) * self.window, math.ceil(width / self.window) * self.window
        shift_mask = shifted_window_mask(padded_h, padded_w, self.window, self.shift, x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x, shift_mask)
        return x, (self.downsample(x) if self.downsample is not None else None)


class PatchEmbed(nn.Module):
    """Non-overlapping patch_size² patches -> embed_dim, after zero padding to patch multiples."""

    def __init__(self, patch_size: int, embed_dim: int, patch_norm: bool):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> (B, H/p, W/p, C) channels-last tokens."""
        height, width = images.shape[-2:]
        images = F.pad(images, (0, -width % self.patch_size, 0, -height % self.patch_size))
        x = self.proj(images).permute(0, 2, 3, 1)
        return self.norm(x) if self.norm is not None else x


class SwinBackbone(nn.Module):
    """Swin Transformer with a LayerNorm ``norm{i}`` on every stage output (Mask2Former's D2SwinTransformer)."""

    def __init__(self, config: SwinConfig | None = None):
        super().__init__()
        config = config or SwinConfig()
        if len(config.depths) != len(FEATURE_NAMES) or len(config.num_heads) != len(FEATURE_NAMES):
            raise ValueError(f"Swin needs {len(FEATURE_NAMES)} stages, got depths {config.depths}")
        self.patch_embed = PatchEmbed(config.patch_size, config.embed_dim, config.patch_norm)
        drop_paths = torch.linspace(0, config.drop_path_rate, sum(config.depths), device="cpu").tolist()
        dims = [config.embed_dim * 2**i for i in range(len(config.depths))]
        starts = [sum(config.depths[:i]) for i in range(len(config.depths))]
        self.layers = nn.ModuleList(
            SwinStage(dim, depth, heads, config, drop_paths[start : start + depth], downsample=i < len(dims) - 1)
            for i, (dim, depth, heads, start) in enumerate(
                zip(dims, config.depths, config.num_heads, starts, strict=True)
            )
        )
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))
        self.out_channels = dict(zip(FEATURE_NAMES, dims, strict=True))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (N, 3, H, W) -> {"res2": (N, C, H/4, W/4), ..., "res5": (N, 8C, H/32, W/32)} (sizes rounded up)."""
        x = self.patch_embed(images)
        features = {}
        for i, (name, stage) in enumerate(zip(FEATURE_NAMES, self.layers, strict=True)):
            out, x = stage(x)
            features[name] = getattr(self, f"norm{i}")(out).permute(0, 3, 1, 2).contiguous()
        return features


def build_backbone(config: ResNetConfig | SwinConfig) -> ResNetBackbone | SwinBackbone:
    """The backbone a config describes; ``backbone.out_channels`` gives the res2..res5 channels."""
    if isinstance(config, ResNetConfig):
        return ResNetBackbone(config)
    if isinstance(config, SwinConfig):
        return SwinBackbone(config)
    raise TypeError(f"unknown backbone config {type(config).__name__}")
