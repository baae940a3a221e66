"""Sparse gradients: an nn.Embedding(sparse=True) bag-of-words model run over two batches before the optimizer
step (gradient accumulation), so the second backward adds to a sparse .grad; then a SparseAdam step."""

import torch
from realworld_io import module_grads, save_grads
from torch import nn

torch.manual_seed(0)


class BagOfWords(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 3, sparse=True)
        self.head = nn.Linear(3, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(tokens).mean(dim=1))


model = BagOfWords()
sparse_opt = torch.optim.SparseAdam(list(model.embedding.parameters()), lr=0.01)
dense_opt = torch.optim.SGD(model.head.parameters(), lr=0.1)
batches = [torch.tensor([[1, 2, 4], [4, 3, 9]]), torch.tensor([[1, 4, 4], [0, 5, 9]])]
labels = [torch.tensor([0, 1]), torch.tensor([1, 1])]

for tokens, label in zip(batches, labels, strict=True):
    loss = nn.functional.cross_entropy(model(tokens), label)
    loss.backward()
    g = model.embedding.weight.grad
    assert g is not None
    print(
        f"loss {loss.item():.6f}; embedding grad sparse={g.is_sparse}, nnz={g._nnz()}, "
        f"sum {g.coalesce().values().sum().item():.6f}"
    )

grads = module_grads(model)
sparse_opt.step()
dense_opt.step()
print(f"embedding row 4 after the step: {[round(v, 6) for v in model.embedding.weight[4].tolist()]}")
save_grads(grads)
