"""A sigmoid (SigLIP-style) pairwise loss in JAX with a learned logit scale and bias.

    python -m proofs_checks verify examples/variants/jax_sigmoid_learned_bias.py:sigmoid_loss \
        --claim same-subspace-as-clip --inputs embeddings --param logit_scale=1 --param logit_bias=-2

Every pair is a binary problem (positive on the diagonal), so the loss's minimiser
is not CLIP's, but it identifies the same top canonical subspace: the
``same-subspace-as-clip`` claim is the one to ask.  Needs jax (pip install ".[jax]").
"""
import jax.numpy as jnp
from jax.nn import log_sigmoid


def sigmoid_loss(za, zb, logit_scale, logit_bias):
    logits = logit_scale * za @ zb.T + logit_bias
    n = logits.shape[0]
    labels = 2.0 * jnp.eye(n) - 1.0
    return -jnp.sum(log_sigmoid(labels * logits)) / n
