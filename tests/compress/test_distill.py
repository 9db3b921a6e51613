"""Knowledge distillation: the loss against a hand computation, a few steps that lower it, errors."""

from __future__ import annotations

import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from hwtune.compress import distill, distillation_loss
from hwtune.exceptions import ConfigError
from hwtune.train import get_family

S = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]
TCH = [[1.0, 1.0, 0.0], [-1.0, 2.0, 0.5]]
Y = [0, 2]


def _softmax(z: list[float]) -> list[float]:
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def _hand(beta: float, T: float) -> float:
    """The formula in plain Python: batch means of CE and of KL(p_teacher || p_student) at temperature T."""
    ce = sum(-math.log(_softmax(s)[y]) for s, y in zip(S, Y)) / len(Y)
    kl = 0.0
    for s, t in zip(S, TCH):
        ps, pt = _softmax([v / T for v in s]), _softmax([v / T for v in t])
        kl += sum(a * math.log(a / b) for a, b in zip(pt, ps))
    kl /= len(S)
    return (1 - beta) * ce + beta * T * T * kl


@pytest.mark.parametrize(("beta", "T"), [(0.5, 4.0), (0.3, 1.0), (1.0, 2.5), (0.0, 3.0)])
def test_loss_matches_hand_computation(beta: float, T: float) -> None:
    got = distillation_loss(torch.tensor(S), torch.tensor(TCH), torch.tensor(Y), beta, T)
    assert float(got) == pytest.approx(_hand(beta, T), rel=1e-5)


def test_beta_zero_is_plain_cross_entropy() -> None:
    s = torch.tensor(S)
    got = distillation_loss(s, torch.tensor(TCH) * 100, torch.tensor(Y), 0.0, 4.0)
    assert float(got) == pytest.approx(float(torch.nn.functional.cross_entropy(s, torch.tensor(Y))), rel=1e-6)


def test_student_equal_to_teacher_has_no_kl_term() -> None:
    s = torch.tensor(S)
    assert float(distillation_loss(s, s.clone(), torch.tensor(Y), 1.0, 3.0)) == pytest.approx(0.0, abs=1e-6)


def test_gradients_reach_the_student_not_the_teacher() -> None:
    s, t = torch.tensor(S, requires_grad=True), torch.tensor(TCH, requires_grad=True)
    distillation_loss(s, t, torch.tensor(Y), 0.5, 2.0).backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0
    assert t.grad is None


@pytest.mark.parametrize(("beta", "T", "field"), [(-0.1, 4.0, "distill_beta"), (1.5, 4.0, "distill_beta"), (float("nan"), 4.0, "distill_beta"),
                                                  ("a", 4.0, "distill_beta"), (0.5, 0.0, "distill_T"), (0.5, -2.0, "distill_T"), (0.5, float("inf"), "distill_T")])
def test_bad_params_name_the_field(beta: Any, T: Any, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        distillation_loss(torch.tensor(S), torch.tensor(TCH), torch.tensor(Y), beta, T)
    assert e.value.field == field and e.value.fix


def _loader(digits: Any, n: int = 256, batch: int = 64) -> list[tuple[Any, Any]]:
    x, y = torch.as_tensor(digits.x_train[:n]), torch.as_tensor(digits.y_train[:n])
    return list(zip(x.split(batch), y.split(batch)))


def test_a_few_distillation_steps_reduce_the_loss(digits: Any, trained_cnn: Any) -> None:
    torch.manual_seed(3)
    student = get_family("cnn").build({"conv_layers": 1, "filters_0": 4, "dense_units": 16}, (1, 8, 8), 10)
    loader = _loader(digits, n=512, batch=32)
    x, y = torch.as_tensor(digits.x_val), torch.as_tensor(digits.y_val)

    def held_out() -> float:  # the loss on the validation split, which distill never sees
        with torch.no_grad():
            return float(distillation_loss(student.eval()(x), trained_cnn(x), y, 0.7, 4.0))

    before = held_out()
    r = distill(student, trained_cnn, loader, epochs=3, lr=1e-2, beta=0.7, T=4.0, seed=0)
    assert len(r.losses) == 3 and r.steps == 3 * len(loader)
    assert r.losses[-1] < r.losses[0]
    assert held_out() < 0.7 * before, (before, r.losses)
    assert not trained_cnn.training  # the teacher's mode is restored


def test_distill_is_seeded(digits: Any, trained_cnn: Any) -> None:
    def run() -> list[float]:
        torch.manual_seed(5)
        s = get_family("cnn").build({"conv_layers": 1, "filters_0": 4, "dense_units": 16, "dropout": 0.2}, (1, 8, 8), 10)
        return distill(s, trained_cnn, _loader(digits, 128), epochs=2, optimizer="sgd", lr=0.05, seed=7).losses

    assert run() == run()


def test_distill_errors_name_the_field(digits: Any, trained_cnn: Any) -> None:
    student = get_family("cnn").build({"conv_layers": 1, "filters_0": 4}, (1, 8, 8), 10)
    with pytest.raises(ConfigError) as e:
        distill(student, trained_cnn, _loader(digits), beta=2.0)
    assert e.value.field == "distill_beta"
    with pytest.raises(ConfigError) as e:
        distill(student, trained_cnn, _loader(digits), T=0)
    assert e.value.field == "distill_T"
    with pytest.raises(ConfigError) as e:
        distill(student, trained_cnn, _loader(digits), epochs=0)
    assert e.value.field == "distill_epochs"
    with pytest.raises(ConfigError) as e:
        distill(student, trained_cnn, [])
    assert e.value.field == "distill"
    with pytest.raises(ConfigError) as e:
        distill(student, trained_cnn, _loader(digits), optimizer="lion")
    assert "optimizer" in e.value.field
