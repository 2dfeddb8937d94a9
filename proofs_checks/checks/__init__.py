"""Check modules; each registers its checks with :func:`proofs_checks.registry.register`.

Every module in this package is imported by :func:`proofs_checks.registry.all_checks`.
"""
