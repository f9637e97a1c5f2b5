"""Modules and functions the generated file defines where it uses them, for ops torch.nn lacks: torchvision's
own modules, copied, so that the file still imports only torch (docs/DESIGN.md), and the centre crop. Each is
its text and the names it imports from torchvision.ops (none here)."""

FROZEN_BATCH_NORM = '''
class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine transform, all four of them buffers:
    torchvision.ops.FrozenBatchNorm2d.
    """

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a BatchNorm2d's state_dict loads: its counter has nothing to set here
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x):
        w = self.weight.reshape(1, -1, 1, 1)
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + self.eps).rsqrt()
        bias = b - rm * scale
        return x * scale + bias

    def __repr__(self):
        return f"{self.__class__.__name__}({self.weight.shape[0]}, eps={self.eps})"
'''

LAYER_NORM_2D = '''
class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of (N, C, H, W): torchvision's LayerNorm2d."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(
            x, self.normalized_shape, self.weight, self.bias, self.eps
        )
        x = x.permute(0, 3, 1, 2)
        return x
'''

CENTER_CROP = '''
def _center_crop(x, size: list[int]):
    """The centre of x, its last len(size) dimensions cut to `size` (where a margin is
    odd, the extra element is cut at the end)."""
    first = x.dim() - len(size)
    for i in range(len(size)):
        x = x.narrow(first + i, (x.shape[first + i] - size[i]) // 2, size[i])
    return x
'''

PAD_TO = '''
def _pad_to(x, size: list[int], mode: str = "constant", value: float = 0.0):
    """x padded to `size`, its last len(size) dimensions, evenly on both sides (where a
    margin is odd, the extra element goes at the end)."""
    first = x.dim() - len(size)
    pads: list[int] = []
    for i in range(len(size) - 1, -1, -1):  # F.pad's order: the last dimension first
        margin = size[i] - x.shape[first + i]
        pads += [margin // 2, margin - margin // 2]
    if mode == "constant":
        return nn.functional.pad(x, pads, value=value)
    return nn.functional.pad(x, pads, mode=mode)
'''

PERMUTE = '''
class Permute(nn.Module):
    """x.permute(*dims) as a module, a stage of nn.Sequential: torchvision.ops.misc.Permute."""

    def __init__(self, *dims: int):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x):
        return torch.permute(x, self.dims)
'''

LAYER_SCALE = '''
class LayerScale(nn.Module):
    """x times a learnt scale (torchvision's CNBlock.layer_scale) as a module, a stage of nn.Sequential."""

    def __init__(self, shape: tuple[int, ...], init: float):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full(shape, init))

    def forward(self, x):
        return x * self.layer_scale
'''

CENTER_CROP_MODULE = '''
class CenterCrop(nn.Module):
    """The centre of x cut to `size` (its last dimensions; where a margin is odd, the
    extra element is cut at the end), a stage of nn.Sequential."""

    def __init__(self, size: tuple[int, ...]):
        super().__init__()
        self.size = list(size)

    def forward(self, x):
        first = x.dim() - len(self.size)
        for i in range(len(self.size)):
            margin = x.shape[first + i] - self.size[i]
            x = x.narrow(first + i, margin // 2, self.size[i])
        return x
'''

HELPERS = {"pad_to": (PAD_TO, ()), "FrozenBatchNorm2d": (FROZEN_BATCH_NORM, ()), "LayerNorm2d": (LAYER_NORM_2D, ()), "center_crop": (CENTER_CROP, ()),
           "Permute": (PERMUTE, ()), "LayerScale": (LAYER_SCALE, ()), "CenterCrop": (CENTER_CROP_MODULE, ())}
