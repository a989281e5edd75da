"""A WHIP publisher built on GStreamer's webrtcbin, the WebRTC stack inside many hardware and
software encoders: run with Debian's python3 (python3-gi and GStreamer 1.22's plugins), not the
project's venv. It sends what such encoders send: one offer with every candidate in it,
``a=setup:actpass``, a Bearer token; a 640x360 30 fps test pattern in VP8 or H.264
(constrained baseline, as OBS sends) and Opus audio.

    /usr/bin/python3 tests/gst_whip.py URL TOKEN [--codec vp8|h264] [--seconds S]

Prints one line per step (``offer a=setup:…``, ``answered 201 <location>``, ``ice <state>``,
``connected``, ``failed <why>``) and exits 0 once it was connected for ``--seconds``, 1 when
the peer failed or the server refused, 2 on bad arguments. Hangs up with DELETE at the end.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

VIDEO = {
    "vp8": "vp8enc deadline=1 cpu-used=8 target-bitrate=800000 keyframe-max-dist=60 "
    "! rtpvp8pay pt=96 ! application/x-rtp,media=video,encoding-name=VP8,payload=96",
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast bitrate=800 key-int-max=60 "
    "! video/x-h264,profile=constrained-baseline ! h264parse "
    "! rtph264pay config-interval=-1 pt=102 aggregate-mode=zero-latency "
    "! application/x-rtp,media=video,encoding-name=H264,payload=102",
}
PIPELINE = (
    "webrtcbin name=pc bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 "
    "! videoconvert ! queue ! {video} ! pc. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc "
    "! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! pc."
)


def say(line: str) -> None:
    print(line, flush=True)


class Publisher:
    def __init__(self, url: str, token: str, codec: str, seconds: float) -> None:
        self.url, self.token, self.seconds = url, token, seconds
        self.location = ""
        self.outcome = 1
        self.loop = GLib.MainLoop()
        self.pipeline = Gst.parse_launch(PIPELINE.format(video=VIDEO[codec]))
        self.pc = self.pipeline.get_by_name("pc")
        self.pc.connect("on-negotiation-needed", self.negotiate)
        self.pc.connect("notify::ice-gathering-state", self.gathered)
        self.pc.connect("notify::ice-connection-state", self.ice_state)
        self.pc.connect("notify::connection-state", self.peer_state)
        self.keep_to_loopback()
        # The wrappers are kept too (see keep_to_loopback): only sending, audio and video.
        self.sending = self.transceivers()
        for transceiver in self.sending:
            transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)

    def keep_to_loopback(self) -> None:
        """Gather on 127.0.0.1 only, where the test's server listens (libnice leaves the
        loopback out unless told), so nothing leaves this machine. UDP only: libnice 0.1.21
        crashes gathering TCP candidates on a local address set this way."""
        ice = self.pc.get_property("ice-agent")
        ice.set_property("ice-tcp", False)
        address = Nice.Address()
        address.init()
        address.set_from_string("127.0.0.1")
        # Both kept for the publisher's life: PyGObject drops a reference it never took when
        # its wrapper of the agent goes, and the agent is freed under webrtcbin.
        self.ice, self.agent, self.loopback = ice, ice.get_property("agent"), address
        self.agent.add_local_address(address)

    def run(self) -> int:
        self.pipeline.set_state(Gst.State.PLAYING)
        GLib.timeout_add_seconds(int(self.seconds) + 30, self.give_up)
        self.loop.run()
        self.hang_up()
        self.pipeline.set_state(Gst.State.NULL)
        return self.outcome

    def transceivers(self) -> list[GstWebRTC.WebRTCRTPTransceiver]:
        found, index = [], 0
        while (t := self.pc.emit("get-transceiver", index)) is not None:
            found.append(t)
            index += 1
        return found

    def negotiate(self, pc: Gst.Element) -> None:
        promise = Gst.Promise.new_with_change_func(self.offered, pc, None)
        pc.emit("create-offer", None, promise)

    def offered(self, promise: Gst.Promise, pc: Gst.Element, _: object) -> None:
        promise.wait()
        reply = promise.get_reply()  # kept while the offer is used: the offer lives in it
        offer = reply.get_value("offer")
        done = Gst.Promise.new()
        pc.emit("set-local-description", offer, done)
        done.interrupt()

    def gathered(self, pc: Gst.Element, _: object) -> None:
        if pc.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        offer = pc.get_property("local-description").sdp.as_text()
        setup = next((line for line in offer.splitlines() if line.startswith("a=setup:")), "")
        say(f"offer {setup}")
        try:
            answer = self.post(offer)
        except urllib.error.HTTPError as err:
            say(f"failed the server refused: {err.code} {err.read().decode(errors='replace')}")
            self.loop.quit()
            return
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        pc.emit("set-remote-description", description, Gst.Promise.new())

    def post(self, offer: str) -> str:
        request = urllib.request.Request(
            self.url,
            data=offer.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            self.location = urllib.parse.urljoin(self.url, response.headers["Location"])
            say(f"answered {response.status} {self.location}")
            return str(response.read().decode())

    def ice_state(self, pc: Gst.Element, _: object) -> None:
        say(f"ice {pc.get_property('ice-connection-state').value_nick}")

    def peer_state(self, pc: Gst.Element, _: object) -> None:
        state = pc.get_property("connection-state")
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            say("connected")
            GLib.timeout_add(int(self.seconds * 1000), self.done)
        elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            say("failed the peer connection failed (ICE or DTLS)")
            self.loop.quit()

    def done(self) -> bool:
        self.outcome = 0
        self.loop.quit()
        return False

    def give_up(self) -> bool:
        say("failed never connected")
        self.loop.quit()
        return False

    def hang_up(self) -> None:
        if not self.location:
            return
        request = urllib.request.Request(
            self.location, method="DELETE", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                say(f"hung up {response.status}")
        except urllib.error.HTTPError as err:
            say(f"hung up {err.code} {err.read().decode(errors='replace')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--codec", choices=sorted(VIDEO), default="vp8")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    Gst.init(None)
    return Publisher(args.url, args.token, args.codec, args.seconds).run()


if __name__ == "__main__":
    sys.exit(main())
