// k6 load script for a running control plane (e.g. `companion --mode control-plane`):
// sign-in, token refresh and listing messages, with p50/p95/p99 per operation.
//
//   BASE=http://127.0.0.1:8080 RATE=10 k6 run loadtest/control-plane/auth-and-messages.js
//
// RATE is iterations per second; one iteration signs in once, refreshes 5 times and lists
// messages 20 times, so the request rate is 26 x RATE. Run it at increasing RATEs.
// Rate limits apply: start the server with them off for a load run
// (COMPANION__CONTROL_PLANE__RATE_LIMITS='[]' COMPANION__CONTROL_PLANE__TIER_API_LIMITS=false
// COMPANION__CONTROL_PLANE__LOGIN_EMAIL_LIMIT=0), or sign-ins beyond 10 per 15 minutes per
// address, or 20 per hour per account, get 429.
import http from 'k6/http';
import { check } from 'k6';
import { Trend } from 'k6/metrics';

const BASE = __ENV.BASE || 'http://127.0.0.1:8080';
const login = new Trend('cp_login', true);
const refresh = new Trend('cp_refresh', true);
const list = new Trend('cp_list_messages', true);
const json = { headers: { 'content-type': 'application/json' } };
const RATE = Number(__ENV.RATE || 5);
// Also the most iterations in flight: each virtual user has an account of its own.
const VUS = 64;

export const options = {
  scenarios: {
    mixed: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: VUS,
      maxVUs: VUS,
    },
  },
  summaryTrendStats: ['p(50)', 'p(95)', 'p(99)', 'max'],
  thresholds: { checks: ['rate>0.999'], dropped_iterations: ['count<1'] },
};

// One account (and conversation) per virtual user: sessions are capped at 3 per account, so
// users sharing an account would end each other's sessions.
export function setup() {
  const users = [];
  for (let u = 0; u < VUS; u++) {
    const email = `k6-${Date.now()}-${u}@example.com`;
    const password = 'k6 load test password';
    http.post(`${BASE}/api/auth/signup`, JSON.stringify({ email, password, birth_year: 1990, consent_terms: true }), json);
    const tokens = http.post(`${BASE}/api/auth/login`, JSON.stringify({ email, password }), json).json();
    const auth = { headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.access_token}` } };
    const conv = http.post(`${BASE}/api/conversations`, JSON.stringify({ title: 'k6' }), auth).json();
    for (let i = 0; i < 40; i++) {
      http.post(`${BASE}/api/conversations/${conv.id}/messages`, JSON.stringify({ content: `message ${i}` }), auth);
    }
    users.push({ email, password, conv: conv.id });
  }
  return { users };
}

export default function (setupData) {
  const data = setupData.users[(__VU - 1) % VUS];
  const r = http.post(`${BASE}/api/auth/login`, JSON.stringify({ email: data.email, password: data.password }), json);
  login.add(r.timings.duration);
  if (!check(r, { 'login 200': (x) => x.status === 200 })) return;
  let pair = r.json();
  for (let i = 0; i < 5; i++) {
    const f = http.post(`${BASE}/api/auth/refresh`, JSON.stringify({ refresh_token: pair.refresh_token }), json);
    refresh.add(f.timings.duration);
    if (!check(f, { 'refresh 200': (x) => x.status === 200 })) return;
    pair = f.json();
  }
  const auth = { headers: { authorization: `Bearer ${pair.access_token}` } };
  for (let i = 0; i < 20; i++) {
    const m = http.get(`${BASE}/api/conversations/${data.conv}/messages?limit=20`, auth);
    list.add(m.timings.duration);
    check(m, { 'list 200': (x) => x.status === 200 });
  }
}
