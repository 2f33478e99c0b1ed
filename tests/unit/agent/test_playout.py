from __future__ import annotations

import random

import pytest

from media.agent.playout import FRAME_BYTES, PlayoutQueue


def ramp(n_bytes: int, start: int = 0) -> bytes:
    """PCM16 samples start, start+1, ... so any reordering or gap is visible."""
    return b"".join(((start + i) % 30000).to_bytes(2, "little", signed=True) for i in range(n_bytes // 2))


def drain(q: PlayoutQueue, ticks: int) -> list[bytes | None]:
    return [q.next_frame() for _ in range(ticks)]


def test_any_length_chunks_are_paced_into_whole_frames_without_gaps() -> None:
    rng = random.Random(7)
    q = PlayoutQueue()
    total = 0
    sizes = [rng.randrange(2, 3000, 2) for _ in range(40)]
    for size in sizes:
        q.push_audio(ramp(size, total // 2))
        total += size
    ticks = drain(q, total // FRAME_BYTES + 3)
    frames = [f for f in ticks if f is not None]
    assert all(len(f) == FRAME_BYTES for f in frames)
    # Silence only at the end: one held tick for the partial last frame, then idle.
    assert ticks[: len(frames)] == frames or ticks[: len(frames) - 1] == frames[:-1]
    played = b"".join(frames)
    # Everything in order; only the very last frame is padded with silence.
    assert played[:total] == ramp(total)
    assert played[total:] == bytes(len(played) - total)
    assert len(frames) == -(-total // FRAME_BYTES)
    assert q.played_bytes == total
    assert q.available == 0


def test_empty_queue_plays_silence() -> None:
    q = PlayoutQueue()
    assert drain(q, 3) == [None, None, None]
    assert q.underruns == 0


def test_partial_frame_waits_one_tick_for_the_rest() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(160))
    assert q.next_frame() is None  # held: the rest of the frame may be on its way
    q.push_audio(ramp(160, 80))
    assert q.next_frame() == ramp(320)
    q.push_audio(ramp(100))
    assert q.next_frame() is None
    frame = q.next_frame()  # gave up waiting: pad with silence
    assert frame == ramp(100) + bytes(220)
    assert q.underruns == 1 + 1


def test_partial_hold_zero_plays_at_once() -> None:
    q = PlayoutQueue(partial_hold_frames=0)
    q.push_audio(ramp(100))
    assert q.next_frame() == ramp(100) + bytes(220)


def test_marks_are_reported_in_order_when_playout_reaches_them() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(640))
    assert q.push_mark("a") == []
    q.push_audio(ramp(320))
    assert q.push_mark("b") == []
    assert q.push_mark("c") == []
    assert q.next_frame() is not None
    assert q.pop_reached() == []
    assert q.next_frame() is not None
    assert q.pop_reached() == ["a"]
    assert q.next_frame() is not None
    assert q.pop_reached() == ["b", "c"]
    assert q.next_frame() is None


def test_mark_on_empty_queue_is_reached_at_once() -> None:
    q = PlayoutQueue()
    assert q.push_mark("now") == ["now"]
    q.push_audio(ramp(320))
    q.next_frame()
    assert q.push_mark("after") == ["after"]


def test_mark_in_the_middle_of_a_frame_fires_with_that_frame() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(100))
    q.push_mark("m")
    q.push_audio(ramp(400))
    assert q.next_frame() is not None
    assert q.pop_reached() == ["m"]


def test_mark_with_lag_waits_for_audio_still_upstream() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(320))
    q.push_mark("m", lag_bytes=240)
    q.next_frame()
    assert q.pop_reached() == []
    q.push_audio(ramp(240))
    q.next_frame()  # partial: held one tick
    q.next_frame()
    assert q.pop_reached() == ["m"]


def test_clear_returns_pending_marks_and_played_and_dropped_ms() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(16 * 100))  # 100 ms
    q.push_mark("one")
    q.push_audio(ramp(16 * 300))  # 300 ms
    q.push_mark("two")
    drain(q, 5)  # 100 ms played
    assert q.pop_reached() == ["one"]
    result = q.clear()
    assert result.marks == ("two",)
    assert result.played_ms == 100
    assert result.dropped_ms == 300
    # Flushed within one frame: the very next tick is silence.
    assert q.next_frame() is None
    assert q.cleared_bytes == 16 * 300
    # played_ms counts from the previous clear.
    q.push_audio(ramp(16 * 40))
    drain(q, 2)
    again = q.clear()
    assert (again.marks, again.played_ms, again.dropped_ms) == ((), 40, 0)


def test_audio_after_clear_plays_normally() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(3200))
    q.next_frame()
    q.clear()
    q.push_audio(ramp(640, 5))
    assert q.next_frame() == ramp(320, 5)
    assert q.next_frame() == ramp(320, 165)


def test_hangup_after_playout_fires_exactly_when_the_last_frame_is_taken() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(320 * 3 + 100))
    assert q.request_hangup() is False
    for _ in range(3):
        assert q.next_frame() is not None
        assert not q.hangup_due
    last = q.next_frame()  # the partial last frame is not held when a hang-up waits for it
    assert last == ramp(100, 480) + bytes(220)
    assert q.hangup_due


def test_hangup_with_nothing_queued_is_due_at_once() -> None:
    q = PlayoutQueue()
    assert q.request_hangup() is True
    assert q.hangup_due


def test_hangup_ignores_audio_queued_after_it() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(320))
    q.request_hangup()
    q.push_audio(ramp(3200))
    q.next_frame()
    assert q.hangup_due


def test_clear_makes_a_pending_hangup_due() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(3200))
    q.request_hangup()
    q.next_frame()
    assert not q.hangup_due
    q.clear()
    assert q.hangup_due


def test_bound_refuses_the_excess_and_counts_it() -> None:
    q = PlayoutQueue(max_ms=100)  # 1600 bytes
    assert q.push_audio(ramp(1000)) == 1000
    assert q.push_audio(ramp(1000)) == 600
    assert q.push_audio(ramp(10)) == 0
    assert q.overflow_bytes == 400 + 10
    assert q.queued_ms == 100
    # What was accepted plays intact.
    played = b"".join(f for f in drain(q, 5) if f is not None)
    assert played == ramp(1000) + ramp(600)
    # Room again once played.
    assert q.push_audio(ramp(320)) == 320


def test_reset_drops_everything_silently() -> None:
    q = PlayoutQueue()
    q.push_audio(ramp(3200))
    q.push_mark("gone")
    q.request_hangup()
    q.reset()
    assert q.next_frame() is None
    assert q.pop_reached() == []
    assert not q.hangup_due and not q.hangup_pending
    assert q.reset_bytes == 3200
    assert q.push_mark("new") == ["new"]


@pytest.mark.parametrize(
    "bad", [{"frame_bytes": 0}, {"frame_bytes": 3}, {"max_ms": 0}, {"partial_hold_frames": -1}]
)
def test_rejects_bad_parameters(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PlayoutQueue(**bad)


SILENT = bytes(FRAME_BYTES)


def loud(n: int = 1) -> bytes:
    return ramp(n * FRAME_BYTES, 1000)


def lead_before_take(q: PlayoutQueue, pushes: list[bytes]) -> list[int]:
    """One tick per push: the agent's frame arrives, then the tick takes one; returns what
    was queued (in frames) at each tick."""
    depths = []
    for chunk in pushes:
        q.push_audio(chunk)
        depths.append(q.available // FRAME_BYTES)
        q.next_frame()
    return depths


def test_a_standing_lead_is_trimmed_in_silence_once() -> None:
    q = PlayoutQueue(trim_window=50)
    q.push_audio(SILENT)  # one reply came a tick late: from now on a frame is queued ahead
    depths = lead_before_take(q, [SILENT] * 200)
    assert depths[:50] == [2] * 50
    assert q.trimmed_bytes == FRAME_BYTES  # one frame cut, then the agent is in step
    assert depths[-100:] == [1] * 100
    assert q.played_bytes + q.trimmed_bytes == 201 * FRAME_BYTES


def test_speech_is_never_trimmed() -> None:
    q = PlayoutQueue(trim_window=50)
    q.push_audio(loud())
    depths = lead_before_take(q, [loud()] * 200)
    assert q.trimmed_bytes == 0 and depths[-1] == 2


def test_a_quiet_frame_within_the_level_is_trimmed_but_not_above_it() -> None:
    near_silence = (b"\x10\x00\xf0\xff") * (FRAME_BYTES // 4)  # +-16
    q = PlayoutQueue(trim_window=10, quiet_level=16)
    q.push_audio(near_silence)
    lead_before_take(q, [near_silence] * 40)
    assert q.trimmed_bytes == FRAME_BYTES
    q = PlayoutQueue(trim_window=10, quiet_level=15)
    q.push_audio(near_silence)
    lead_before_take(q, [near_silence] * 40)
    assert q.trimmed_bytes == 0


def test_a_lead_the_agents_jitter_needs_is_kept() -> None:
    # Replies bunch up: sometimes none arrives for a tick, then two. The queue dips to one frame
    # at those ticks, so the lead is in use and nothing is trimmed.
    q = PlayoutQueue(trim_window=50)
    q.push_audio(SILENT)
    pushes = []
    for i in range(300):
        pushes.append(b"" if i % 20 == 7 else SILENT * 2 if i % 20 == 8 else SILENT)
    depths = lead_before_take(q, pushes)
    assert q.trimmed_bytes == 0
    assert min(depths) == 1


def test_a_burst_sent_ahead_is_not_trimmed() -> None:
    q = PlayoutQueue(trim_window=50)
    q.push_audio(SILENT * 150)  # 3 s sent at once, as TTS does
    frames = drain(q, 160)
    assert q.trimmed_bytes <= FRAME_BYTES  # at most the tail, once it is within trim_max_frames
    assert sum(1 for f in frames if f is not None) + q.trimmed_bytes // FRAME_BYTES == 150


def test_marks_in_a_trimmed_frame_are_reached_and_a_pending_hangup_stops_trimming() -> None:
    q = PlayoutQueue(trim_window=5)
    q.push_audio(SILENT)
    reached: list[str] = []
    for i in range(20):
        q.push_audio(SILENT)
        q.push_mark(f"m{i}")
        q.next_frame()
        reached += q.pop_reached()
    assert q.trimmed_bytes == FRAME_BYTES
    assert reached == [f"m{i}" for i in range(len(reached))] and len(reached) >= 19
    q = PlayoutQueue(trim_window=5)
    q.push_audio(SILENT * 2)
    q.request_hangup(lag_bytes=FRAME_BYTES * 40)
    lead_before_take(q, [SILENT] * 30)
    assert q.trimmed_bytes == 0


def test_trimming_can_be_turned_off() -> None:
    q = PlayoutQueue(trim_window=0)
    q.push_audio(SILENT)
    lead_before_take(q, [SILENT] * 200)
    assert q.trimmed_bytes == 0
