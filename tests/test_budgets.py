"""Stream budgets from bench/stream.py, as ratios measured side by side in one run."""

from __future__ import annotations

from bench.stream import bench_decode, bench_end_to_end


def test_decoder_keeps_near_json_speed() -> None:
    result = bench_decode(5000)
    # Measured ~0.25 of bare json.loads here; below 0.08 something got 3x slower.
    assert result["ratio_to_json_loads"] > 0.08, result


def test_client_keeps_up_with_the_server() -> None:
    result = bench_end_to_end(3000)
    assert result["events"] >= 3000
    # Measured ~1.3x the time httpx needs just to read the same bytes; 4x means the
    # client, not the network or the server, became the bottleneck.
    assert result["client_over_raw_read"] < 4.0, result
    assert result["replay_events_per_sec"] > 2000, result
    assert result["client_peak_mib"] < 8, result
