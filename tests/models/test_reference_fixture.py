"""The small pieces of ``models/reference_fixture`` the benchmarks rely on: the reference's top-10 over the
flattened (query, class) scores and the share of it another run keeps."""

from __future__ import annotations

import torch

from ovavss_cli.models.reference_fixture import kept_share, top_pairs


def test_top_pairs_pick_over_the_flattened_queries_and_classes():
    query_ids = torch.tensor([3, 7, 9])
    probs = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.3, 0.3, 0.4]])
    assert top_pairs(query_ids, probs, 3) == {(3, 1), (7, 0), (9, 2)}  # two of the best are in other rows
    assert len(top_pairs(query_ids, probs, 100)) == probs.numel()  # k larger than the pairs: all of them


def test_kept_share_counts_the_parity_pairs_a_run_holds():
    parity = [(3, 1), (7, 0), (9, 2), (9, 0)]
    assert kept_share([(7, 0), (5, 5), (9, 0)], parity) == 0.5
    assert kept_share(parity, parity) == 1.0 and kept_share([], parity) == 0.0
