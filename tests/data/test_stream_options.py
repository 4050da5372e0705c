"""The samplers' streaming options as one typed object, with the keyword form kept (issue 18)."""

from __future__ import annotations

import inspect

import pytest
import torch

from flowsim.data import PairSampler, StreamOptions, WindowSampler
from flowsim.errors import ConfigError


def test_keyword_form_and_options_give_the_same_batches(fhn_store):
    kw = dict(split="all", seed=5, chunks_in_memory=3, dtype=torch.float64, return_index=True)
    a = PairSampler(fhn_store, batch_size=32, **kw)
    b = PairSampler(fhn_store, batch_size=32, stream=StreamOptions(**kw))
    assert a.stream == b.stream and a.dtype == torch.float64 and a.return_index
    for x, y in zip(a, b):
        assert sorted(x) == sorted(y) and all(torch.equal(x[k], y[k]) for k in x)
    w = WindowSampler(fhn_store, window=3, batch_size=8, stream=StreamOptions(split="val"))
    assert w.split == "val" and next(iter(w))["x"].shape == (8, 3, 2)


def test_bad_stream_options_are_refused(fhn_store):
    with pytest.raises(ConfigError, match="not both"):
        PairSampler(fhn_store, stream=StreamOptions(), seed=3)
    with pytest.raises(ConfigError, match="unknown sampler option.*'sead'"):
        PairSampler(fhn_store, sead=3)
    with pytest.raises(ConfigError, match="StreamOptions"):
        WindowSampler(fhn_store, window=2, stream={"seed": 3})
    with pytest.raises(ConfigError, match="fractions"):
        StreamOptions(fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="floating"):
        StreamOptions(dtype=torch.int64)


@pytest.mark.parametrize("cls", [PairSampler, WindowSampler])
def test_samplers_take_at_most_ten_named_parameters(cls):
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    assert len(params) <= 10, [p.name for p in params]
