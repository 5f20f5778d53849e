"""Pure desired state: a VMRole -> the dicts the operator keeps in the cluster, one file per kind.

Nothing here talks to a cluster, so the whole desired state is unit-tested and diffed
(`drift.child_differs`) against what exists.
"""
