"""Models as users write them, for tests/test_decompile_user.py: functions in forward, skips kept in variables,
an in-place residual sum, and one op the language lacks."""

import torch
import torch.nn.functional as F
from torch import nn


class LeNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class UNet(nn.Module):
    def __init__(self, classes=2, c=8):
        super().__init__()
        self.enc1 = DoubleConv(3, c)
        self.enc2 = DoubleConv(c, 2 * c)
        self.bottom = DoubleConv(2 * c, 4 * c)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.dec2 = DoubleConv(4 * c, 2 * c)
        self.up1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.dec1 = DoubleConv(2 * c, c)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottom(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


class Residual(nn.Module):
    def __init__(self, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        identity = x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return F.relu(out)


class ResNetLike(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(Residual(16), Residual(16), Residual(16))
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class Scaled(nn.Module):
    """`x * 0.5` in forward: arithmetic with a number, which the language has no form for; and `channels` is not
    kept, so it cannot be declared as an external module either."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(x) * 0.5


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = Scaled(8)

    def forward(self, x):
        return self.head(torch.sigmoid(x))


class Clipped(nn.Module):
    """A module outside the catalog (nn.Hardtanh) and a user's module that stores its constructor's arguments: both
    become external modules."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.clip = nn.Hardtanh(-2.0, 2.0)
        self.gate = Gate(8, 0.5)

    def forward(self, x):
        return self.gate(self.clip(self.conv(x)))


class Gate(nn.Module):
    def __init__(self, channels, scale):
        super().__init__()
        self.channels, self.scale = channels, scale
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.proj(x)) * self.scale


class Up(nn.Module):
    """The usual U-Net decoder step, as PyTorch code writes it: two inputs, the skip concatenated after upsampling."""

    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        return self.conv(torch.cat([x2, x1], dim=1))


class UNet2(nn.Module):
    def __init__(self, classes=2, c=8):
        super().__init__()
        self.inc = DoubleConv(3, c)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(c, 2 * c))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(2 * c, 4 * c))
        self.up1 = Up(4 * c, 2 * c)
        self.up2 = Up(2 * c, c)
        self.outc = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x = self.up1(x3, x2)
        x = self.up2(x, x1)
        return self.outc(x)


class Features(nn.Module):
    """A backbone that returns two maps in a dict, as torchvision's IntermediateLayerGetter does."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x):
        low = self.stem(x)
        return {"low": low, "high": self.down(low)}


class Head(nn.Module):
    """Takes the backbone's dict and reads it by key (LRASPP's head)."""

    def __init__(self, c=8, classes=3):
        super().__init__()
        self.low = nn.Conv2d(c, classes, 1)
        self.high = nn.Conv2d(2 * c, classes, 1)

    def forward(self, features):
        low, high = features["low"], features["high"]
        return self.low(low) + F.interpolate(self.high(high), size=low.shape[-2:], mode="bilinear", align_corners=False)


class Pair(nn.Module):
    """Returns a tuple of two tensors, unpacked by its caller."""

    def __init__(self, c=8):
        super().__init__()
        self.a = nn.Conv2d(c, c, 1)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.a(x), self.b(x)


class Segmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Features()
        self.pair = Pair()
        self.classifier = Head()

    def forward(self, x):
        features = self.backbone(x)
        a, b = self.pair(features["low"])
        out = self.classifier(features)
        return {"out": out, "aux": a * b}


class DenseLayer(nn.Module):
    """DenseNet's layer: called on the list of every earlier map, concatenated inside."""

    def __init__(self, cin, growth):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, inputs):
        return self.conv(F.relu(self.norm(torch.cat(inputs, 1))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers, cin, growth):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"layer{i + 1}", DenseLayer(cin + i * growth, growth))

    def forward(self, x):
        features = [x]
        for _, layer in self.items():
            features.append(layer(features))
        return torch.cat(features, 1)


class TinyDenseNet(nn.Module):
    def __init__(self, growth=4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block1 = DenseBlock(3, 8, growth)
        self.trans = nn.Conv2d(8 + 3 * growth, 8, 1)
        self.block2 = DenseBlock(2, 8, growth)

    def forward(self, x):
        return self.block2(self.trans(self.block1(self.stem(x))))


class Nested(nn.Module):
    """A residual around a concatenation, and a gate added back to its input: merges inside merges."""

    def __init__(self, c=8):
        super().__init__()
        self.a = nn.Conv2d(c, c // 2, 1)
        self.b = nn.Conv2d(c, c // 2, 3, padding=1)
        self.gate = nn.Conv2d(c, c, 1)

    def forward(self, x):
        x = torch.relu(x + torch.cat([self.a(x), self.b(x)], 1))
        return x * torch.sigmoid(self.gate(x)) + x


class WithAux(nn.Module):
    """An auxiliary head that runs only in training."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.aux = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = self.conv(x)
        if self.training:
            return x, self.aux(x)
        return x
