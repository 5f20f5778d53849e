"""Benchmarks of vmrole-operator on the real local cluster (`make bench`; tiny versions in `make test`).

Every comparison runs its two arms alternately (A B A B ...) in the same cluster and reports
medians, p90 and ratios: the machine is shared and noisy, so no single number is trusted.
"""
