"""Per-sample noise: the same sample gets the same noise at any batch size, drawn ahead in a
few large calls per generator (not one per step), and on the CPU exactly the numbers of one
call per step."""

import torch

from genbench.harness import seeding
from genbench.harness.seeding import PerSampleNoise, sample_seed


def one_call_per_step(seed, indices, shape, steps, fn=torch.randn):
    gens = [torch.Generator().manual_seed(sample_seed(seed, i)) for i in indices]
    return [torch.stack([fn(shape, generator=g) for g in gens]) for _ in range(steps)]


def test_drawing_ahead_gives_the_numbers_of_one_call_per_step_on_the_cpu():
    for shape in ((1, 28, 28), (3, 32, 32), (96,)):
        noise = PerSampleNoise(7, range(3))
        got = [noise.randn(*shape) for _ in range(300)]
        want = one_call_per_step(7, range(3), shape, 300)
        assert all(torch.equal(a, b) for a, b in zip(got, want)), shape
    noise = PerSampleNoise(7, range(3))
    got = [noise.rand(5) for _ in range(40)]  # uniforms agree for any shape
    assert all(torch.equal(a, b) for a, b in
               zip(got, one_call_per_step(7, range(3), (5,), 40, torch.rand)))


def test_a_sample_gets_its_noise_at_any_batch_size():
    whole = PerSampleNoise(1, range(6))
    steps_whole = [whole.randn(1, 8, 8) for _ in range(20)]
    halves = [PerSampleNoise(1, range(0, 2)), PerSampleNoise(1, range(2, 6))]
    steps_halves = [torch.cat([h.randn(1, 8, 8) for h in halves]) for _ in range(20)]
    assert all(torch.equal(a, b) for a, b in zip(steps_whole, steps_halves))


def test_noise_is_drawn_in_few_calls(monkeypatch):
    calls = []
    real = torch.randn

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(seeding.torch, "randn", counting)
    noise = PerSampleNoise(0, range(4))
    for _ in range(1001):  # x_T and 1000 ancestral steps of a 28 px image
        noise.randn(1, 28, 28)
    per_generator = len(calls) / 4
    ahead = PerSampleNoise.MAX_AHEAD_ELEMS // 784  # 83 steps per call at most
    assert per_generator <= 8 + 1001 / ahead + 1  # 1, 2, 4, ..., 64, then 83 at a time
    assert sum(c[0] for c in calls) / 4 >= 1001
    calls.clear()
    PerSampleNoise(0, range(4)).randn(96)  # a single draw (a GAN's z) draws nothing extra
    assert [c[0] for c in calls] == [1] * 4
