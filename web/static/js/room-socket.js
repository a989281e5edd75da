// The room's websocket (docs/protocol.md, "Live rooms"): hello with the last sequence number
// seen, so a reconnect gets exactly the missed events (or a fresh snapshot); the server's
// clock offset from ping/time; reconnects with backoff and jitter.

const FINAL_CLOSES = new Set([1008, 1009, 4003, 4004]); // 4003: banned from the room

export class RoomSocket {
  constructor(roomId, { token, name, onMessage, onState }) {
    this.roomId = roomId;
    this.token = token; // a function returning a promise of the hello token
    this.name = name;
    this.onMessage = onMessage;
    this.onState = onState;
    this.lastSeq = null;
    this.offset = 0; // server clock - local clock, ms
    this.bestRtt = Infinity;
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
  }

  now() {
    return Date.now() + this.offset;
  }

  start() {
    this.connect();
    setInterval(() => this.ping(), 15000);
  }

  stop() {
    this.stopped = true;
    this.ws?.close();
  }

  async connect() {
    if (this.stopped) return;
    this.onState(this.attempt === 0 ? "connecting" : "reconnecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/rooms/${this.roomId}`);
    this.ws = ws;
    ws.onopen = async () => {
      let token;
      try {
        token = await this.token();
      } catch {
        ws.close(); // no session to be had right now: try again like any other drop
        return;
      }
      const hello = { type: "hello", token, protocol: 1 };
      if (this.lastSeq !== null) hello.last_seq = this.lastSeq;
      if (this.name) hello.name = this.name;
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      for (const message of JSON.parse(event.data)) this.receive(message);
    };
    ws.onclose = (event) => this.closed(ws, event.code);
  }

  receive(message) {
    if (message.type === "welcome") {
      this.user = message.user; // who this page is in the room (the guest session's id)
      this.attempt = 0;
      this.learnClock(message.server_ms, 0);
      this.onState("live");
      for (let i = 0; i < 3; i++) setTimeout(() => this.ping(), 200 * i);
    } else if (message.type === "time") {
      this.learnClock(message.server_ms, Date.now() - message.client_ms, message.client_ms);
      return;
    }
    if (message.type === "welcome" || message.type === "snapshot") {
      // A resumed welcome's seq is where its replay will end: the replayed events move us.
      if (message.type === "snapshot" || !message.resumed) this.lastSeq = message.seq;
    } else if (message.seq !== undefined) {
      if (this.lastSeq !== null && message.seq <= this.lastSeq) return; // seen already
      if (this.lastSeq !== null && message.seq > this.lastSeq + 1) {
        this.ws.close(); // a gap (it should not happen): resume from what we have
        return;
      }
      this.lastSeq = message.seq;
    }
    this.onMessage(message);
  }

  learnClock(serverMs, rtt, sentAt) {
    // offset = server - (sent + received) / 2, from the sample with the shortest round trip.
    if (sentAt === undefined) {
      if (this.bestRtt === Infinity) this.offset = serverMs - Date.now();
      return;
    }
    if (rtt <= this.bestRtt) {
      this.bestRtt = rtt;
      this.offset = serverMs - (sentAt + rtt / 2);
    }
  }

  ping() {
    this.send({ type: "ping", client_ms: Date.now() });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  closed(ws, code) {
    if (ws !== this.ws || this.stopped) return;
    if (FINAL_CLOSES.has(code)) {
      this.stopped = true;
      this.onState("closed", code);
      return;
    }
    this.attempt += 1;
    this.onState("reconnecting");
    // A whole room dropped at once must not come back at once: jitter every retry.
    const base = code === 4002 ? 0 : Math.min(5000, 300 * 2 ** Math.min(this.attempt, 5));
    setTimeout(() => this.connect(), base + Math.random() * 2000);
  }
}
