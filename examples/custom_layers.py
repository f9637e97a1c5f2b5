"""Modules of our own for examples/custom_module.cnn, which declares them with `module` lines; `cnndsl.load`
imports this file from the folder of the .cnn file (`cnndsl build` never imports it)."""

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Self-attention over the positions of a feature map (SAGAN, Zhang et al. 2019): the input plus `gamma`
    times the attended values; `gamma` starts at 0, so the layer starts as the identity."""

    def __init__(self, channels, key_channels):
        super().__init__()
        self.channels, self.key_channels = channels, key_channels  # (what `cnndsl decompile` reads back)
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (N, HW, K)
        k = self.key(x).flatten(2)  # (N, K, HW)
        attention = torch.softmax(q @ k / k.shape[1] ** 0.5, dim=-1)  # (N, HW, HW)
        v = self.value(x).flatten(2)  # (N, C, HW)
        return x + self.gamma * (v @ attention.transpose(1, 2)).view(n, c, h, w)


class AttentionPool(nn.Module):
    """Class scores from a feature map: per class, a softmax over the positions weighs that class's score map."""

    def __init__(self, channels, classes):
        super().__init__()
        self.channels, self.classes = channels, classes
        self.attention = nn.Conv2d(channels, classes, 1)
        self.score = nn.Conv2d(channels, classes, 1)

    def forward(self, x):
        weights = torch.softmax(self.attention(x).flatten(2), dim=-1)  # (N, classes, HW)
        return (weights * self.score(x).flatten(2)).sum(-1)  # (N, classes)
