"""Smoke run of bench/media_pipeline.py: it must measure audio on every path, never a timing."""

from __future__ import annotations

from bench import media_pipeline


async def test_the_pipeline_benchmark_measures_audio_through_every_path() -> None:
    result = await media_pipeline.run(4, 0.5, warmup=0.5)
    assert result["call_ticks"] > 0
    assert result["cpu_us_per_call_tick"] > 0
    assert result["jitter_buffer"]["played"] > 0  # RTP in, through the jitter buffer
    assert result["frames_to_agent"] > 0  # caller audio resampled and sent to the agent
    assert result["agent_audio_played_s"] > 0  # agent frames parsed, queued and played out
    assert result["recorded_s"] > 0
