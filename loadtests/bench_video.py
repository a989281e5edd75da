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

    .venv/bin/python loadtests/bench_video.py            # both, about 4 minutes
    .venv/bin/python loadtests/bench_video.py --only livecart --start 40 --step 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script from a checkout: its root holds tests.harness (and livecart's packages, when
# livecart is not installed).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import ROOT, free_port, livecart, serve, stop_process, stop_server

LOAD_CPU, SERVER_CPU = "1", "0"
WINDOW_S = 5.0
TARGET = 0.95
FPS = 30


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
class Load:
    target: Target
    publisher: Any = None
    viewers: list[CountingViewer] = field(default_factory=list)

    async def publish(self) -> None:
        from live.media.publisher import Publisher

        self.publisher = Publisher(
            self.target.base, self.target.room, self.target.creator_token, detail=True
        )
        await self.publisher.start()

    async def add_viewer(self) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        from live.media.publisher import offer_answer

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        viewer = CountingViewer(pc)
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await offer_answer(
            f"{self.target.base}/whep/{self.target.room}", self.target.viewer_token, pc
        )
        deadline = time.monotonic() + 20
        while pc.connectionState != "connected":
            if time.monotonic() > deadline:
                raise SystemExit(f"a viewer did not connect to {self.target.name}")
            await asyncio.sleep(0.02)
        count_frames_cheaply(viewer, video_payload_type(pc.remoteDescription.sdp))
        self.viewers.append(viewer)

    async def close(self) -> None:
        await asyncio.gather(*(v.pc.close() for v in self.viewers), return_exceptions=True)
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


async def measure(load: Load) -> Step:
    await asyncio.sleep(2)  # let new viewers get their first keyframe and settle
    frames0 = [v.frames for v in load.viewers]
    octets0 = sum(v.octets for v in load.viewers)
    sent0 = load.publisher.camera.sent
    server0, me0, t0 = cpu_seconds(load.target.process.pid), time.process_time(), time.monotonic()
    await asyncio.sleep(WINDOW_S)
    elapsed = time.monotonic() - t0
    sent = load.publisher.camera.sent - sent0
    got = [v.frames - f0 for v, f0 in zip(load.viewers, frames0, strict=True)]
    octets = sum(v.octets for v in load.viewers) - octets0
    return Step(
        viewers=len(load.viewers),
        delivered=sum(got) / (len(got) * sent),
        worst=min(got) / sent,
        kbps=octets * 8 / 1000 / elapsed / len(got),
        server_cpu=(cpu_seconds(load.target.process.pid) - server0) / elapsed,
        load_cpu=(time.process_time() - me0) / elapsed,
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
            print(
                f"  {target.name:22} {result.viewers:4} viewers: {result.delivered:6.1%} of frames "
                f"(worst viewer {result.worst:6.1%}), {result.kbps:5.0f} kb/s each, "
                f"server CPU {result.server_cpu:4.0%}, load CPU {result.load_cpu:4.0%}",
                flush=True,
            )
            if result.delivered < TARGET:
                break
            want += step
    finally:
        await load.close()
    return steps


def sustained(steps: list[Step]) -> Step | None:
    good = [s for s in steps if s.delivered >= TARGET]
    return good[-1] if good else None


def stop(target: Target) -> None:
    stop_process(target.process, 20)


async def main(args: argparse.Namespace) -> None:
    from live.media.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    results: dict[str, Step | None] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    try:
        if args.only in (None, "baseline"):
            target = start_baseline(tmp)
            try:
                results["baseline"] = sustained(await ramp(target, 1, 1, args.baseline_limit))
            finally:
                stop(target)
        if args.only in (None, "livecart"):
            target = start_livecart(tmp)
            try:
                results["livecart"] = sustained(
                    await ramp(target, args.start, args.step, args.limit)
                )
            finally:
                stop(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    for name, best in results.items():
        if best is None:
            print(f"{name}: not even the first step sustained")
        else:
            print(
                f"{name}: {best.viewers} viewers sustained on one core at 640x360 {FPS} fps "
                f"({best.delivered:.1%} of frames; server CPU {best.server_cpu:.0%}, "
                f"load CPU {best.load_cpu:.0%})"
            )
    base, ours = results.get("baseline"), results.get("livecart")
    if base and ours:
        print(f"ratio livecart / MediaRelay: {ours.viewers / base.viewers:.1f}x (target >= 10x)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-baseline":
        serve_baseline(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["baseline", "livecart"])
    parser.add_argument("--start", type=int, default=20, help="livecart's first step (viewers)")
    parser.add_argument("--step", type=int, default=20)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--baseline-limit", type=int, default=40)
    asyncio.run(main(parser.parse_args()))
