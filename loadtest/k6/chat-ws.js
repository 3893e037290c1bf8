// WebSocket chat at scale: CONNECTIONS connections to /v1/chat/ws (10,000 by default), held
// open for HOLD_SECS; a TALKERS fraction of them sends MESSAGES messages each and reads the
// streamed replies from the mock LLM (first messages spread over TALK_SPREAD_SECS; 0 = all at
// once). Browser-style auth (token in the subprotocol list).
// Needs users from `chat-ws-load setup` (USERS_FILE). Run with loadtest/chat-ws/run.sh, which
// starts a release build, raises `ulimit -n` and prepares the users; by hand:
//   k6 run -e USERS_FILE=chat-users.json -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/chat-ws.js
import { WebSocket } from "k6/experimental/websockets";
import { Counter, Trend, Rate } from "k6/metrics";
import { SharedArray } from "k6/data";

const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:8080";
const WS_URL = `${BASE_URL.replace(/^http/, "ws")}/v1/chat/ws`;
const CONNECTIONS = Number(__ENV.CONNECTIONS || 10000);
const VUS = Number(__ENV.VUS || 100);
const PER_VU = Math.ceil(CONNECTIONS / VUS);
const HOLD_SECS = Number(__ENV.HOLD_SECS || 30);
const RAMP_SECS = Number(__ENV.RAMP_SECS || 20);
const TALKERS = Number(__ENV.TALKERS || 0.05);
const MESSAGES = Number(__ENV.MESSAGES || 2);
// Talkers start their first message spread evenly over this many seconds after the ramp, as
// people would; 0 sends every first message at the same instant (the worst case).
const TALK_SPREAD_SECS = Number(__ENV.TALK_SPREAD_SECS ?? 15);
const FIRST_DELTA_P95_MS = Number(__ENV.FIRST_DELTA_P95_MS || 1000);

const users = new SharedArray("users", () => JSON.parse(open(__ENV.USERS_FILE || "chat-users.json")));

const opened = new Counter("chat_connections_opened");
const helloOk = new Rate("chat_hello_received");
const deltas = new Counter("chat_message_deltas");
const replies = new Counter("chat_replies_completed");
const errors = new Counter("chat_error_events");
const closedEarly = new Counter("chat_closed_early");
const firstDelta = new Trend("chat_time_to_first_delta", true);
const replyTime = new Trend("chat_reply_duration", true);

export const options = {
  scenarios: {
    connections: {
      executor: "per-vu-iterations",
      vus: VUS,
      iterations: 1,
      maxDuration: `${RAMP_SECS + HOLD_SECS + 60}s`,
    },
  },
  summaryTrendStats: ["p(50)", "p(95)", "p(99)", "max"],
  thresholds: {
    chat_hello_received: ["rate>0.99"],
    chat_error_events: ["count<10"],
    chat_closed_early: ["count<10"],
    chat_time_to_first_delta: [`p(95)<${FIRST_DELTA_P95_MS}`],
    chat_replies_completed: [`count>=${Math.floor(CONNECTIONS * TALKERS * MESSAGES * 0.99)}`],
  },
};

function talk(ws, user, index) {
  let sent = 0;
  let started = 0;
  let first = 0;
  const next = () => {
    if (sent >= MESSAGES) return;
    sent += 1;
    started = Date.now();
    first = 0;
    ws.send(JSON.stringify({
      type: "send_message",
      requestId: `k6-${index}-${sent}`,
      conversationId: user.conversation,
      content: `k6 message ${sent} from connection ${index}`,
    }));
  };
  const onEvent = (event) => {
    if (event.type === "message_delta") {
      if (!first) {
        first = Date.now();
        firstDelta.add(first - started);
      }
      deltas.add(1);
    } else if (event.type === "typing_stop") {
      replies.add(1);
      replyTime.add(Date.now() - started);
      next();
    }
  };
  return { start: next, onEvent };
}

export default function () {
  const vu = __VU - 1;
  for (let i = 0; i < PER_VU; i++) {
    const index = vu * PER_VU + i;
    if (index >= CONNECTIONS) break;
    const step = Math.max(1, Math.round(1 / Math.max(TALKERS, 1e-9)));
    const talker = TALKERS > 0 && index % step === 0;
    // Talkers get distinct users first (each user's daily message quota is the free tier's).
    const user = users[(talker ? index / step : index) % users.length];
    // Spread connection opening over the ramp so the accept queue is not one burst.
    const delay = (RAMP_SECS * 1000 * i) / PER_VU;
    setTimeout(() => {
      const ws = new WebSocket(WS_URL, ["companion.v1", `bearer.${user.token}`]);
      let talking = null;
      let sawHello = false;
      let closing = false;
      ws.onopen = () => opened.add(1);
      ws.onmessage = (m) => {
        const event = JSON.parse(m.data);
        if (event.type === "hello") {
          sawHello = true;
          helloOk.add(true);
          if (talker) {
            talking = talk(ws, user, index);
            // Start talking once the connections are open, each talker at its own moment.
            const talkers = Math.max(1, Math.floor(CONNECTIONS / step));
            const offset = (TALK_SPREAD_SECS * 1000 * (index / step)) / talkers;
            setTimeout(talking.start, RAMP_SECS * 1000 - delay + offset);
          }
          return;
        }
        if (event.type === "error") errors.add(1);
        if (talking) talking.onEvent(event);
      };
      ws.onerror = (e) => {
        if (!sawHello) {
          helloOk.add(false);
          console.warn(`connection ${index} failed before hello: ${e.error}`);
        }
      };
      ws.onclose = () => {
        if (!closing) closedEarly.add(1);
      };
      setTimeout(() => {
        closing = true;
        ws.close();
      }, RAMP_SECS * 1000 - delay + HOLD_SECS * 1000);
    }, delay);
  }
}
