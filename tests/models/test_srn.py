"""The SRN of E1: its three parameters, its recurrence, and its gradients against finite differences."""

from __future__ import annotations

import math

import torch

from gradexp.data.base import DataSpec
from gradexp.models import MODELS

SPEC = DataSpec(task="classification", input_shape=(6,), output_dim=19, vocab_size=10)


def test_parameters_are_named_and_shaped_as_in_the_book() -> None:
    model = MODELS.get("srn")(SPEC, input_size=32, hidden_size=16)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "embedding.weight": (10, 32),
        "rnn_model.W": (32, 16),
        "rnn_model.U": (16, 16),
        "rnn_model.b": (1, 16),
        "classifier.weight": (19, 16),
        "classifier.bias": (19,),
    }
    assert set(model.default_plot_parameters) == {"rnn_model.W", "rnn_model.U", "rnn_model.b"}


def test_forward_is_the_recurrence() -> None:
    torch.manual_seed(0)
    model = MODELS.get("srn")(SPEC, input_size=4, hidden_size=3)
    digits = torch.randint(0, 10, (5, 6))
    rnn = model.rnn_model
    hidden = torch.zeros(5, 3)
    for t in range(6):
        hidden = torch.tanh(model.embedding(digits[:, t]) @ rnn.W + hidden @ rnn.U + rnn.b)
    torch.testing.assert_close(model(digits), model.classifier(hidden))


def test_gradients_match_finite_differences_in_float64() -> None:
    torch.manual_seed(1)
    rnn = MODELS.get("srn")(SPEC, input_size=3, hidden_size=4).rnn_model.double()
    inputs = torch.randn(2, 5, 3, dtype=torch.float64)

    def last_state(x, W, U, b):
        return torch.func.functional_call(rnn, {"W": W, "U": U, "b": b}, (x,))

    arguments = tuple(t.detach().clone().requires_grad_(True) for t in (inputs, rnn.W, rnn.U, rnn.b))
    assert torch.autograd.gradcheck(last_state, arguments, eps=1e-6, atol=1e-7)


def test_the_books_initialisation_of_every_parameter_and_torchs_as_an_option() -> None:
    """init: book starts the embedding and the classifier as Paddle does (Xavier-uniform, zero bias): tested
    against the uniform distribution's CDF (scipy's Kolmogorov-Smirnov test); init: torch keeps nn.Embedding's
    N(0, 1)."""
    from scipy import stats

    torch.manual_seed(0)
    book = MODELS.get("srn")(SPEC, input_size=32, hidden_size=32)
    bound = math.sqrt(6 / (10 + 32))
    embedding = book.embedding.weight.detach().numpy().ravel()
    assert embedding.min() >= -bound and embedding.max() <= bound
    assert stats.kstest(embedding, "uniform", args=(-bound, 2 * bound)).pvalue > 0.01
    classifier_bound = math.sqrt(6 / (32 + 19))
    weight = book.classifier.weight.detach().numpy().ravel()
    assert stats.kstest(weight, "uniform", args=(-classifier_bound, 2 * classifier_bound)).pvalue > 0.01
    assert torch.count_nonzero(book.classifier.bias) == 0
    torch_default = MODELS.get("srn")(SPEC, input_size=32, hidden_size=32, init="torch")
    values = torch_default.embedding.weight.detach().numpy().ravel()
    assert stats.kstest(values, "norm").pvalue > 0.01 and torch.count_nonzero(torch_default.classifier.bias) > 0
