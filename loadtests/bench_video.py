"""Viewers per core at 640x360, 30 fps: livecart's encode-once relay against aiortc's MediaRelay
(one encoder per viewer), measured in the same run on the same machine.

Each server runs pinned to one core (CPU 0). A load process on the other core publishes the
synthetic test pattern (with a noise patch, so the encoder works about as hard as on a camera)
over WHIP, then adds WHEP viewers in steps. The viewers are real aiortc peers (ICE, DTLS, SRTP)
that count the frames they are sent (RTP marker bits) instead of decoding them, so that one
load core can hold many of them. A step is sustained when the viewers together receive at
least 95% of the frames the publisher sent in the measuring window. Printed: the most viewers
each server sustained, the ratio, and both processes' CPU use, so a load process near its own
ceiling is visible.

Then glass-to-glass latency on livecart, at 10 and 100 viewers (``--latency-at``): the test
pattern carries its frame number in big black and white blocks; the load process notes the
monotonic time each numbered picture is handed to the WHIP sender, and a few of the viewers
(``--probes``) really decode the video and read the number back, so delay = arrival of the
decoded picture - the time that number was sent, on one clock. Printed: p50, p95, max, the
samples and the pictures whose number could not be read.

    .venv/bin/python loadtests/bench_video.py            # all three, 2 to 5 minutes
    .venv/bin/python loadtests/bench_video.py --only livecart --start 40 --step 20
    .venv/bin/python loadtests/bench_video.py --only latency --latency-at 10,100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Run as a script from a checkout: its root holds tests.harness (and livecart's packages, when
# livecart is not installed).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from live.media import pattern
from tests.harness import ROOT, free_port, livecart, serve, stop_process, stop_server

LOAD_CPU, SERVER_CPU = "1", "0"
WINDOW_S = 5.0
TARGET = 0.95
FPS = 30
LATENCY_TARGET_MS = 400  # p95, on the loopback (issue 21)
OTHERS_WARN = 0.10  # other work's share of a pinned core above which a run is flagged
# Progress lines; with --json they go to stderr and stdout holds only the JSON.
report = sys.stdout


def say(line: str) -> None:
    print(line, file=report, flush=True)


# -- the baseline server: aiortc's MediaRelay, one encoder per viewer -------------------------


def serve_baseline(port: int) -> None:
    """WHIP and WHEP the way aiortc's examples relay media: ``MediaRelay.subscribe`` per viewer,
    each viewer's sender encoding the decoded frames itself."""
    import uvicorn
    from aiortc import (
        RTCConfiguration,
        RTCPeerConnection,
        RTCRtpSender,
        RTCSessionDescription,
    )
    from aiortc.contrib.media import MediaRelay
    from aiortc.mediastreams import MediaStreamTrack
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from live.media.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    relay = MediaRelay()
    sources: dict[str, MediaStreamTrack] = {}
    peers: set[RTCPeerConnection] = set()
    config = RTCConfiguration(iceServers=[])

    async def whip(request: Request) -> Response:
        pc = RTCPeerConnection(config)
        peers.add(pc)
        pc.on("track", lambda track: sources.__setitem__(track.kind, track))
        await pc.setRemoteDescription(
            RTCSessionDescription((await request.body()).decode(), "offer")
        )
        await pc.setLocalDescription(await pc.createAnswer())
        return Response(pc.localDescription.sdp, 201, media_type="application/sdp")

    async def whep(request: Request) -> Response:
        pc = RTCPeerConnection(config)
        peers.add(pc)
        await pc.setRemoteDescription(
            RTCSessionDescription((await request.body()).decode(), "offer")
        )
        vp8 = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in ("video/vp8", "video/rtx")
        ]
        for transceiver in pc.getTransceivers():
            transceiver.sender.replaceTrack(
                relay.subscribe(sources[transceiver.kind], buffered=False)
            )
            transceiver.direction = "sendonly"
            if transceiver.kind == "video":
                transceiver.setCodecPreferences(vp8)
        await pc.setLocalDescription(await pc.createAnswer())
        return Response(pc.localDescription.sdp, 201, media_type="application/sdp")

    app = Starlette(
        routes=[Route("/whip/1", whip, methods=["POST"]), Route("/whep/1", whep, methods=["POST"])]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", loop="uvloop")


# -- servers under test ---------------------------------------------------------------------


def post_json(url: str, token: str | None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=json.dumps(body or {}).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        found: dict[str, Any] = json.loads(response.read())
        return found


@dataclass
class Target:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    room: int
    creator_token: str
    viewer_token: str
    data_dir: Path | None = None


def start_livecart(tmp: Path) -> Target:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "LIVECART_DATA_DIR": str(tmp / "livecart"),
        "LIVECART_PORT": str(port),
        "LIVECART_WEBRTC_ADDRESSES": "127.0.0.1",
        "LIVECART_VIDEO_MAX_VIEWERS": "100000",
    }
    for name in ("REDIS_URL", "DATABASE_URL"):
        env.pop(name, None)  # the embedded defaults: a private Valkey and SQLite
    made = subprocess.run(
        livecart("create-seller", "--name", "Bench", "--email", "bench@example.com"),
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    token = made.split("token: ")[1].splitlines()[0].strip()
    shop = int(made.split("shop ")[1].split()[0])
    server = serve(
        ["taskset", "-c", SERVER_CPU, *livecart("serve")],
        port=port,
        env=env,
        log=tmp / "livecart.log",
        cwd=ROOT,
        ready_path="/readyz",
        within_s=60,
    )
    base = server.base_url
    try:
        made_room = post_json(f"{base}/api/rooms", token, {"shop_id": shop, "title": "Bench"})
        viewer = post_json(f"{base}/api/session", None)["token"]
    except BaseException:
        stop_server(server)
        raise
    return Target(
        "livecart encode-once", server.process, base, made_room["room"]["id"], token, viewer
    )


def start_baseline(tmp: Path) -> Target:
    port = free_port()
    server = serve(
        ["taskset", "-c", SERVER_CPU, sys.executable, __file__, "--serve-baseline", str(port)],
        port=port,
        env=dict(os.environ),
        log=tmp / "baseline.log",
        cwd=ROOT,
    )
    return Target("aiortc MediaRelay", server.process, server.base_url, 1, "x", "x")


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cores_busy_s() -> dict[str, float]:
    """Busy seconds of the two pinned cores since boot (/proc/stat: user, nice, system, irq,
    softirq and steal; idle and iowait are not busy). The cores' busy time beyond our two
    processes' is other work on the machine, which skews what a step measures. It also holds
    the server's embedded Valkey (idle during a video run) and interrupt time, so it is an
    upper bound on foreign work."""
    found = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name in (f"cpu{SERVER_CPU}", f"cpu{LOAD_CPU}"):
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, values[:8])
            busy = user + nice + system + irq + softirq + steal
            found[name[3:]] = busy / os.sysconf("SC_CLK_TCK")
    return found


# -- the load: one publisher, many counting viewers ------------------------------------------


@dataclass
class CountingViewer:
    pc: Any
    frames: int = 0
    octets: int = 0


def video_payload_type(sdp: str) -> int:
    """The payload type the server sends VP8 with (the first on its video line)."""
    line = next(line for line in sdp.splitlines() if line.startswith("m=video"))
    return int(line.split()[3])


def count_frames_cheaply(viewer: CountingViewer, payload_type: int) -> None:
    """Once a viewer is connected, count its video frames from the RTP header (which SRTP
    leaves in the clear: marker bit = a frame's last packet) and drop the packets, instead of
    decrypting, reordering and decoding them: the load core can then carry several times more
    viewers than the server's. STUN (ICE consent) and DTLS still go to aiortc."""
    ice = viewer.pc.getTransceivers()[0].receiver.transport.transport
    for protocol in ice._connection._protocols:
        pass_on = protocol.datagram_received

        def received(data: bytes, addr: Any, pass_on: Any = pass_on) -> None:
            if 128 <= data[0] <= 191 and len(data) > 12:
                if data[1] & 0x7F == payload_type:
                    viewer.octets += len(data) - 12
                    viewer.frames += data[1] >> 7
                    return
                if not 192 <= data[1] <= 223:  # audio RTP: not counted; RTCP goes on
                    return
            pass_on(data, addr)

        protocol.datagram_received = received


@dataclass
class Latency:
    """When each numbered picture left for the WHIP sender, and what the probes read back."""

    sent_at: dict[int, float] = field(default_factory=dict)  # number -> monotonic seconds
    recording: bool = False
    delays: list[float] = field(default_factory=list)  # seconds, while recording
    unreadable: int = 0  # decoded pictures with no valid number in them
    unmatched: int = 0  # a valid number this process has no send time for

    def stamp(self, camera: Any) -> None:
        """Note the time the camera's ``recv`` hands each picture to the sender (which then
        encodes and packs it). The camera numbers its pictures 0, 1, 2, ... as it makes them;
        the picture carries its number modulo 2^16, and so does the key here (bounded)."""
        recv = camera.recv

        async def stamped() -> Any:
            frame = await recv()
            number = (camera.sent - 1) % (1 << pattern.COUNTER_BITS)
            self.sent_at[number] = time.monotonic()
            return frame

        camera.recv = stamped

    def arrived(self, frame: Any) -> None:
        now = time.monotonic()
        if not self.recording:
            return
        number = pattern.read_counter(frame)
        if number is None:
            self.unreadable += 1
        elif number not in self.sent_at:
            self.unmatched += 1
        else:
            self.delays.append(now - self.sent_at[number])


async def read_pictures(track: Any, latency: Latency) -> None:
    """A probe's reader: every decoded video picture goes to ``latency``; sound is dropped (it
    is read so that the receiver's queue does not grow)."""
    from aiortc.mediastreams import MediaStreamError
    from av import VideoFrame

    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            if isinstance(frame, VideoFrame):
                latency.arrived(frame)


@dataclass
class Load:
    target: Target
    publisher: Any = None
    viewers: list[CountingViewer] = field(default_factory=list)
    latency: Latency | None = None
    want_probes: int = 0  # the first viewers decode (with ``latency``)
    probes: list[Any] = field(default_factory=list)  # those viewers' peer connections
    readers: set[asyncio.Task[None]] = field(default_factory=set)

    async def publish(self) -> None:
        from live.media.publisher import Publisher

        self.publisher = Publisher(
            self.target.base, self.target.room, self.target.creator_token, detail=True
        )
        await self.publisher.start()
        if self.latency is not None:
            # Before ICE and DTLS are through (they take the loopback's round trips), so
            # before the sender has asked for its first picture.
            self.latency.stamp(self.publisher.camera)

    async def connect(self, latency: Latency | None = None) -> Any:
        """A connected WHEP viewer; with ``latency``, one that decodes what it gets (a probe)."""
        from aiortc import RTCConfiguration, RTCPeerConnection

        from live.media.publisher import offer_answer

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        if latency is not None:

            @pc.on("track")
            def on_track(track: Any) -> None:
                self.readers.add(asyncio.create_task(read_pictures(track, latency)))

        await offer_answer(
            f"{self.target.base}/whep/{self.target.room}", self.target.viewer_token, pc
        )
        deadline = time.monotonic() + 20
        while pc.connectionState != "connected":
            if time.monotonic() > deadline:
                raise SystemExit(f"a viewer did not connect to {self.target.name}")
            await asyncio.sleep(0.02)
        return pc

    async def add_viewer(self) -> None:
        if self.latency is not None and len(self.probes) < self.want_probes:
            # aiortc decrypts, reorders and decodes everything a probe gets
            self.probes.append(await self.connect(self.latency))
            return
        pc = await self.connect()
        viewer = CountingViewer(pc)
        count_frames_cheaply(viewer, video_payload_type(pc.remoteDescription.sdp))
        self.viewers.append(viewer)

    @property
    def audience(self) -> int:
        return len(self.viewers) + len(self.probes)

    async def close(self) -> None:
        peers = [v.pc for v in self.viewers] + self.probes
        await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self.publisher is not None:
            await self.publisher.pc.close()


@dataclass
class Step:
    viewers: int
    delivered: float  # frames received / (viewers x frames the publisher sent)
    worst: float  # the least-served viewer's share
    kbps: float  # per viewer
    server_cpu: float  # share of its one core
    load_cpu: float  # share of the load process's core
    others_cpu: tuple[float, float]  # other work's share of the server's core, the load's core


def others(
    busy0: dict[str, float], elapsed: float, server_cpu: float, load_cpu: float
) -> tuple[float, float]:
    busy = {core: (s - busy0[core]) / elapsed for core, s in cores_busy_s().items()}
    return (
        max(0.0, busy[SERVER_CPU] - server_cpu),
        max(0.0, busy[LOAD_CPU] - load_cpu),
    )


async def measure(load: Load, window_s: float = WINDOW_S) -> Step:
    """Frames delivered to the counting viewers (the probes are not among them) over one
    window, and both processes' CPU; the probes' readings are recorded in the same window."""
    await asyncio.sleep(2)  # let new viewers get their first keyframe and settle
    frames0 = [v.frames for v in load.viewers]
    octets0 = sum(v.octets for v in load.viewers)
    sent0 = load.publisher.camera.sent
    if load.latency is not None:
        load.latency.recording = True
    server0, me0, t0 = cpu_seconds(load.target.process.pid), time.process_time(), time.monotonic()
    busy0 = cores_busy_s()
    await asyncio.sleep(window_s)
    elapsed = time.monotonic() - t0
    server_cpu = (cpu_seconds(load.target.process.pid) - server0) / elapsed
    load_cpu = (time.process_time() - me0) / elapsed
    others_cpu = others(busy0, elapsed, server_cpu, load_cpu)
    if load.latency is not None:
        load.latency.recording = False
    sent = load.publisher.camera.sent - sent0
    got = [v.frames - f0 for v, f0 in zip(load.viewers, frames0, strict=True)]
    octets = sum(v.octets for v in load.viewers) - octets0
    return Step(
        viewers=len(load.viewers),
        delivered=sum(got) / (len(got) * sent),
        worst=min(got) / sent,
        kbps=octets * 8 / 1000 / elapsed / len(got),
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        others_cpu=others_cpu,
    )


async def ramp(target: Target, start: int, step: int, limit: int) -> list[Step]:
    load = Load(target)
    steps: list[Step] = []
    try:
        await load.publish()
        want = start
        while want <= limit:
            while len(load.viewers) < want:
                await load.add_viewer()
            result = await measure(load)
            steps.append(result)
            say(
                f"  {target.name:22} {result.viewers:4} viewers: {result.delivered:6.1%} of frames "
                f"(worst viewer {result.worst:6.1%}), {result.kbps:5.0f} kb/s each, "
                f"server CPU {result.server_cpu:4.0%}, load CPU {result.load_cpu:4.0%}, "
                f"other work {busy_elsewhere(result.others_cpu)}"
            )
            if result.delivered < TARGET:
                break
            want += step
    finally:
        await load.close()
    return steps


@dataclass
class LatencyStep:
    viewers: int  # probes included
    probes: int
    samples: int  # pictures read back in the window, all probes together
    unreadable: int
    unmatched: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    delivered: float  # to the counting viewers, as in the ramp
    server_cpu: float
    load_cpu: float
    others_cpu: tuple[float, float]


def busy_elsewhere(others_cpu: tuple[float, float]) -> str:
    return f"{others_cpu[0]:.0%} of the server's core, {others_cpu[1]:.0%} of the load's"


async def latencies(
    target: Target, sizes: list[int], probes: int, window_s: float
) -> list[LatencyStep]:
    """One publisher; the audience grows to each size in turn, its first ``probes`` viewers
    decoding; each size gets its own window of readings."""
    import numpy as np

    load = Load(target, latency=Latency(), want_probes=probes)
    found: list[LatencyStep] = []
    try:
        await load.publish()
        for size in sorted(sizes):
            while load.audience < size:
                await load.add_viewer()
            latency = load.latency
            assert latency is not None
            latency.delays.clear()
            latency.unreadable = latency.unmatched = 0
            step = await measure(load, window_s)
            ms = sorted(d * 1000 for d in latency.delays)
            p50, p95 = np.percentile(ms, [50, 95]) if ms else (None, None)
            result = LatencyStep(
                viewers=load.audience,
                probes=len(load.probes),
                samples=len(ms),
                unreadable=latency.unreadable,
                unmatched=latency.unmatched,
                p50_ms=None if p50 is None else round(float(p50), 1),
                p95_ms=None if p95 is None else round(float(p95), 1),
                max_ms=round(ms[-1], 1) if ms else None,
                delivered=step.delivered,
                server_cpu=step.server_cpu,
                load_cpu=step.load_cpu,
                others_cpu=step.others_cpu,
            )
            found.append(result)
            say(f"  latency {describe(result)}")
    finally:
        await load.close()
    return found


def describe(step: LatencyStep) -> str:
    if step.p50_ms is None:
        figures = "no picture read back"
    else:
        held = "held" if (step.p95_ms or 0) <= LATENCY_TARGET_MS else "NOT held"
        figures = (
            f"p50 {step.p50_ms:.0f} ms, p95 {step.p95_ms:.0f} ms, max {step.max_ms:.0f} ms "
            f"(p95 <= {LATENCY_TARGET_MS} ms {held})"
        )
    return (
        f"{step.viewers} viewers ({step.probes} decoding): {figures}; {step.samples} samples, "
        f"{step.unreadable} unreadable, {step.unmatched} unmatched; counting viewers got "
        f"{step.delivered:.1%} of frames; server CPU {step.server_cpu:.0%}, "
        f"load CPU {step.load_cpu:.0%}, other work {busy_elsewhere(step.others_cpu)}"
    )


def sustained(steps: list[Step]) -> Step | None:
    good = [s for s in steps if s.delivered >= TARGET]
    return good[-1] if good else None


def stop(target: Target) -> None:
    stop_process(target.process, 20)


async def main(args: argparse.Namespace) -> int:
    from live.media.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    results: dict[str, Step | None] = {}
    steps: list[Step] = []
    lags: list[LatencyStep] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    try:
        if args.only in (None, "baseline"):
            target = start_baseline(tmp)
            try:
                climbed = await ramp(target, 1, 1, args.baseline_limit)
                results["baseline"] = sustained(climbed)
                steps += climbed
            finally:
                stop(target)
        if args.only in (None, "livecart"):
            target = start_livecart(tmp / "ramp")
            try:
                climbed = await ramp(target, args.start, args.step, args.limit)
                results["livecart"] = sustained(climbed)
                steps += climbed
            finally:
                stop(target)
        if args.only in (None, "latency") and args.latency_at:
            target = start_livecart(tmp / "latency")  # a fresh server, no ramp behind it
            try:
                lags = await latencies(target, args.latency_at, args.probes, args.latency_window)
            finally:
                stop(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base, ours = results.get("baseline"), results.get("livecart")
    ratio = ours.viewers / base.viewers if base and ours else None
    if args.json:
        print(
            json.dumps(
                {
                    **{name: best and asdict(best) for name, best in results.items()},
                    "ratio": ratio,
                    "latency": [asdict(step) for step in lags],
                },
                indent=1,
            )
        )
    say("")
    for name, best in results.items():
        if best is None:
            say(f"{name}: not even the first step sustained")
        else:
            say(
                f"{name}: {best.viewers} viewers sustained on one core at 640x360 {FPS} fps "
                f"({best.delivered:.1%} of frames; server CPU {best.server_cpu:.0%}, "
                f"load CPU {best.load_cpu:.0%})"
            )
    if ratio is not None:
        say(f"ratio livecart / MediaRelay: {ratio:.1f}x (target >= 10x)")
    for step in lags:
        say(f"glass-to-glass latency, livecart, {describe(step)}")
    seen = [s.others_cpu for s in steps] + [s.others_cpu for s in lags]
    busiest = max((max(pair) for pair in seen), default=0.0)
    if busiest > OTHERS_WARN:
        say(
            f"WARNING: other work took up to {busiest:.0%} of a pinned core during a step; "
            "the figures are skewed (the machine was not idle)."
        )
    # A latency run that read nothing back measured nothing: say so with the exit code.
    return 1 if any(step.samples == 0 for step in lags) else 0


def sizes(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-baseline":
        serve_baseline(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["baseline", "livecart", "latency"])
    parser.add_argument("--start", type=int, default=20, help="livecart's first step (viewers)")
    parser.add_argument("--step", type=int, default=20)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--baseline-limit", type=int, default=40)
    parser.add_argument(
        "--latency-at",
        type=sizes,
        default=[10, 100],
        help="audience sizes for glass-to-glass latency on livecart, e.g. 10,100 ('' skips it)",
    )
    parser.add_argument("--probes", type=int, default=3, help="viewers that decode (latency)")
    parser.add_argument(
        "--latency-window", type=float, default=10.0, help="seconds of readings per size"
    )
    parser.add_argument(
        "--json", action="store_true", help="the results as JSON on stdout; progress on stderr"
    )
    parsed = parser.parse_args()
    if parsed.latency_at and not 0 < parsed.probes < min(parsed.latency_at):
        parser.error("--probes must be at least 1 and below every --latency-at size")
    if parsed.json:
        report = sys.stderr
    sys.exit(asyncio.run(main(parsed)))
