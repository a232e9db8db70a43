"""k-NN probe: how well a frozen encoder's pooled features separate the classes.

The usual quick measure of a self-supervised foundation (DINO's weighted k-NN): no training, so
two foundations (say after 12 and after 100 MAE epochs) compare in a minute on CPU, before an
hour of fine-tuning is spent on either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Accuracy of a cosine-similarity k-NN vote, each neighbour weighted by ``exp(sim / T)``."""
    if not 1 <= k <= len(train_features):
        raise ValueError(f"k={k}; expected 1..{len(train_features)} (the number of reference features)")
    if train_features.shape[1] != query_features.shape[1]:
        raise ValueError(f"feature widths differ: {train_features.shape[1]} (reference) vs {query_features.shape[1]}")
    reference = F.normalize(train_features.float(), dim=1)
    query = F.normalize(query_features.float(), dim=1)
    num_classes = int(max(train_labels.max(), query_labels.max())) + 1
    correct = 0
    for start in range(0, len(query), 1024):
        sim, idx = (query[start : start + 1024] @ reference.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), num_classes).scatter_add_(1, train_labels[idx], (sim / temperature).exp())
        correct += int((votes.argmax(dim=1) == query_labels[start : start + 1024]).sum())
    return correct / len(query)
