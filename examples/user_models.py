"""Networks as a user writes them: a ResNet-18, a MobileNetV2 and a small CNN with concatenations.

Each factory takes no argument and returns a model for 1 x 28 x 28 images
and 10 classes (the embedded Fashion-MNIST); ``lightnas run --from-model
examples.user_models:resnet18 --weights resnet18.pt`` makes one elastic. The
``*_tiny`` factories are narrow copies for tests. Plain PyTorch, written
without lightnas in mind.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 for small images: a 3x3 stem of stride 2 instead of the 7x7 and the max-pool."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, c = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            out = width * mult
            layers.append(nn.Sequential(BasicBlock(c, out, 1 if i == 0 else 2), BasicBlock(out, out, 1)))
            c = out
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) for 28 x 28 images: strides of 1 where 224-pixel inputs have the first two."""

    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 1),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )
    """(expansion, channels, blocks, stride) per stage."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: float = 1.0, last: int = 1280):
        super().__init__()
        c = max(8, int(32 * width))
        features: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6(inplace=True))
        ]
        for t, ch, n, s in self.SETTINGS:
            out = max(8, int(ch * width))
            for i in range(n):
                features.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        features.append(nn.Sequential(nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


class Mixed(nn.Module):
    """Inception-style: three branches concatenated along the channels."""

    def __init__(self, c_in: int, c: int):
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.b3 = nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.b5 = nn.Sequential(
            nn.Conv2d(c_in, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, c, 5, padding=2, groups=c, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x)], dim=1)


class ConcatCNN(nn.Module):
    """A small CNN of concatenated branches, a squeeze-excitation gate and a flattening classifier."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU())
        self.mix1 = Mixed(width, width)
        self.mix2 = Mixed(3 * width, 2 * width)
        self.gate = nn.Sequential(nn.Linear(6 * width, width), nn.ReLU(), nn.Linear(width, 6 * width), nn.Sigmoid())
        self.head = nn.Linear(6 * width * 3 * 3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mix1(self.stem(x))
        x = self.mix2(F.max_pool2d(x, 2))
        b, c = x.shape[0], x.shape[1]
        x = x * self.gate(x.mean((2, 3))).view(b, c, 1, 1)
        x = F.avg_pool2d(x, 2)
        return self.head(torch.flatten(x, 1))


def resnet18() -> nn.Module:
    return ResNet18()


def mobilenet_v2() -> nn.Module:
    return MobileNetV2()


def concat_cnn() -> nn.Module:
    return ConcatCNN()


def resnet18_tiny() -> nn.Module:
    return ResNet18(width=8)


def mobilenet_v2_tiny() -> nn.Module:
    return MobileNetV2(width=0.25, last=64)


def concat_cnn_tiny() -> nn.Module:
    return ConcatCNN(width=8)
