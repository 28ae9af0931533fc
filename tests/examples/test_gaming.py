"""The mobile-gaming examples on generated games, checked against plain-Python computations."""

from __future__ import annotations

import collections
import pickle
import re
from pathlib import Path

import cloudpickle
import pytest

import headrace.beam as beam
from headrace.beam.testing.test_stream import TestStream
from headrace.beam.testing.util import assert_that, equal_to
from headrace.examples.gaming import game_stats, hourly_team_score, leader_board, user_score
from headrace.examples.gaming.events import (
    EventReplaySource,
    GameEvent,
    ParseGameEventFn,
    generate_events,
    replay_schedule,
    timestamped_events,
    to_test_stream,
    write_events,
)
from headrace.model.result import PipelineState
from headrace.model.transforms.unbounded import ReadUnbounded

TV = beam.window.TimestampedValue
T0 = 1_714_521_600  # 2024-05-01 00:00:00 UTC, seconds
RUNNER_ARGS = {
    "in_process": [],
    "two_processes": ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
}


def read_lines(pattern: str, folder: Path) -> list[str]:
    paths = sorted(folder.glob(pattern))
    assert paths, f"no output matches {pattern} in {folder}"
    return [line for p in paths for line in p.read_text(encoding="utf-8").splitlines()]


def write_game(tmp_path: Path, events: list[GameEvent], bad_lines: int = 0) -> Path:
    path = write_events(tmp_path / "events.csv", events)
    if bad_lines:
        with path.open("a", encoding="utf-8") as f:
            f.writelines(f"not an event {i}\n" for i in range(bad_lines))
    return path


def window_start(ts_ms: int, size_s: int) -> int:
    return ts_ms // (size_s * 1000) * size_s


def readable(seconds: int) -> str:
    from headrace.examples.gaming.events import readable_time

    return readable_time(seconds * 1000)


# -- the generator ------------------------------------------------------------------------------


def test_generator_is_deterministic_and_has_out_of_order_and_late_events():
    events = generate_events(num_users=12, num_teams=3, duration_minutes=90, seed=5)
    assert events == generate_events(num_users=12, num_teams=3, duration_minutes=90, seed=5)
    assert events != generate_events(num_users=12, num_teams=3, duration_minutes=90, seed=6)
    assert [e.arrival_ms for e in events] == sorted(e.arrival_ms for e in events)
    by_time = [e.timestamp_ms for e in events]
    assert by_time != sorted(by_time)  # arrival order is not event-time order
    late = [e for e in events if e.arrival_ms - e.timestamp_ms >= 10 * 60_000]
    assert 0 < len(late) < len(events) // 5
    assert {e.team for e in events} == {"AmberOtter", "BasaltHeron", "CobaltLynx"}
    assert all(e.user.endswith("_" + e.team) for e in events)


def test_replay_schedule_keeps_every_event_and_moves_the_watermark_forward():
    events = generate_events(num_users=6, num_teams=2, duration_minutes=40)
    steps = replay_schedule(events, step_s=30, watermark_lag_s=45)
    assert sorted(e for batch, _ in steps for e in batch) == sorted(events)
    marks = [mark for _, mark in steps]
    assert marks == sorted(set(marks))
    assert all(mark % 60_000 not in (0, 59_999) for mark in marks)  # never on a minute boundary


def test_what_travels_to_workers_pickles():
    events = generate_events(num_users=2, num_teams=1, duration_minutes=5)
    objects = [
        ParseGameEventFn(),
        EventReplaySource(events, speedup=100),
        user_score.UserScore(),
        hourly_team_score.HourlyTeamScore(0, 1e10),
        hourly_team_score.TeamScoreLine(),
        leader_board.CalculateTeamScores(30, 30, 60),
        leader_board.CalculateUserScores(30, 60),
        leader_board.TeamScorePane(),
        leader_board.UserScorePane(),
        game_stats.CalculateSpammyUsers(),
        game_stats.UserSessionActivity(),
        game_stats.SessionLengthLine(),
    ]
    for obj in objects:
        for module in (pickle, cloudpickle):
            copy = module.loads(module.dumps(obj))
            assert type(copy) is type(obj)
    source = pickle.loads(pickle.dumps(EventReplaySource(events, speedup=100)))
    assert source.events == events


# -- user score ---------------------------------------------------------------------------------


@pytest.mark.parametrize("runner", list(RUNNER_ARGS))
def test_user_score_matches_plain_python(tmp_path, runner):
    events = generate_events(num_users=15, num_teams=3, duration_minutes=120, seed=11)
    path = write_game(tmp_path, events, bad_lines=3)
    user_score.run(["--input", str(path), "--output", str(tmp_path / "out"), *RUNNER_ARGS[runner]])

    totals: dict[str, int] = collections.defaultdict(int)
    for e in events:
        totals[e.user] += e.score
    expected = sorted(f"user: {u}, total_score: {s}" for u, s in totals.items())
    assert sorted(read_lines("out-*.txt", tmp_path)) == expected


def test_user_score_counts_lines_that_do_not_parse():
    lines = [e.to_csv() for e in generate_events(3, 1, 10)] + ["", "a,b,not-a-number,1", "x"]
    p = beam.Pipeline()
    _ = p | beam.Create(lines) | user_score.UserScore()
    result = p.run()
    assert result.wait_until_finish() == PipelineState.DONE
    errors = result.metrics().query(beam.metrics.MetricsFilter().with_name("num_parse_errors"))
    assert sum(m.committed for m in errors["counters"]) == 3


# -- hourly team score --------------------------------------------------------------------------


@pytest.mark.parametrize("runner", list(RUNNER_ARGS))
def test_hourly_team_score_matches_plain_python(tmp_path, runner):
    events = generate_events(num_users=15, num_teams=3, duration_minutes=240, seed=12)
    path = write_game(tmp_path, events)
    start, stop = "2024-05-01-00-30", "2024-05-01-03-10"
    hourly_team_score.run(
        [
            "--input", str(path), "--output", str(tmp_path / "out"),
            "--start_min", start, "--stop_min", stop, *RUNNER_ARGS[runner],
        ]
    )  # fmt: skip

    lo, hi = (T0 + 30 * 60) * 1000, (T0 + 190 * 60) * 1000
    totals: dict[tuple[str, int], int] = collections.defaultdict(int)
    for e in events:
        if lo < e.timestamp_ms < hi:
            totals[e.team, window_start(e.timestamp_ms, 3600)] += e.score
    expected = sorted(
        f"team: {team}, total_score: {s}, window_start: {readable(w)}"
        for (team, w), s in totals.items()
    )
    assert {w for _, w in totals} == {T0 + h * 3600 for h in range(4)}  # the filters cut hours
    assert sorted(read_lines("out-*.txt", tmp_path)) == expected


def test_hourly_team_score_window_duration_and_bad_minutes(tmp_path):
    events = generate_events(num_users=6, num_teams=2, duration_minutes=60, seed=3)
    path = write_game(tmp_path, events)
    hourly_team_score.run(
        ["--input", str(path), "--output", str(tmp_path / "out"), "--window_duration", "20"]
    )
    totals: dict[tuple[str, int], int] = collections.defaultdict(int)
    for e in events:
        totals[e.team, window_start(e.timestamp_ms, 1200)] += e.score
    assert len(read_lines("out-*.txt", tmp_path)) == len(totals) > 4
    with pytest.raises(SystemExit):
        hourly_team_score.run(["--input", str(path), "--start_min", "yesterday"])


# -- leader board -------------------------------------------------------------------------------


def line(user: str, team: str, score: int, seconds: float) -> TV:
    return TV(f"{user},{team},{score},{round((T0 + seconds) * 1000)},x", T0 + seconds)


def test_leader_board_panes_on_a_scripted_stream():
    """Team windows of 10 minutes, 5 minutes of early firing, 20 minutes of allowed lateness."""
    stream = (
        TestStream()
        .advance_watermark_to(T0)
        .add_elements([line("ann", "Red", 5, 10), line("bob", "Blue", 3, 20)])
        .advance_processing_time(200)
        .add_elements([line("ann", "Red", 2, 250)])
        .advance_processing_time(200)  # 400 s after the first elements: EARLY panes
        .add_elements([line("cid", "Red", 4, 500)])
        .advance_watermark_to(T0 + 610)  # [0, 600) is complete: ON_TIME panes
        .add_elements([line("bob", "Blue", 6, 30)])  # late, within the lateness: a LATE pane
        .advance_processing_time(400)  # users fire again
        .advance_watermark_to(T0 + 1900)  # past the end of [0, 600) + 20 minutes
        .add_elements([line("ann", "Red", 100, 40)])  # too late for the team window: dropped
        .add_elements([line("dan", "Red", 1, 1850)])  # on time in [1800, 2400)
        .advance_watermark_to_infinity()
    )
    p = beam.Pipeline()
    events = p | stream | leader_board.ParseAndStamp()
    teams = (
        events
        | "Teams" >> leader_board.CalculateTeamScores(10, 20, 300)
        | beam.ParDo(leader_board.TeamScorePane())
    )
    users = (
        events
        | "Users" >> leader_board.CalculateUserScores(20, 300)
        | beam.ParDo(leader_board.UserScorePane())
    )
    assert_that(
        teams,
        equal_to(
            [
                ("Red", 7, T0, "EARLY", 0),
                ("Blue", 3, T0, "EARLY", 0),
                ("Red", 11, T0, "ON_TIME", 1),
                ("Blue", 3, T0, "ON_TIME", 1),
                ("Blue", 9, T0, "LATE", 2),
                ("Red", 1, T0 + 1800, "ON_TIME", 0),
            ]
        ),
        label="teams",
    )
    # User totals since the start, every 300 s of processing time. What arrived after the last
    # firing is not emitted when the global window closes at the end of the stream: as in Beam,
    # a pane comes only from a trigger firing.
    assert_that(
        users,
        equal_to(
            [
                ("ann", 7, 0),
                ("bob", 3, 0),
                ("cid", 4, 0),
                ("bob", 9, 1),
            ]
        ),
        label="users",
    )
    result = p.run()
    assert result.wait_until_finish() == PipelineState.DONE
    dropped = result.metrics().query(
        beam.metrics.MetricsFilter().with_name("droppedDueToLateness")
    )["counters"]
    assert sum(m.committed for m in dropped) == 1


def expected_team_panes(
    steps: list[tuple[list[GameEvent], int]], window_s: int, lateness_s: int
) -> tuple[dict[tuple[str, int], dict[str, int]], int]:
    """Per (team, window start): on-time sum, final sum, late events, steps with late events.

    An event is processed under the watermark of the step before its own. Its window is complete
    once that watermark passed the window's end (the event is late) and expired once it passed
    the end plus the allowed lateness (the event is dropped). The replay never puts the
    watermark on a window boundary, so there are no ties.
    """
    out: dict[tuple[str, int], dict[str, int]] = {}
    dropped = 0
    watermark = -(2**63)
    for batch, watermark_after in steps:
        late_here: set[tuple[str, int]] = set()
        for e in batch:
            start = window_start(e.timestamp_ms, window_s)
            end_ms = (start + window_s) * 1000
            if watermark > end_ms + lateness_s * 1000:
                dropped += 1
                continue
            w = out.setdefault(
                (e.team, start), {"on_time": 0, "final": 0, "late": 0, "late_steps": 0, "n": 0}
            )
            w["final"] += e.score
            w["n"] += 1
            if watermark > end_ms:
                w["late"] += 1
                late_here.add((e.team, start))
            else:
                w["on_time"] += e.score
        for key in late_here:
            out[key]["late_steps"] += 1
        watermark = watermark_after
    return out, dropped


def check_team_panes(expected: dict[tuple[str, int], dict[str, int]]):
    def check(actual: list[tuple[str, int, float, str, int]]) -> None:
        panes: dict[tuple[str, int], list[tuple[int, str, int]]] = collections.defaultdict(list)
        for team, total, start, timing, index in actual:
            panes[team, int(start)].append((index, timing, total))
        assert set(panes) == set(expected)
        for key, got in panes.items():
            got.sort()
            want = expected[key]
            assert [i for i, _, _ in got] == list(range(len(got))), (key, got)
            timings = "".join(t[0] for _, t, _ in got)  # E, O, L
            assert re.fullmatch("E*O?L*", timings), (key, got)
            values = [v for _, _, v in got]
            assert values == sorted(values), (key, got)  # accumulating: never shrinks
            assert values[-1] == want["final"], (key, got, want)
            on_time = [v for _, t, v in got if t == "ON_TIME"]
            if want["n"] > want["late"]:  # some data arrived before the window was complete
                assert on_time == [want["on_time"]], (key, got, want)
            else:
                assert on_time == []
            early = [v for _, t, v in got if t == "EARLY"]
            assert all(v <= want["on_time"] for v in early)
            late = [v for _, t, v in got if t == "LATE"]
            assert want["late_steps"] <= len(late) <= want["late"], (key, got, want)

    return check


def check_user_panes(totals: dict[str, int]):
    """User panes are running totals (ACCUMULATING) numbered from 0. What arrived after a user's
    last processing-time firing is not emitted when the global window closes (Beam emits panes
    only when the trigger fires), so the last pane is at most the batch total."""

    def check(actual: list[tuple[str, int, int]]) -> None:
        panes: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
        for user, total, index in actual:
            panes[user].append((index, total))
        assert panes and set(panes) <= set(totals)
        for user, got in panes.items():
            got.sort()
            assert [i for i, _ in got] == list(range(len(got)))
            values = [v for _, v in got]
            assert values == sorted(values)
            assert values[-1] <= totals[user], (user, got, totals[user])

    return check


def test_leader_board_on_a_replayed_game_matches_plain_python():
    events = generate_events(num_users=16, num_teams=4, duration_minutes=150, seed=21)
    window_min, lateness_min = 30, 30
    steps = replay_schedule(events, step_s=60, watermark_lag_s=60)
    expected, dropped = expected_team_panes(steps, window_min * 60, lateness_min * 60)
    assert dropped > 0  # the game has events too late to count
    assert any(w["late"] for w in expected.values())  # and late events that still count
    user_totals: dict[str, int] = collections.defaultdict(int)
    for e in events:
        user_totals[e.user] += e.score

    p = beam.Pipeline()
    parsed = p | to_test_stream(events, 60, 60) | leader_board.ParseAndStamp()
    teams = (
        parsed
        | "Teams" >> leader_board.CalculateTeamScores(window_min, lateness_min, 300)
        | beam.ParDo(leader_board.TeamScorePane())
    )
    users = (
        parsed
        | "Users" >> leader_board.CalculateUserScores(lateness_min, 600)
        | beam.ParDo(leader_board.UserScorePane())
    )
    assert_that(teams, check_team_panes(expected), label="teams")
    assert_that(
        teams | beam.Filter(lambda pane: pane[3] == "EARLY"), lambda xs: len(xs) > 0, label="early"
    )
    assert_that(users, check_user_panes(user_totals), label="users")
    result = p.run()
    assert result.wait_until_finish() == PipelineState.DONE
    counters = result.metrics().query(
        beam.metrics.MetricsFilter().with_name("droppedDueToLateness")
    )["counters"]
    assert sum(m.committed for m in counters) == dropped


def test_leader_board_run_writes_team_and_user_panes(tmp_path):
    leader_board.run(["--output", str(tmp_path / "lb"), "--num_users", "8", "--duration", "90"])
    teams = read_lines("lb_teams-*.txt", tmp_path)
    users = read_lines("lb_users-*.txt", tmp_path)
    assert {re.search(r"timing: (\w+)", t).group(1) for t in teams} == {"EARLY", "ON_TIME", "LATE"}
    last: dict[str, tuple[int, int]] = {}
    for u in users:
        m = re.fullmatch(r"user: (\S+), total_score: (\d+), pane: (\d+)", u)
        assert m, u
        pane, total = int(m.group(3)), int(m.group(2))
        if m.group(1) not in last or last[m.group(1)][0] < pane:
            last[m.group(1)] = (pane, total)
    totals: dict[str, int] = collections.defaultdict(int)
    for e in generate_events(num_users=8, duration_minutes=90):
        totals[e.user] += e.score
    # the last pane of each user: the total at its last firing (later events are not emitted)
    assert last and all(total <= totals[user] for user, (_, total) in last.items())


def test_leader_board_over_an_unbounded_source_on_the_real_clock():
    """Nothing is late (no late events, a watermark lag above the out-of-order delay), so the
    last team panes hold the batch totals whatever the real clock did; user panes (processing-time
    firings) hold at most the totals."""
    events = generate_events(num_users=8, num_teams=2, duration_minutes=60, late_fraction=0)
    speedup = 20_000.0  # an hour of game in 0.18 s
    team_totals: dict[tuple[str, int], int] = collections.defaultdict(int)
    user_totals: dict[str, int] = collections.defaultdict(int)
    for e in events:
        team_totals[e.team, window_start(e.timestamp_ms, 900)] += e.score
        user_totals[e.user] += e.score

    def last_team_panes(actual):
        last: dict[tuple[str, int], tuple[int, int]] = {}
        for team, total, start, _timing, index in actual:
            key = (team, int(start))
            if key not in last or last[key][0] < index:
                last[key] = (index, total)
        assert {k: v for k, (_, v) in last.items()} == team_totals

    with beam.Pipeline() as p:
        parsed = (
            p
            | ReadUnbounded(EventReplaySource(events, speedup, watermark_lag_s=60))
            | leader_board.ParseAndStamp()
        )
        teams = (
            parsed
            | "Teams" >> leader_board.CalculateTeamScores(15, 30, 300 / speedup)
            | beam.ParDo(leader_board.TeamScorePane())
        )
        users = (
            parsed
            | "Users" >> leader_board.CalculateUserScores(30, 600 / speedup)
            | beam.ParDo(leader_board.UserScorePane())
        )
        assert_that(teams, last_team_panes, label="teams")
        assert_that(users, check_user_panes(user_totals), label="users")


def test_event_replay_source_resumes_from_its_checkpoint():
    events = generate_events(num_users=3, num_teams=1, duration_minutes=20)
    source = EventReplaySource(events, speedup=1e9)
    reader = source.create_reader()
    first = reader.poll(5, timeout_s=1)
    assert len(first) == 5 and reader.checkpoint() == 5
    resumed = source.create_reader(reader.checkpoint())
    rest = []
    while not resumed.is_done():
        rest += resumed.poll(10_000, timeout_s=1)
    assert [tv.value for tv in first + rest] == [e.to_csv() for e in events]


# -- game stats ---------------------------------------------------------------------------------


def plain_game_stats(
    events: list[GameEvent], window_s: int, gap_s: int, activity_s: int
) -> tuple[dict[tuple[str, int], int], dict[int, set[str]], dict[int, float]]:
    """Team totals without spammers, spammers per window, mean session minutes per window."""
    user_totals: dict[int, dict[str, int]] = collections.defaultdict(
        lambda: collections.defaultdict(int)
    )
    for e in events:
        user_totals[window_start(e.timestamp_ms, window_s)][e.user] += e.score
    spammers = {}
    for w, totals in user_totals.items():
        mean = sum(totals.values()) / len(totals)
        spammers[w] = {u for u, s in totals.items() if s > mean * game_stats.SCORE_WEIGHT}
    teams: dict[tuple[str, int], int] = collections.defaultdict(int)
    for e in events:
        w = window_start(e.timestamp_ms, window_s)
        if e.user not in spammers[w]:
            teams[e.team, w] += e.score
    # Sessions: plays less than the gap apart; a session spans first play .. last play + gap and
    # is stamped at its end (its last microsecond), then averaged per activity window.
    times: dict[str, list[int]] = collections.defaultdict(list)
    for e in events:
        times[e.user].append(e.timestamp_ms)
    lengths: dict[int, list[float]] = collections.defaultdict(list)
    for ts in times.values():
        ts.sort()
        first = last = ts[0]
        for t in [*ts[1:], None]:
            if t is not None and t - last < gap_s * 1000:
                last = t
                continue
            end_us = (last + gap_s * 1000) * 1000
            lengths[(end_us - 1) // (activity_s * 1_000_000) * activity_s].append(
                (last + gap_s * 1000 - first) / 60_000
            )
            if t is not None:
                first = last = t
    means = {w: sum(v) / len(v) for w, v in lengths.items()}
    return teams, spammers, means


@pytest.mark.parametrize("runner", list(RUNNER_ARGS))
def test_game_stats_matches_plain_python(tmp_path, runner):
    events = generate_events(num_users=18, num_teams=3, duration_minutes=150, robots=2, seed=31)
    path = write_game(tmp_path, events)
    game_stats.run(
        [
            "--input", str(path), "--output", str(tmp_path / "gs"),
            "--fixed_window_duration", "30", "--session_gap", "5",
            "--user_activity_window_duration", "20", *RUNNER_ARGS[runner],
        ]
    )  # fmt: skip
    teams, spammers, means = plain_game_stats(events, 1800, 300, 1200)
    assert all(spammers.values())  # the robots are caught in every window
    assert sorted(read_lines("gs_teams-*.txt", tmp_path)) == sorted(
        f"team: {t}, total_score: {s}, window_start: {readable(w)}" for (t, w), s in teams.items()
    )
    got = {}
    for text in read_lines("gs_sessions-*.txt", tmp_path):
        m = re.fullmatch(r"window_start: (.+), mean_session_minutes: ([\d.]+)", text)
        assert m, text
        got[m.group(1)] = float(m.group(2))
    assert got.keys() == {readable(w) for w in means}
    for w, mean in means.items():
        assert got[readable(w)] == pytest.approx(mean, abs=1.5e-3)


def test_spammy_users_per_window_match_plain_python():
    events = generate_events(num_users=12, num_teams=2, duration_minutes=120, robots=2, seed=8)
    _, spammers, _ = plain_game_stats(events, 3600, 300, 1800)
    expected = [(w, u) for w, users in spammers.items() for u in users]
    with beam.Pipeline() as p:
        found = (
            p
            | beam.Create([e.to_csv() for e in events])
            | leader_board.ParseAndStamp()
            | beam.WindowInto(beam.window.FixedWindows(3600))
            | beam.Map(lambda e: (e["user"], e["score"]))
            | game_stats.CalculateSpammyUsers()
            | beam.Map(lambda kv, w=beam.DoFn.WindowParam: (int(w.start), kv[0]))
        )
        assert_that(found, equal_to(expected))


def test_game_stats_streaming_equals_batch_without_late_data():
    events = generate_events(num_users=12, num_teams=3, duration_minutes=120, late_fraction=0)
    teams, _, means = plain_game_stats(events, 3600, 300, 1800)
    with beam.Pipeline() as p:
        parsed = p | to_test_stream(events, 60, 60) | leader_board.ParseAndStamp()
        team_scores = (
            parsed
            | game_stats.TeamScoresWithoutSpammers(60)
            | beam.Map(lambda kv, w=beam.DoFn.WindowParam: (kv[0], int(w.start), kv[1]))
        )
        assert_that(team_scores, equal_to([(t, w, s) for (t, w), s in teams.items()]))
        sessions = parsed | game_stats.MeanSessionLengths(5, 30) | beam.Map(round, 6)
        assert_that(sessions, equal_to([round(m, 6) for m in means.values()]), label="sessions")


def test_timestamped_events_feed_a_windowed_batch_pipeline():
    events = generate_events(num_users=5, num_teams=2, duration_minutes=90)
    totals: dict[tuple[str, int], int] = collections.defaultdict(int)
    for e in events:
        totals[e.team, window_start(e.timestamp_ms, 3600)] += e.score
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(timestamped_events(events))
            | beam.ParDo(ParseGameEventFn())
            | beam.WindowInto(beam.window.FixedWindows(3600))
            | user_score.ExtractAndSumScore("team")
            | beam.Map(lambda kv, w=beam.DoFn.WindowParam: (kv[0], int(w.start), kv[1]))
        )
        assert_that(out, equal_to([(t, w, s) for (t, w), s in totals.items()]))
