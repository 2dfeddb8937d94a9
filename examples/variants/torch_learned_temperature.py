"""CLIP written in PyTorch as training code writes it: a module on the two encoders'
outputs, with a learnable log-temperature of its own (a CORRECT variant).

    python -m proofs_checks verify examples/variants/torch_learned_temperature.py:LearnedTemperatureClip \
        --claim same-minimizers-as-clip --inputs embeddings

The module's parameter ``log_scale`` is learned with the encoders; the verifier finds
that it acts as a log-scale on the logits (exp(log_scale) * za @ zb.T), so the
minimisers over (encoders, log_scale) form a ray along which the effective similarity
does not change, and it compares that effective similarity with CLIP's.  Needs torch
(pip install ".[torch]").
"""
import torch
import torch.nn.functional as F


class LearnedTemperatureClip(torch.nn.Module):
    def __init__(self, init_log_scale: float = 1.0):
        super().__init__()
        self.log_scale = torch.nn.Parameter(torch.tensor(init_log_scale))

    def forward(self, za, zb):
        logits = self.log_scale.exp() * za @ zb.T
        labels = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
