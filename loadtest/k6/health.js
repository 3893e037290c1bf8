// Health endpoints under a bounded constant arrival rate: how fast an idle node answers the
// probes an orchestrator sends. Run against a node on this machine only:
//   BASE_URL=http://127.0.0.1:8080 RATE=2000 k6 run loadtest/k6/health.js
import http from "k6/http";
import { check } from "k6";

const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:8080";
const RATE = Number(__ENV.RATE || 1000);

export const options = {
  scenarios: {
    probes: {
      executor: "constant-arrival-rate",
      rate: RATE,
      timeUnit: "1s",
      duration: __ENV.DURATION || "10s",
      preAllocatedVUs: 50,
      maxVUs: 200,
    },
  },
  summaryTrendStats: ["p(50)", "p(95)", "p(99)", "max"],
  thresholds: {
    http_req_failed: ["rate<0.001"],
    "http_req_duration{name:healthz}": ["p(99)<20"],
    dropped_iterations: ["count<10"],
  },
};

export default function () {
  const res = http.get(`${BASE_URL}/healthz`, { tags: { name: "healthz" } });
  check(res, {
    "status 200": (r) => r.status === 200,
    "json ok": (r) => r.status === 200 && r.json("status") === "ok",
  });
}
