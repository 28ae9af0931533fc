"""The mobile-gaming example pipelines and the game-event generator they read.

A game's players (users, each in a team) score points; every play is an event
``user,team,score,timestamp_ms,readable_ts``. Four pipelines, from batch to streaming:

* :mod:`~headrace.examples.gaming.user_score`: total score per user (batch).
* :mod:`~headrace.examples.gaming.hourly_team_score`: total per team per hour of event time.
* :mod:`~headrace.examples.gaming.leader_board`: live team scores per window with early and late
  panes, and a running total per user (streaming).
* :mod:`~headrace.examples.gaming.game_stats`: spammy users found against the mean score (a side
  input) and the mean length of play sessions (session windows).

:mod:`~headrace.examples.gaming.events` generates the events, deterministically.
"""
