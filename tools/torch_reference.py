#!/usr/bin/python3
"""PyTorch reference state for histocnn's whole-network test.

Builds the paper's network (conv 32-32-64 3x3 valid + ReLU + max-pool 2,
dense 64 + ReLU, dropout 0.5, dense 2, softmax cross-entropy) in PyTorch with
weights and inputs given by closed-form formulas that the C++ test reproduces,
draws dropout masks with histocnn's counter hash, and records:
  * the gradients of the first step (per tensor: sum, sum of squares, first 8),
  * the losses of 10 Adam steps (Keras defaults: lr 1e-3, betas 0.9/0.999, eps 1e-7),
  * the parameters after the 10 steps (per tensor: sum, first 8);
and again with AdamW (weight decay 0.05) under torch's CosineAnnealingLR over
the 10 steps ("adamw_cosine": the learning rates, losses and final parameters);
and a batch-norm network with global average pooling ("batch_norm": conv 8 bn,
conv 16 bn, gap, dense 16, dropout 0.5, dense 2; 10 Adam steps in train mode,
then the running statistics, num_batches_tracked and eval-mode probabilities).
Run: /usr/bin/python3 tools/torch_reference.py > tests/data/torch_reference.json
(Debian's python3-torch is enough.)
"""
import json
import math

import torch

M = (1 << 64) - 1
BATCH, SIZE, STEPS, DROPOUT_SEED = 4, 32, 10, 12345


def splitmix64(state):
    z = (state + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def counter_uniform(seed, stream, index):
    s = seed ^ ((stream * 0xD1B54A32D192ED03) & M) ^ ((index * 0x9E3779B97F4A7C15) & M)
    return (splitmix64(s) >> 40) / 16777216.0


def formula_tensor(shape, tensor_index, limit):
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return (limit * torch.sin(1.7 * i + 0.3 * tensor_index)).float().reshape(shape)


class BnGapNet(torch.nn.Module):
    """conv 8 kernel=3 pool=2 pad=same bn; conv 16 kernel=3 pool=2 pad=same bn; gap;
    dense 16; dropout 0.5; dense 2"""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.fc1 = torch.nn.Linear(16, 16)
        self.fc2 = torch.nn.Linear(16, 2)

    def forward(self, x, mask):
        pool = torch.nn.functional.max_pool2d
        x = pool(torch.relu(self.bn1(self.conv1(x))), 2)
        x = pool(torch.relu(self.bn2(self.conv2(x))), 2)
        x = x.mean(dim=(2, 3))
        x = torch.relu(self.fc1(x)) * mask
        return self.fc2(x)


BN_NAMES = ["conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias",
            "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def batch_norm_reference(images, labels, summary):
    """The batch-norm network: weights by formula (BN scales 1 + 0.1 sin, shifts
    0.1 sin), 10 Adam steps in train mode, then eval-mode probabilities."""
    net = BnGapNet()
    params = dict(net.named_parameters())
    with torch.no_grad():
        for k, name in enumerate(BN_NAMES):
            p = params[name]
            if name.startswith("bn"):
                value = formula_tensor(p.shape, k, 0.1)
                p.copy_(value + 1.0 if name.endswith("weight") else value)
            else:
                fan = p.shape[1] * (p[0, 0].numel() if p.dim() == 4 else 1) if p.dim() > 1 else 64
                p.copy_(formula_tensor(p.shape, k, 1.0 / math.sqrt(fan)))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)

    def mask_for(step):
        stream = (step + 1) * 64 + 0
        values = [2.0 if counter_uniform(DROPOUT_SEED, stream, j) >= 0.5 else 0.0
                  for j in range(BATCH * 16)]
        return torch.tensor(values).reshape(BATCH, 16)

    net.train()
    losses, first_grads = [], None
    for step in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(images, mask_for(step)), labels)
        loss.backward()
        if step == 0:
            first_grads = {name: summary(params[name].grad) for name in BN_NAMES}
        losses.append(loss.item())
        opt.step()
    net.eval()
    with torch.no_grad():
        probs = torch.softmax(net(images, torch.ones(BATCH, 16)), dim=1)
    buffers = dict(net.named_buffers())
    return {"losses": losses, "first_step_gradients": first_grads,
            "final_parameters": {name: summary(params[name]) for name in BN_NAMES},
            "buffers": {name: (int(t.item()) if t.dtype == torch.int64 else t.double().tolist())
                        for name, t in buffers.items()},
            "eval_probabilities": probs.double().flatten().tolist()}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 32, 3)
        self.conv2 = torch.nn.Conv2d(32, 32, 3)
        self.conv3 = torch.nn.Conv2d(32, 64, 3)
        self.fc1 = torch.nn.Linear(64 * 2 * 2, 64)
        self.fc2 = torch.nn.Linear(64, 2)

    def forward(self, x, mask):
        pool = torch.nn.functional.max_pool2d
        relu = torch.relu
        x = pool(relu(self.conv1(x)), 2)
        x = pool(relu(self.conv2(x)), 2)
        x = pool(relu(self.conv3(x)), 2)
        x = relu(self.fc1(torch.flatten(x, 1))) * mask
        return self.fc2(x)


def main():
    torch.manual_seed(0)
    net = Net()
    names = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight",
             "conv3.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    params = dict(net.named_parameters())
    with torch.no_grad():
        for k, name in enumerate(names):
            p = params[name]
            fan = p.shape[1] * (p[0, 0].numel() if p.dim() == 4 else 1) if p.dim() > 1 else 64
            p.copy_(formula_tensor(p.shape, k, 1.0 / math.sqrt(fan)))
    n = BATCH * 3 * SIZE * SIZE
    i = torch.arange(n, dtype=torch.float64)
    images = (0.5 + 0.5 * torch.sin(0.013 * i)).float().reshape(BATCH, 3, SIZE, SIZE)
    labels = torch.tensor([0, 1, 1, 0])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)

    def mask_for(step):  # step: 0-based index of the step being computed
        stream = (step + 1) * 64 + 0  # dense layer 0 (fc1)
        values = [2.0 if counter_uniform(DROPOUT_SEED, stream, j) >= 0.5 else 0.0
                  for j in range(BATCH * 64)]
        return torch.tensor(values).reshape(BATCH, 64)

    def summary(t):
        flat = t.detach().double().flatten()
        return {"sum": flat.sum().item(), "sumsq": (flat * flat).sum().item(),
                "first": flat[:8].tolist()}

    def train(opt, scheduler=None):
        losses, first_grads, rates = [], None, []
        for step in range(STEPS):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(images, mask_for(step)), labels)
            loss.backward()
            if step == 0:
                first_grads = {name: summary(params[name].grad) for name in names}
            losses.append(loss.item())
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            if scheduler:
                scheduler.step()
        return losses, first_grads, rates

    initial = {name: params[name].detach().clone() for name in names}
    losses, first_grads, _ = train(opt)
    final = {name: summary(params[name]) for name in names}
    with torch.no_grad():
        for name in names:
            params[name].copy_(initial[name])
    adamw = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7,
                              weight_decay=0.05)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(adamw, T_max=STEPS, eta_min=1e-4)
    w_losses, _, w_rates = train(adamw, cosine)
    out = {
        "config": {"batch": BATCH, "size": SIZE, "steps": STEPS, "dropout_seed": DROPOUT_SEED,
                   "torch": torch.__version__},
        "losses": losses,
        "first_step_gradients": first_grads,
        "final_parameters": final,
        "adamw_cosine": {"weight_decay": 0.05, "lr": 1e-3, "eta_min": 1e-4,
                         "learning_rates": w_rates, "losses": w_losses,
                         "final_parameters": {name: summary(params[name]) for name in names}},
        "batch_norm": batch_norm_reference(images, labels, summary),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
