"""Pure reading of what the cluster holds: instance states, role status, requests, heals, pins.

Every function takes API objects as dicts and returns a decision or a status; none has a side
effect, so the control loop's decisions are unit-tested from hand-made pods.
"""
