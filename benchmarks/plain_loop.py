"""E1's explosion run as a student writes it by hand: the fourth side of benchmarks/bench_srn.py (issue 16).

No DataLoader: the training tensors are sliced directly. Each step: clear the gradients, forward,
loss, backward, the recurrent layer's three gradient norms (W, U, b) read to the host with `.cpu().numpy()`
and the loss with `.item()`, SGD step. A dev evaluation every `eval_every` steps (and after the last
step) keeps a copy of the best weights in memory; at the end the best weights are evaluated on the
test split. Torch computes with its default thread count (one per core) unless told otherwise.

The data and the model come from gradexp's builders, with the SRN backend the config names: the
benchmark runs it with the book's step-by-step SRN (`model.backend: loop`, the model a student writes
from the book) and with gradexp's own `bptt` model (then the work per step is gradexp's, and the
difference is what gradexp does around the steps).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from gradexp.config.schema import ExperimentConfig
from gradexp.data import DATASETS
from gradexp.models import MODELS
from gradexp.threads import torch_threads

# Read at import, before a benchmark sets its own count: what a fresh `python train.py` computes with.
DEFAULT_THREADS = torch.get_num_threads()


@dataclass(frozen=True)
class PlainTiming:
    steps: int
    seconds: float
    cpu_seconds: float
    # seconds of the run until the last dev evaluation (the loop), the rest being the test evaluation
    loop_seconds: float
    grad_norms: dict[str, list[float]]
    test_accuracy: float


@torch.no_grad()
def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = (model(inputs).argmax(dim=-1) == labels).sum().item()
    model.train()
    return correct / len(labels)


def train_plainly(config: ExperimentConfig, device: torch.device, threads: int = DEFAULT_THREADS) -> PlainTiming:
    """Train `config` (an E1 config: sgd, cross-entropy, no clipping) with a hand-written loop; time the loop
    and the test evaluation, not the building of data and model."""
    train = config.train
    dataset = DATASETS.get(config.data.name)(train.seed, **config.data.params)
    torch.manual_seed(train.seed)
    model = MODELS.get(config.model.name)(dataset.spec, **config.model.params).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.optimizer.params["lr"])
    loss_fn = nn.CrossEntropyLoss(reduction=config.loss.params["reduction"])
    train_x, train_y = dataset.train.inputs.to(device), dataset.train.targets.to(device)
    dev_x, dev_y = dataset.dev.inputs.to(device), dataset.dev.targets.to(device)
    test_x, test_y = dataset.test.inputs.to(device), dataset.test.targets.to(device)
    watched = {name: parameter for name, parameter in model.named_parameters()
               if name in model.default_plot_parameters}  # rnn_model.W, .U, .b
    grad_norms: dict[str, list[float]] = {name: [] for name in watched}
    losses: list[float] = []
    steps_per_epoch = -(-len(train_x) // train.batch_size)
    total_steps = train.epochs * steps_per_epoch
    best_accuracy, best_state, step = -1.0, None, 0
    with torch_threads(threads):
        started, cpu_started = time.perf_counter(), time.process_time()
        model.train()
        for _ in range(train.epochs):
            for start in range(0, len(train_x), train.batch_size):
                inputs, labels = train_x[start:start + train.batch_size], train_y[start:start + train.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(inputs), labels)
                loss.backward()
                for name, parameter in watched.items():
                    grad_norms[name].append(parameter.grad.norm().cpu().numpy())
                losses.append(loss.item())
                optimizer.step()
                step += 1
                if step % train.eval_every == 0 or step == total_steps:
                    score = accuracy(model, dev_x, dev_y)
                    if score > best_accuracy:
                        best_accuracy, best_state = score, copy.deepcopy(model.state_dict())
        loop_seconds = time.perf_counter() - started
        model.load_state_dict(best_state)
        test_accuracy = accuracy(model, test_x, test_y)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return PlainTiming(step, seconds, cpu_seconds, loop_seconds,
                       {name: [float(v) for v in values] for name, values in grad_norms.items()}, test_accuracy)
