"""Headless simulations: the real arena, game and sync code on a virtual clock, no sockets.

``python -m simulations.race`` races seeded matches with bot drivers and
prints what they came to. :mod:`simulations.headless` is the socket-free
server loop and client, :mod:`simulations.racing` runs the matches,
:mod:`simulations.summary` and :mod:`simulations.report` turn them into
statistics, tables and a figure.
"""
