"""PyTorch references for the vision specs, written directly in torch from the papers' and torchvision's
module structure (the same parameter names as the specs), for tests/specs/test_vision_specs.py."""

from __future__ import annotations

import math

import torch

__all__ = ["torch_ddpm", "torch_efficientnet_b0"]


def torch_efficientnet_b0(classes):
    """EfficientNet-B0 written directly in torch with torchvision's module structure (features.N.M.block.K)."""
    nn, F = torch.nn, torch.nn.functional

    def cna(cin, cout, k, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, *([nn.SiLU()] if act else []))

    class SqueezeExcitation(nn.Module):
        def __init__(self, c, squeeze):
            super().__init__()
            self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)

        def forward(self, x):
            return x * torch.sigmoid(self.fc2(F.silu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))

    class MBConv(nn.Module):
        def __init__(self, cin, expand, k, stride, cout):
            super().__init__()
            hidden = cin * expand                   # B0's channels are already multiples of 8
            layers = [cna(cin, hidden, 1)] if hidden != cin else []
            layers += [cna(hidden, hidden, k, stride, hidden), SqueezeExcitation(hidden, max(1, cin // 4)),
                       cna(hidden, cout, 1, act=False)]
            self.block, self.residual = nn.Sequential(*layers), stride == 1 and cin == cout

        def forward(self, x):
            return self.block(x) + x if self.residual else self.block(x)

    stages = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    features, cin = [cna(3, 32, 3, 2)], 32
    for expand, k, stride, cout, n in stages:
        blocks = []
        for j in range(n):
            blocks.append(MBConv(cin, expand, k, stride if j == 0 else 1, cout))
            cin = cout
        features.append(nn.Sequential(*blocks))
    features.append(cna(cin, 4 * cin, 1))

    class EfficientNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * cin, classes))

        def forward(self, x):
            return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))

    return EfficientNet()


def torch_ddpm(ch, ch_mult, num_res_blocks, attn_resolutions, resolution, groups):
    """The DDPM UNet written directly in torch, from the paper's description (names as the spec's)."""
    nn, F = torch.nn, torch.nn.functional

    def gn(c):
        return nn.GroupNorm(groups, c, eps=1e-6)

    class Res(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.norm1, self.conv1 = gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
            self.temb_proj = nn.Linear(4 * ch, cout)
            self.norm2, self.conv2 = gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
            if cin != cout:
                self.nin_shortcut = nn.Conv2d(cin, cout, 1)

        def forward(self, x, temb):
            h = self.conv1(F.silu(self.norm1(x))) + self.temb_proj(F.silu(temb))[:, :, None, None]
            h = self.conv2(F.silu(self.norm2(h)))
            return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h

    class Attn(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.norm = gn(c)
            self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

        def forward(self, x):
            b, c, hh, ww = x.shape
            h = self.norm(x)
            q = self.q(h).reshape(b, c, hh * ww).permute(0, 2, 1)
            k, v = self.k(h).reshape(b, c, hh * ww), self.v(h).reshape(b, c, hh * ww)
            w = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)
            return x + self.proj_out(torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.temb = nn.Module()
            self.temb.dense = nn.ModuleList([nn.Linear(ch, 4 * ch), nn.Linear(4 * ch, 4 * ch)])
            self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
            self.down, skips, cur, res = nn.ModuleList(), [ch], ch, resolution
            for i, m in enumerate(ch_mult):
                d = nn.Module()
                d.block, d.attn = nn.ModuleList(), nn.ModuleList()
                for _ in range(num_res_blocks):
                    d.block.append(Res(cur, ch * m))
                    cur = ch * m
                    if res in attn_resolutions:
                        d.attn.append(Attn(cur))
                    skips.append(cur)
                if i != len(ch_mult) - 1:
                    d.downsample = nn.Module()
                    d.downsample.conv = nn.Conv2d(cur, cur, 3, stride=2)
                    skips.append(cur)
                    res //= 2
                self.down.append(d)
            self.mid = nn.Module()
            self.mid.block_1, self.mid.attn_1, self.mid.block_2 = Res(cur, cur), Attn(cur), Res(cur, cur)
            ups = []
            for i in reversed(range(len(ch_mult))):
                u = nn.Module()
                u.block, u.attn = nn.ModuleList(), nn.ModuleList()
                for _ in range(num_res_blocks + 1):
                    u.block.append(Res(cur + skips.pop(), ch * ch_mult[i]))
                    cur = ch * ch_mult[i]
                    if res in attn_resolutions:
                        u.attn.append(Attn(cur))
                if i != 0:
                    u.upsample = nn.Module()
                    u.upsample.conv = nn.Conv2d(cur, cur, 3, padding=1)
                    res *= 2
                ups.insert(0, u)
            self.up = nn.ModuleList(ups)
            self.norm_out, self.conv_out = gn(cur), nn.Conv2d(cur, 3, 3, padding=1)

        def forward(self, x, t):
            half = ch // 2
            freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
            args = t.float()[:, None] * freqs[None]
            temb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
            temb = self.temb.dense[1](F.silu(self.temb.dense[0](temb)))
            hs = [self.conv_in(x)]
            for i, d in enumerate(self.down):
                for j, blk in enumerate(d.block):
                    h = blk(hs[-1], temb)
                    hs.append(d.attn[j](h) if len(d.attn) else h)
                if hasattr(d, "downsample"):
                    hs.append(d.downsample.conv(F.pad(hs[-1], (0, 1, 0, 1))))
            h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], temb)), temb)
            for i in reversed(range(len(ch_mult))):
                u = self.up[i]
                for j, blk in enumerate(u.block):
                    h = blk(torch.cat([h, hs.pop()], dim=1), temb)
                    h = u.attn[j](h) if len(u.attn) else h
                if hasattr(u, "upsample"):
                    h = u.upsample.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            return self.conv_out(F.silu(self.norm_out(h)))

    return UNet()
