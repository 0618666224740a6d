"""Small backbones for the self-built hubs (CPU-sized, 32-64 px input)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convs with BN and an identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class MiniResNet(nn.Module):
    """A ResNet in miniature: 3x3 stride-2 stem, then one basic block per stage.

    With widths (16, 32, 64, 128) a 32 px image gives a 4x4x128 feature map (output stride 8)
    for 0.3 M parameters; the stages are named like torchvision's ResNet (`layer1`...).
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        for i, (cin, cout) in enumerate(zip(widths, widths[1:], strict=False), start=1):
            self.add_module(f"layer{i}", BasicBlock(cin, cout, 1 if i == 1 else 2))
        self.depth = len(widths) - 1
        self.out_channels = widths[-1]

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(1, self.depth + 1):
            x = getattr(self, f"layer{i}")(x)
        return x


class SqueezeExcite(nn.Module):
    """MobileNetV3's channel attention: the pooled map rescales the channels (hard-sigmoid gate)."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, reduced, 1), nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([nn.Hardswish()] if act else []))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: 1x1 expansion, depthwise kxk, optional squeeze-excite, linear 1x1
    projection; identity shortcut when the shape is kept."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int, kernel: int, se: bool):
        super().__init__()
        mid = cin * expand
        layers = [conv_bn(cin, mid, 1)] if expand != 1 else []
        layers.append(conv_bn(mid, mid, kernel, stride, groups=mid))
        if se:
            layers.append(SqueezeExcite(mid, max(8, mid // 4)))
        layers.append(conv_bn(mid, cout, 1, act=False))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


# (expansion, channels, stride, kernel, squeeze-excite): 32 px -> 4x4, like MiniResNet
MOBILENET_BLOCKS = ((1, 16, 1, 3, True), (4, 24, 2, 3, False), (3, 24, 1, 3, False),
                    (4, 40, 2, 5, True), (3, 40, 1, 5, True), (3, 48, 1, 5, True))


class MiniMobileNet(nn.Module):
    """MobileNetV3 in miniature: a 3x3 stride-2 stem, inverted-residual blocks with hard-swish,
    and a final 1x1 conv to `out_channels` (0.07 M parameters with the default blocks)."""

    def __init__(self, blocks: tuple[tuple[int, int, int, int, bool], ...] = MOBILENET_BLOCKS, stem: int = 16,
                 out_channels: int = 128):
        super().__init__()
        layers, cin = [conv_bn(3, stem, 3, 2)], stem
        for expand, cout, stride, kernel, se in blocks:
            layers.append(InvertedResidual(cin, cout, expand, stride, kernel, se))
            cin = cout
        layers.append(conv_bn(cin, out_channels, 1))
        self.features = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x):
        return self.features(x)


def conv_stem(cout: int) -> nn.Sequential:
    """Two 3x3 stride-2 convs (BN, ReLU) in place of a 4x4 patchify stem: the same stride, with the
    locality small data need (Xiao et al. 2021, "Early convolutions help transformers see better").
    With patchify stems, ConvNeXt and Swin in miniature did not learn in `mini`'s 500 SGD steps."""
    return nn.Sequential(nn.Conv2d(3, cout // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(cout // 2), nn.ReLU(),
                         nn.Conv2d(cout // 2, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a [B, C, H, W] map."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7, LayerNorm, 4x MLP with GELU, per-channel layer scale, residual."""

    def __init__(self, dim: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x):
        y = self.mlp(self.norm(self.dwconv(x).permute(0, 2, 3, 1))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class MiniConvNeXt(nn.Module):
    """ConvNeXt in miniature: a stride-4 stem (`conv_stem`), then stages of ConvNeXt blocks joined
    by LayerNorm + 2x2 stride-2 convs; 32 px -> 4x4 map with two stages.

    Layer scale starts at 0.1, not ConvNeXt's 1e-6 (tuned for 300 epochs of AdamW), so that a
    few hundred SGD steps of pre-training move the blocks.
    """

    def __init__(self, dims: tuple[int, ...] = (64, 128), depths: tuple[int, ...] = (1, 2),
                 layer_scale: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = [conv_stem(dims[0])]
        for i, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            if i:
                layers += [LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], dim, 2, 2)]
            layers += [ConvNeXtBlock(dim, layer_scale) for _ in range(depth)]
        self.features = nn.Sequential(*layers)
        self.out_channels = dims[-1]

    def forward(self, x):
        return self.features(x)


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * windows, w * w, C] (windows in row-major order per image)."""
    b, h, wd, c = x.shape
    return x.view(b, h // w, w, wd // w, w, c).transpose(2, 3).reshape(-1, w * w, c)


def window_merge(x: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    """Inverse of `window_partition`."""
    c = x.shape[-1]
    return x.view(-1, h // w, wd // w, w, w, c).transpose(2, 3).reshape(-1, h, wd, c)


def shift_mask(h: int, wd: int, w: int, shift: int, device: torch.device) -> torch.Tensor:
    """Additive attention mask [windows, w*w, w*w] of shifted windows: after the cyclic shift a
    window may join image regions that are not adjacent, and those must not attend to each other."""

    def band(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return (i >= n - w).long() + (i >= n - shift).long()

    region = (band(h)[:, None] * 3 + band(wd)[None, :]).view(1, h, wd, 1).float()
    ids = window_partition(region, w).squeeze(-1)
    return (ids[:, :, None] != ids[:, None, :]).float() * -1e4


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with Swin's learned relative position bias."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        yx = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = yx[:, :, None] - yx[:, None, :] + window - 1
        self.register_buffer("bias_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.bias_table[self.bias_index].permute(2, 0, 1)  # [heads, n, n]
        if mask is not None:
            bias = bias + mask.unsqueeze(1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP on a [B, H, W, C] map, padded to whole windows."""

    def __init__(self, dim: int, heads: int, window: int, shift: int):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1, self.attn = nn.LayerNorm(dim), WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, h, wd, _ = x.shape
        w = self.window
        y = F.pad(self.norm1(x), (0, 0, 0, -wd % w, 0, -h % w))
        hp, wp = y.shape[1:3]
        shift = self.shift if min(hp, wp) > w else 0  # one window sees everything: nothing to shift
        mask = None
        if shift:
            y = torch.roll(y, (-shift, -shift), (1, 2))
            mask = shift_mask(hp, wp, w, shift, y.device).repeat(b, 1, 1)
        y = window_merge(self.attn(window_partition(y, w), mask), w, hp, wp)
        if shift:
            y = torch.roll(y, (shift, shift), (1, 2))
        x = x + y[:, :h, :wd]
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Swin's downsampling: concatenate each 2x2 neighbourhood, LayerNorm, linear projection."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm, self.reduction = nn.LayerNorm(4 * cin), nn.Linear(4 * cin, cout, bias=False)

    def forward(self, x):
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class MiniSwin(nn.Module):
    """Swin Transformer in miniature: a stride-4 stem (`conv_stem`, Swin-T: 4x4 patches) with
    LayerNorm, stages of window-attention blocks alternating plain and shifted windows, patch
    merging between stages, a final LayerNorm; 32 px -> 4x4 map, which one window covers, as in
    Swin-T's last stage.
    """

    def __init__(self, dims: tuple[int, ...] = (48, 96), depths: tuple[int, ...] = (2, 2),
                 heads: tuple[int, ...] = (2, 4), window: int = 4):
        super().__init__()
        self.patch_embed, self.embed_norm = conv_stem(dims[0]), nn.LayerNorm(dims[0])
        layers: list[nn.Module] = []
        for i, (dim, depth, nh) in enumerate(zip(dims, depths, heads, strict=True)):
            if i:
                layers.append(PatchMerging(dims[i - 1], dim))
            layers += [SwinBlock(dim, nh, window, window // 2 if j % 2 else 0) for j in range(depth)]
        self.stages = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1])
        self.out_channels = dims[-1]

    def forward(self, x):
        x = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        return self.norm(self.stages(x)).permute(0, 3, 1, 2)
