"""A synthetic camera and microphone: a moving test pattern that carries its own frame number,
and a steady tone. ``livecart publish`` streams them; tests and benchmarks read the number back
out of what viewers decode, which proves the pictures came from the publisher.

The number is drawn as a row of large black and white blocks (16 bits of counter, 8 of check)
that survive lossy coding and scaling; ``read_counter`` finds them by proportion, not by pixel.
"""

from __future__ import annotations

import fractions
import math

import numpy as np
from av import AudioFrame, VideoFrame

COUNTER_BITS = 16
CHECK_BITS = 8
BLOCKS = COUNTER_BITS + CHECK_BITS
# The block row spans the top of the picture: from 5% to 95% of the width, 4% to 12% down.
ROW_LEFT, ROW_RIGHT, ROW_TOP, ROW_BOTTOM = 0.05, 0.95, 0.04, 0.12
VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms, what Opus sends per packet
TONE_HZ = 440.0


def _check(counter: int) -> int:
    # Any fixed mixing will do: a picture that is not ours decodes to a bad check.
    return (counter * 151 + 89) % 251


def _bits(counter: int) -> list[int]:
    value = (counter << CHECK_BITS) | _check(counter)
    return [(value >> (BLOCKS - 1 - i)) & 1 for i in range(BLOCKS)]


def _block_box(i: int, width: int, height: int) -> tuple[int, int, int, int]:
    step = (ROW_RIGHT - ROW_LEFT) * width / BLOCKS
    x0 = int(ROW_LEFT * width + i * step)
    return x0, int(x0 + step), int(ROW_TOP * height), int(ROW_BOTTOM * height)


def draw(counter: int, width: int = 640, height: int = 360, *, detail: bool = False) -> np.ndarray:
    """The luma plane of picture ``counter``: a gradient sliding right, a bouncing bar, the
    number, and (``detail``) a patch of fresh noise per frame, so an encoder spends about what a
    real camera would cost it."""
    x = np.arange(width, dtype=np.uint16)
    row = ((x * 256 // width + counter * 4) % 200 + 28).astype(np.uint8)
    luma = np.broadcast_to(row, (height, width)).copy()
    bar = int((math.sin(counter / 15) + 1) / 2 * (width - width // 10))
    luma[height // 3 :, bar : bar + width // 10] = 235
    if detail:
        # Sized so that the 360p rendition runs at about its 800 kb/s budget, as on a camera.
        rng = np.random.default_rng(counter)
        top, right = height // 2, width // 6
        luma[top:, :right] = rng.integers(16, 236, (height - top, right), np.uint8)
    for i, bit in enumerate(_bits(counter % (1 << COUNTER_BITS))):
        x0, x1, y0, y1 = _block_box(i, width, height)
        luma[y0:y1, x0:x1] = 235 if bit else 16
    return luma


def video_frame(
    counter: int, width: int = 640, height: int = 360, *, detail: bool = False
) -> VideoFrame:
    luma = draw(counter, width, height, detail=detail)
    chroma = np.full((height // 2, width // 2), 128, np.uint8)
    planes = np.concatenate([luma, chroma.reshape(-1, width), chroma.reshape(-1, width)])
    frame = VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.pts = counter * (VIDEO_CLOCK // 30)
    frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
    return frame


def read_counter(frame: VideoFrame) -> int | None:
    """The number drawn into a decoded picture, or None if the picture is not one of ours."""
    luma = frame.to_ndarray(format="gray")
    height, width = luma.shape
    value = 0
    for i in range(BLOCKS):
        x0, x1, y0, y1 = _block_box(i, width, height)
        # The middle of the block: edges blur under compression and scaling.
        mx, my = (x1 - x0) // 4, (y1 - y0) // 4
        level = float(luma[y0 + my : y1 - my, x0 + mx : x1 - mx].mean())
        value = (value << 1) | (level > 125)
    counter, check = value >> CHECK_BITS, value & ((1 << CHECK_BITS) - 1)
    return counter if check == _check(counter) else None


def tone_frame(index: int) -> AudioFrame:
    """Twenty milliseconds of a 440 Hz tone, mono, 48 kHz."""
    t = (np.arange(AUDIO_SAMPLES) + index * AUDIO_SAMPLES) / AUDIO_RATE
    samples = (np.sin(2 * math.pi * TONE_HZ * t) * 8000).astype(np.int16)
    frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = AUDIO_RATE
    frame.pts = index * AUDIO_SAMPLES
    frame.time_base = fractions.Fraction(1, AUDIO_RATE)
    return frame


def dominant_hz(frames: list[AudioFrame]) -> float:
    """The strongest frequency in some decoded audio (mixed down to one channel)."""
    samples = np.concatenate(
        [f.to_ndarray().reshape(-1, len(f.layout.channels)).mean(axis=1) for f in frames]
    )
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[0] = 0
    rate = frames[0].sample_rate
    return float(np.argmax(spectrum) * rate / len(samples))
