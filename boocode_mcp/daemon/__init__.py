"""The per-workspace daemon and how front ends reach it.

`wire` (standard library only) finds, starts and greets a workspace's daemon; `relay` passes a
stdio front end's bytes to it; `server` is the daemon itself; `api` is what the CLI asks of it.
Only `wire` and `relay` may be imported by a front end that wants to start fast.
"""
