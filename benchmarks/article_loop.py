"""E1's explosion run written the way the article writes it (seed 002, NNDL practice book 6.2).

The reference that benchmarks/bench_srn.py times gradexp against: a DataLoader over the digit-sum
examples (batch 64, no shuffle), the book's RunnerV3 step (forward, sum-reduced cross-entropy,
backward, `custom_print_log`, SGD step, clear the gradients), `custom_print_log` reading each
parameter's gradient L2 norm to the host with `.numpy()` through `model.named_parameters()`,
and a dev evaluation every `eval_every` steps that saves the model when the dev accuracy improves.
The one liberty taken: the article prints the loss and the norms every step; here they are
appended to lists, so terminal speed does not enter the timing.

The data and the model come from gradexp's builders, so both sides train the same network on
the same examples from the same initial weights.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gradexp.config.schema import ExperimentConfig
from gradexp.data import DATASETS
from gradexp.models import MODELS


@dataclass(frozen=True)
class LoopTiming:
    steps: int
    seconds: float
    cpu_seconds: float
    grad_norms: dict[str, list[float]]


@torch.no_grad()
def dev_accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for inputs, labels in loader:
        predictions = model(inputs.to(device)).argmax(dim=-1)
        correct += int((predictions == labels.to(device)).sum())
        total += len(labels)
    model.train()
    return correct / total


def train_like_the_article(config: ExperimentConfig, device: torch.device) -> LoopTiming:
    """Train `config` (an E1 config: sgd, cross-entropy, no clipping) with the article's loop; time the loop only."""
    train_config = config.train
    dataset = DATASETS.get(config.data.name)(train_config.seed, **config.data.params)
    torch.manual_seed(train_config.seed)
    # The book's SRN computes the recurrence step by step and lets autograd differentiate it: the loop backend.
    model = MODELS.get(config.model.name)(dataset.spec, **{**config.model.params, "backend": "loop"}).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.optimizer.params["lr"])
    loss_fn = nn.CrossEntropyLoss(reduction=config.loss.params["reduction"])
    train_loader = DataLoader(TensorDataset(dataset.train.inputs, dataset.train.targets),
                              batch_size=train_config.batch_size)
    dev_loader = DataLoader(TensorDataset(dataset.dev.inputs, dataset.dev.targets),
                            batch_size=train_config.batch_size)
    total_steps = train_config.epochs * len(train_loader)
    grad_norms: dict[str, list[float]] = {name: [] for name, _ in model.named_parameters()}
    losses: list[float] = []
    best_score = 0.0
    step = 0
    with tempfile.TemporaryDirectory() as folder:
        save_path = Path(folder) / "srn_explosion_model.pt"
        started, cpu_started = time.perf_counter(), time.process_time()
        model.train()
        for _ in range(train_config.epochs):
            for inputs, labels in train_loader:
                logits = model(inputs.to(device))
                loss = loss_fn(logits, labels.to(device))
                losses.append(loss.item())
                loss.backward()
                for name, param in model.named_parameters():  # the article's custom_print_log
                    grad_norms[name].append(torch.norm(param.grad, p=2).cpu().numpy())
                optimizer.step()
                optimizer.zero_grad()
                step += 1
                if step % train_config.eval_every == 0 or step == total_steps:
                    score = dev_accuracy(model, dev_loader, device)
                    if score > best_score:
                        best_score = score
                        torch.save(model.state_dict(), save_path)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return LoopTiming(step, seconds, cpu_seconds, {name: [float(v) for v in values] for name, values in grad_norms.items()})
