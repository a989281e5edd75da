// WHIP (publish) and WHEP (watch): one SDP offer over HTTP, the answer carries every ICE
// candidate, DELETE on the Location of the answer (the server's peer for ours) hangs up.

async function gathered(pc) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000); // send what we have: the server's candidates suffice locally
  });
}

async function negotiate(pc, url, headers) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", ...headers },
    body: pc.localDescription.sdp,
    credentials: "same-origin",
  });
  if (response.status !== 201) {
    const error = await response.json().catch(() => ({ error: { code: "http_" + response.status } }));
    pc.close();
    const failure = new Error(error.error.message || error.error.code);
    failure.code = error.error.code;
    throw failure;
  }
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return response.headers.get("Location");
}

export class MediaPeer {
  constructor(pc, location, headers) {
    this.pc = pc;
    this.location = location;
    this.headers = headers;
  }

  // Hang up: DELETE first, then close the connection. Closing first would let the server see
  // the connection go and end its peer itself, and the DELETE would find nothing (404).
  async close() {
    const location = this.location;
    this.location = null;
    if (location) {
      await fetch(location, { method: "DELETE", headers: this.headers, keepalive: true, credentials: "same-origin" })
        .catch(() => {});
    }
    this.pc.close();
  }
}

export async function publish(url, stream, headers) {
  const pc = new RTCPeerConnection();
  for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
  return new MediaPeer(pc, await negotiate(pc, url, headers), headers);
}

export async function watch(url, video, headers) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.addEventListener("track", (event) => {
    stream.addTrack(event.track);
    video.srcObject = stream;
  });
  return new MediaPeer(pc, await negotiate(pc, url, headers), headers);
}
