"""Loads metagrad checkpoints into PyTorch modules, as docs/checkpoints.md tells a user to, and prints
the modules' outputs as JSON. The safetensors reader is written here from the format's specification
(Debian has no package of the `safetensors` library); `safetensors.torch.load_file` returns the same
dict of tensors.

usage: pytorch_load.py CONV4_CHECKPOINT LSTM_CHECKPOINT INPUTS
"""
import json
import struct
import sys

import torch
from torch import nn

DTYPES = {"F32": torch.float32, "F64": torch.float64}


def load_file(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


# metagrad's names for a layer's tensors, and PyTorch's.
RENAME = {"w": "weight", "b": "bias", "scale": "weight", "shift": "bias"}


def model_state(tensors):
    """The model's parameters (params.*) under PyTorch's names."""
    out = {}
    for name, t in tensors.items():
        if name.startswith("params."):
            *path, last = name[len("params."):].split(".")
            out[".".join(path + [RENAME.get(last, last)])] = t
    return out


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout, track_running_stats=False)   # batch statistics, as metagrad's default

    def forward(self, x):
        return nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)


class Conv4(nn.Module):
    def __init__(self, filters, ways, side):
        super().__init__()
        self.blocks = nn.ModuleList([Block(1 if i == 0 else filters, filters) for i in range(4)])
        self.head = nn.Linear(filters * side * side, ways)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(torch.flatten(x, 1))


def main(conv4_file, lstm_file, inputs_file):
    inputs = load_file(inputs_file)
    state = model_state(load_file(conv4_file))
    filters, ways = state["blocks.0.conv.weight"].shape[0], state["head.weight"].shape[0]
    net = Conv4(filters, ways, 1)
    net.load_state_dict(state, strict=True)
    logits = net(inputs["x"])

    lstm = load_file(lstm_file)
    hidden = lstm["params.wh"].shape[1]
    cell = nn.LSTMCell(lstm["params.wx"].shape[1], hidden)
    # Gates in the same order (input, forget, cell, output); one bias in metagrad, two in PyTorch.
    cell.load_state_dict({"weight_ih": lstm["params.wx"], "weight_hh": lstm["params.wh"], "bias_ih": lstm["params.b"],
                          "bias_hh": torch.zeros(4 * hidden)}, strict=True)
    h, c = cell(inputs["seq"], (inputs["h"], inputs["c"]))
    print(json.dumps({"logits": logits.detach().flatten().tolist(), "h": h.detach().flatten().tolist(), "c": c.detach().flatten().tolist(),
                      "names": sorted(state)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
