// The demo page: sign in, call the companion over WebRTC, see the conversation and the
// companion's face. Plain JavaScript, no build step; served by the gateway with a strict
// Content-Security-Policy, so nothing here may use inline styles, eval or inline handlers.
//
// Test hooks are ordinary DOM state only (data-* attributes and counters), so the browser
// tests read what a person would see.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    body: document.body,
    notice: $('notice'),
    who: $('who'),
    whoName: $('who-name'),
    signOut: $('sign-out'),
    auth: $('auth'),
    authForm: $('auth-form'),
    email: $('email'),
    password: $('password'),
    signupFields: $('signup-fields'),
    birthYear: $('birth-year'),
    terms: $('terms'),
    signIn: $('sign-in'),
    createAccount: $('create-account'),
    dev: $('dev'),
    devForm: $('dev-form'),
    devToken: $('dev-token'),
    call: $('call'),
    avatar: $('avatar'),
    mouth: $('mouth'),
    status: $('call-status'),
    callButton: $('call-button'),
    hangUp: $('hang-up'),
    stop: $('stop'),
    mute: $('mute'),
    latency: $('latency'),
    transcript: $('transcript'),
    nodeStatus: $('node-status'),
    plan: $('plan'),
    planTier: $('plan-tier'),
    planUsage: $('plan-usage'),
    upgrade: $('upgrade'),
  };

  // ---------------------------------------------------------------- messages

  function showNotice(text, kind = 'error') {
    el.notice.textContent = text;
    el.notice.dataset.kind = kind;
    el.notice.hidden = false;
  }

  function clearNotice() {
    el.notice.hidden = true;
    el.notice.textContent = '';
    delete el.notice.dataset.kind;
  }

  function setStatus(text) {
    el.status.textContent = text;
  }

  // A `{"error":{"code","message"}}` body (gateway and control plane alike) as one sentence.
  async function errorOf(response, fallback) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      // Not JSON (a proxy's page, an empty body): the status says enough.
    }
    const e = body && body.error;
    if (e && typeof e.message === 'string') {
      return { code: String(e.code || 'error'), text: `${e.message} (${e.code || response.status})` };
    }
    return { code: `http_${response.status}`, text: `${fallback} (HTTP ${response.status})` };
  }

  // ---------------------------------------------------------------- signing in

  const session = {
    accessToken: null,
    refreshToken: null,
    label: '',
    dev: false,
  };
  const devTokensOn =
    document.querySelector('meta[name="companion-dev-tokens"]')?.content === 'on';

  function signedIn(tokens, label, dev) {
    session.accessToken = tokens.access_token;
    session.refreshToken = tokens.refresh_token || null;
    session.label = label;
    session.dev = dev;
    el.password.value = '';
    el.whoName.textContent = label;
    el.who.hidden = false;
    el.auth.hidden = true;
    el.call.hidden = false;
    el.body.dataset.state = 'ready';
    setStatus('Ready to call.');
    el.callButton.focus();
    if (!dev) showPlan().catch(() => {});
  }

  // ---------------------------------------------------------------- plan and upgrade

  // The tier and today's use (control plane's /api/usage); an Upgrade button to Stripe
  // Checkout when billing is on (/api/subscription/current answers 503 when it is off).
  async function showPlan() {
    const usage = await authed('/api/usage');
    if (!usage.ok) return;
    const u = await usage.json();
    const part = (kind, unit, scale) => {
      const q = (u.quotas || []).find((x) => x.kind === kind);
      if (!q) return '';
      const used = Math.ceil((q.used + q.reserved) / scale);
      return q.limit == null ? `${used} ${unit}` : `${used} of ${Math.floor(q.limit / scale)} ${unit}`;
    };
    el.planTier.textContent = u.tier;
    el.planUsage.textContent = `· today ${part('messages', 'messages', 1)}, ${part('voice_seconds', 'voice minutes', 60)}`;
    el.plan.dataset.tier = u.tier;
    el.plan.hidden = false;
    const current = await authed('/api/subscription/current');
    el.upgrade.hidden = !(current.ok && u.tier !== 'pro');
  }

  el.upgrade.addEventListener('click', async () => {
    const tier = el.plan.dataset.tier === 'free' ? 'plus' : 'pro';
    try {
      const r = await authed('/api/subscription/create-checkout', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ tier }),
      });
      if (!r.ok) {
        showNotice(`Could not start the upgrade: ${(await errorOf(r, 'refused')).text}`);
        return;
      }
      window.location.assign((await r.json()).url);
    } catch (e) {
      showNotice(e.message);
    }
  });

  function signOut(message) {
    if (call) endCall('signed out');
    session.accessToken = null;
    session.refreshToken = null;
    el.who.hidden = true;
    el.plan.hidden = true;
    el.auth.hidden = false;
    el.call.hidden = true;
    el.body.dataset.state = 'signed-out';
    if (message) showNotice(message, 'warning');
    el.email.focus();
  }

  async function postJson(path, body) {
    return fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  function credentials() {
    const email = el.email.value.trim();
    const password = el.password.value;
    if (!email || !email.includes('@')) {
      showNotice('Enter your e-mail address.');
      el.email.focus();
      return null;
    }
    if (password.length < 10) {
      showNotice('Enter your password (10 characters or more).');
      el.password.focus();
      return null;
    }
    return { email, password };
  }

  async function login(event) {
    event.preventDefault();
    clearNotice();
    const c = credentials();
    if (!c) return;
    el.signIn.disabled = true;
    try {
      const r = await postJson('/api/auth/login', c);
      if (r.ok) {
        signedIn(await r.json(), c.email, false);
      } else if (r.status === 404 || r.status === 405) {
        showNotice('This node has no account service: use a token from your control plane.');
      } else {
        showNotice(`Could not sign in: ${(await errorOf(r, 'sign-in failed')).text}`);
      }
    } catch (e) {
      showNotice(`Could not reach the server to sign in (${e.message}).`);
    } finally {
      el.signIn.disabled = false;
    }
  }

  async function signup() {
    clearNotice();
    if (el.signupFields.hidden) {
      // First press: ask for the rest of what an account needs.
      el.signupFields.hidden = false;
      el.password.autocomplete = 'new-password';
      el.birthYear.focus();
      return;
    }
    const c = credentials();
    if (!c) return;
    const birthYear = Number(el.birthYear.value);
    if (!Number.isInteger(birthYear) || birthYear < 1900) {
      showNotice('Enter your year of birth.');
      el.birthYear.focus();
      return;
    }
    if (!el.terms.checked) {
      showNotice('Accept the terms of service to create an account.');
      el.terms.focus();
      return;
    }
    el.createAccount.disabled = true;
    try {
      const r = await postJson('/api/auth/signup', {
        ...c,
        birth_year: birthYear,
        consent_terms: true,
      });
      if (r.ok) {
        el.signupFields.hidden = true;
        signedIn(await r.json(), c.email, false);
      } else {
        showNotice(`Could not create the account: ${(await errorOf(r, 'sign-up failed')).text}`);
      }
    } catch (e) {
      showNotice(`Could not reach the server to create the account (${e.message}).`);
    } finally {
      el.createAccount.disabled = false;
    }
  }

  function useDevToken(event) {
    event.preventDefault();
    clearNotice();
    const token = el.devToken.value.trim();
    if (!/^dev:[^\s]+$/.test(token)) {
      showNotice('A development token looks like dev:alice.');
      el.devToken.focus();
      return;
    }
    signedIn({ access_token: token }, `${token.slice(4)} (development token)`, true);
  }

  // A fresh access token from the refresh token, once; false when the person must sign in.
  async function refreshAccess() {
    if (!session.refreshToken) return false;
    try {
      const r = await postJson('/api/auth/refresh', { refresh_token: session.refreshToken });
      if (!r.ok) return false;
      const pair = await r.json();
      session.accessToken = pair.access_token;
      session.refreshToken = pair.refresh_token || null;
      return true;
    } catch (_) {
      return false;
    }
  }

  // fetch() with the access token; a 401 gets one refresh and one retry, then signs out.
  async function authed(path, init = {}) {
    const send = () =>
      fetch(path, {
        ...init,
        headers: { ...(init.headers || {}), Authorization: `Bearer ${session.accessToken}` },
      });
    let r = await send();
    if (r.status === 401 && (await refreshAccess())) r = await send();
    if (r.status === 401) {
      const why = await errorOf(r, 'the token was refused');
      const err = new Error(
        session.dev
          ? `The gateway refused the development token: ${why.text}`
          : 'Your sign-in has expired. Please sign in again.',
      );
      err.expired = true;
      throw err;
    }
    return r;
  }

  // ---------------------------------------------------------------- the face

  // Mouth shape per viseme id (Oculus order: sil PP FF TH DD kk CH SS nn RR aa E ih oh ou):
  // [how open, how wide] from 0 to about 1.
  const MOUTH = [
    [0.0, 1.0], [0.0, 0.85], [0.15, 0.9], [0.25, 0.9], [0.3, 0.95],
    [0.35, 0.95], [0.3, 0.7], [0.15, 1.0], [0.25, 0.9], [0.3, 0.75],
    [1.0, 0.95], [0.6, 1.05], [0.45, 1.0], [0.75, 0.65], [0.5, 0.5],
  ];
  const shapesSeen = new Set(['0']);
  let visemesApplied = 0;

  function mouthPath(open, wide) {
    const half = 26 * wide;
    const up = 2 + open * 8;
    const down = 2 + open * 32;
    const l = (100 - half).toFixed(1);
    const r = (100 + half).toFixed(1);
    return `M${l} 138 Q100 ${(138 - up).toFixed(1)} ${r} 138 Q100 ${(138 + down).toFixed(1)} ${l} 138 Z`;
  }

  // Shows one viseme frame: the dominant id, or a blend when the frame carries weights.
  function applyViseme(frame) {
    let open = 0;
    let wide = 0;
    const w = Array.isArray(frame.weights) ? frame.weights : [];
    const total = w.reduce((a, x) => a + (x > 0 ? x : 0), 0);
    if (total > 0) {
      w.forEach((x, i) => {
        if (x > 0 && MOUTH[i]) {
          open += (MOUTH[i][0] * x) / total;
          wide += (MOUTH[i][1] * x) / total;
        }
      });
    } else {
      [open, wide] = MOUTH[frame.visemeId] || MOUTH[0];
    }
    const d = mouthPath(open, wide);
    if (el.mouth.getAttribute('d') !== d) el.mouth.setAttribute('d', d);
    shapesSeen.add(d);
    visemesApplied += 1;
    el.avatar.dataset.viseme = String(frame.visemeId);
    el.avatar.dataset.visemesApplied = String(visemesApplied);
    el.avatar.dataset.mouthShapes = String(shapesSeen.size);
  }

  function closeMouth() {
    el.mouth.setAttribute('d', mouthPath(0, 1));
    el.avatar.dataset.viseme = '0';
  }

  // ---------------------------------------------------------------- lipsync clock
  //
  // Viseme frames carry times on the gateway's output media clock (µs); `audio_started`
  // says which media time the reply's first sample has (T0). A frame is shown when the audio
  // sample with its time is being played, so what matters is where playback stands:
  //
  // 1. From the RTP receiver (preferred). `RTCRtpReceiver.getSynchronizationSources()` gives
  //    the RTP timestamp of the last audio frame handed to the audio track (past the jitter
  //    buffer, i.e. playing) and the wall-clock time it was handed over. The gateway stamps
  //    each 20 ms Opus packet 960 RTP units (48 kHz) after the previous one within a reply,
  //    so the first RTP timestamp that appears after `audio_started` is the sample at T0 and
  //    playback stands at T0 + (rtp - rtpFirst) / 48 ms, plus the time since that frame was
  //    handed over. Error: at most one packet (20 ms) for when we first notice the reply.
  // 2. From arrival time (fallback, until the receiver reports the reply or in a browser
  //    without synchronization sources). The gateway emits `audio_started` as it sends the
  //    first reply packet, over the same ICE path, so the two arrive together; that packet
  //    plays after the receiver's jitter-buffer delay (getStats: jitterBufferDelay /
  //    jitterBufferEmittedCount, refreshed every second). Playback then stands at
  //    T0 + (now - arrival - delay).
  //
  // Frames whose time has come are applied on each animation frame; a frame more than
  // 250 ms late (the tab was hidden) is skipped to the latest due one.
  const clock = {
    turnId: null,
    t0Us: 0,
    arrivedMs: 0,
    rtpBefore: null,
    rtpFirst: null,
    jitterDelayMs: 60,
  };
  let visemeQueue = [];
  let suppressedTurn = null;
  let animating = false;

  function syncSource() {
    const receiver = call && call.receiver;
    if (!receiver || typeof receiver.getSynchronizationSources !== 'function') return null;
    const sources = receiver.getSynchronizationSources();
    return sources.length ? sources[0] : null;
  }

  function replyStarted(turnId, t0Us) {
    const src = syncSource();
    clock.turnId = turnId;
    clock.t0Us = t0Us;
    clock.arrivedMs = performance.now();
    clock.rtpBefore = src ? src.rtpTimestamp : null;
    clock.rtpFirst = null;
    // What is left of earlier replies will never play.
    visemeQueue = visemeQueue.filter((f) => f.turnId >= turnId);
    el.avatar.dataset.sync = 'wall';
    startAnimating();
  }

  // Where playback of the current reply stands, in µs on the output media clock.
  function playbackUs() {
    const src = syncSource();
    if (src && clock.rtpFirst === null && src.rtpTimestamp !== clock.rtpBefore) {
      clock.rtpFirst = src.rtpTimestamp;
      el.avatar.dataset.sync = 'rtp';
    }
    if (src && clock.rtpFirst !== null) {
      const samples = (src.rtpTimestamp - clock.rtpFirst) >>> 0; // RTP time wraps at 2^32
      // Browsers have stamped sources in Unix-epoch ms or in performance.now() ms.
      const nowMs = src.timestamp > 1e12 ? performance.timeOrigin + performance.now() : performance.now();
      const sinceMs = Math.min(Math.max(nowMs - src.timestamp, 0), 40);
      return clock.t0Us + (samples / 48) * 1000 + sinceMs * 1000;
    }
    return clock.t0Us + (performance.now() - clock.arrivedMs - clock.jitterDelayMs) * 1000;
  }

  function startAnimating() {
    if (animating) return;
    animating = true;
    requestAnimationFrame(animate);
  }

  function animate() {
    if (!call) {
      animating = false;
      closeMouth();
      return;
    }
    if (visemeQueue.length && clock.turnId !== null) {
      const now = playbackUs();
      let due = null;
      while (visemeQueue.length && visemeQueue[0].turnId === clock.turnId && visemeQueue[0].mediaTimeUs <= now) {
        const next = visemeQueue.shift();
        if (due && now - due.mediaTimeUs > 250000) {
          due = next; // skip frames that are long past
          continue;
        }
        if (due) applyViseme(due);
        due = next;
      }
      if (due) applyViseme(due);
      // Frames of another turn than the playing one wait for its `audio_started`.
    }
    requestAnimationFrame(animate);
  }

  function dropVisemes(turnId) {
    visemeQueue = visemeQueue.filter((f) => f.turnId !== turnId);
    if (clock.turnId === turnId) closeMouth();
  }

  // ---------------------------------------------------------------- transcript

  const lines = new Map(); // `${who}:${turnId}` -> <li>

  function line(who, turnId) {
    const key = `${who}:${turnId}`;
    let li = lines.get(key);
    if (!li) {
      li = document.createElement('li');
      li.className = `line ${who}`;
      li.dataset.turn = String(turnId);
      li.dataset.final = 'false';
      const name = document.createElement('span');
      name.className = 'speaker';
      name.textContent = who === 'user' ? 'You' : 'Companion';
      const text = document.createElement('span');
      text.className = 'text';
      li.append(name, text);
      el.transcript.append(li);
      lines.set(key, li);
    }
    return li;
  }

  function setLineText(li, text) {
    li.querySelector('.text').textContent = text;
    li.scrollIntoView({ block: 'nearest' });
  }

  function note(li, text, cls) {
    let n = li.querySelector('.note');
    if (!n) {
      n = document.createElement('span');
      n.className = 'note';
      li.append(n);
    }
    n.textContent = text;
    if (cls) li.classList.add(cls);
  }

  function showLatency(turnId, latency) {
    const end = latency.speechEndMs;
    const out = latency.firstAudioOutMs;
    const turns = Number(el.latency.dataset.turns) + 1;
    el.latency.dataset.turns = String(turns);
    if (typeof end === 'number' && typeof out === 'number') {
      const ms = Math.max(0, out - end);
      el.latency.dataset.latencyMs = String(ms);
      el.latency.textContent = `${ms} ms from the end of your words to the companion's voice (turn ${turnId})`;
      note(line('companion', turnId), `answered in ${ms} ms`);
    } else {
      el.latency.textContent = `turn ${turnId}: no spoken answer to time`;
    }
    const detail = Object.entries(latency)
      .map(([k, v]) => `${k.replace(/Ms$/, '')} ${v} ms`)
      .join(', ');
    el.latency.title = detail;
  }

  // ---------------------------------------------------------------- events from the gateway

  function onEvent(event) {
    el.call.dataset.events = String(Number(el.call.dataset.events) + 1);
    switch (event.type) {
      case 'session_started':
        el.call.dataset.sessionId = event.sessionId;
        setStatus('Connected. Say something!');
        break;
      case 'speech_started':
        line('user', event.turnId).classList.add('speaking');
        setStatus('Listening…');
        break;
      case 'speech_stopped':
        lines.get(`user:${event.turnId}`)?.classList.remove('speaking');
        break;
      case 'transcript_partial': {
        const li = line('user', event.turnId);
        if (li.dataset.final !== 'true') setLineText(li, event.text);
        break;
      }
      case 'transcript_final': {
        const li = line('user', event.turnId);
        li.classList.remove('speaking');
        li.dataset.final = 'true';
        setLineText(li, event.text);
        setStatus('Thinking…');
        break;
      }
      case 'response_started':
        line('companion', event.turnId).dataset.messageId = event.messageId;
        break;
      case 'text_delta': {
        if (event.turnId === suppressedTurn) break;
        const li = line('companion', event.turnId);
        setLineText(li, li.querySelector('.text').textContent + event.delta);
        break;
      }
      case 'audio_started':
        if (event.turnId === suppressedTurn) break;
        replyStarted(event.turnId, event.mediaTimeUs);
        el.stop.disabled = false;
        setStatus('The companion is speaking. Talk over it or press Stop to interrupt.');
        break;
      case 'visemes':
        if (event.turnId === suppressedTurn) break;
        for (const f of event.frames) visemeQueue.push({ ...f, turnId: event.turnId });
        break;
      case 'audio_ended': {
        // Close the mouth when the last sample plays.
        visemeQueue.push({ turnId: event.turnId, mediaTimeUs: event.mediaTimeUs, visemeId: 0 });
        const li = line('companion', event.turnId);
        li.dataset.final = 'true';
        el.stop.disabled = true;
        setStatus('Your turn.');
        break;
      }
      case 'interrupted': {
        dropVisemes(event.turnId);
        const li = line('companion', event.turnId);
        li.dataset.interrupted = 'true';
        li.dataset.final = 'true';
        li.dataset.heard = event.heardText;
        setLineText(li, event.heardText);
        note(li, 'interrupted', 'interrupted');
        el.transcript.dataset.interruptions = String(Number(el.transcript.dataset.interruptions || 0) + 1);
        el.stop.disabled = true;
        break;
      }
      case 'turn_metrics':
        showLatency(event.turnId, event.latency || {});
        break;
      case 'error':
        showNotice(`The companion reported a problem: ${event.message} (${event.code})`);
        break;
      case 'session_ended':
        endCall(`The call ended (${event.reason.replace(/_/g, ' ')}).`);
        break;
      default:
        // pong, and event types newer than this page: nothing to show.
        break;
    }
  }

  // ---------------------------------------------------------------- the call

  let call = null;

  function micError(e) {
    switch (e && e.name) {
      case 'NotAllowedError':
      case 'SecurityError':
        return 'Microphone access was denied. Allow the microphone for this site (the icon in the address bar) and press Call again.';
      case 'NotFoundError':
      case 'OverconstrainedError':
        return 'No microphone was found. Connect one and press Call again.';
      case 'NotReadableError':
      case 'AbortError':
        return 'The microphone could not be opened; another application may be using it.';
      default:
        return `The microphone could not be used (${e && e.message ? e.message : e}).`;
    }
  }

  function controls(inCall) {
    el.callButton.disabled = inCall;
    el.hangUp.disabled = !inCall;
    el.mute.disabled = !inCall;
    el.stop.disabled = true;
    el.signOut.disabled = inCall;
  }

  async function startCall() {
    if (call) return;
    clearNotice();
    if (!navigator.mediaDevices || !window.RTCPeerConnection) {
      showNotice('This browser cannot make voice calls here (the page needs HTTPS or localhost, and WebRTC).');
      return;
    }
    controls(true);
    el.body.dataset.state = 'connecting';
    setStatus('Asking for the microphone…');
    const c = {
      pc: null,
      dc: null,
      mic: null,
      audio: null,
      receiver: null,
      location: null,
      statsTimer: null,
      connectTimer: null,
      refreshTimer: null,
      jitter: { delay: 0, count: 0 },
    };
    call = c;
    try {
      c.mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) {
      call = null;
      controls(false);
      el.body.dataset.state = 'ready';
      setStatus('Ready to call.');
      showNotice(micError(e));
      return;
    }
    if (call !== c) return stopMedia(c); // hung up meanwhile
    try {
      await connect(c);
    } catch (e) {
      if (call === c) endCall(null);
      if (e.expired) signOut(e.message);
      else showNotice(e.message);
    }
  }

  async function connect(c) {
    setStatus('Connecting…');
    let iceServers = [];
    const servers = await authed('/v1/ice-servers');
    if (servers.ok) iceServers = (await servers.json()).iceServers || [];
    c.pc = new RTCPeerConnection({ iceServers });
    for (const track of c.mic.getTracks()) c.pc.addTrack(track, c.mic);
    c.dc = c.pc.createDataChannel('events', { protocol: 'companion.v1' });
    c.dc.onmessage = (m) => {
      let event;
      try {
        event = JSON.parse(m.data);
      } catch (_) {
        return; // not an event; the protocol says to skip it
      }
      if (call === c && event && typeof event.type === 'string') onEvent(event);
    };
    c.pc.ontrack = (e) => {
      c.receiver = e.receiver;
      c.audio = new Audio();
      c.audio.autoplay = true;
      c.audio.srcObject = e.streams[0] || new MediaStream([e.track]);
      c.audio.play().catch(() => {
        showNotice('Press anywhere on the page to hear the companion (the browser blocked autoplay).', 'warning');
        document.addEventListener('click', () => c.audio && c.audio.play(), { once: true });
      });
    };
    c.pc.onconnectionstatechange = () => {
      if (call !== c) return;
      const s = c.pc.connectionState;
      if (s === 'connected') {
        clearTimeout(c.connectTimer);
        el.body.dataset.state = 'in-call';
        setStatus('Connected. Say something!');
      } else if (s === 'failed') {
        endCall(null);
        showNotice('The call could not connect: no network path to the server (ICE failed). A firewall may block UDP; the operator can configure a TURN server.');
      } else if (s === 'disconnected') {
        setStatus('The connection is unstable; trying to keep the call…');
      }
    };

    // Trickle ICE: candidates found before the answer wait, then go out as PATCHes.
    const pending = [];
    const sendCandidate = (lineText) => {
      const sdp = c.pc.localDescription.sdp;
      const ufrag = sdp.match(/a=ice-ufrag:(.*)/)[1].trim();
      const pwd = sdp.match(/a=ice-pwd:(.*)/)[1].trim();
      const mid = (sdp.match(/a=mid:(.*)/) || [null, '0'])[1].trim();
      const frag = `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:${mid}\r\n${lineText}\r\n`;
      authed(c.location, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/trickle-ice-sdpfrag' },
        body: frag,
      }).catch(() => {
        // A lost candidate only narrows the choice of paths; ICE failure is reported above.
      });
    };
    c.pc.onicecandidate = (e) => {
      const lineText = e.candidate ? `a=${e.candidate.candidate}` : 'a=end-of-candidates';
      if (c.location) sendCandidate(lineText);
      else pending.push(lineText);
    };

    await c.pc.setLocalDescription(await c.pc.createOffer());
    const r = await authed('/v1/calls', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: c.pc.localDescription.sdp,
    });
    if (r.status !== 201) {
      const why = await errorOf(r, 'the gateway refused the call');
      throw new Error(`The call was refused: ${why.text}`);
    }
    c.location = r.headers.get('Location');
    const answer = await r.text();
    if (call !== c) {
      // Hung up while the offer was in flight: end the call the gateway just made.
      authed(c.location, { method: 'DELETE' }).catch(() => {});
      return;
    }
    await c.pc.setRemoteDescription({ type: 'answer', sdp: answer });
    for (const lineText of pending.splice(0)) sendCandidate(lineText);
    c.connectTimer = setTimeout(() => {
      if (call === c && c.pc.connectionState !== 'connected') {
        endCall(null);
        showNotice('The call could not connect within 20 seconds (ICE did not complete). A firewall may block UDP.');
      }
    }, 20000);
    c.statsTimer = setInterval(() => pollStats(c), 1000);
    scheduleRefresh(c);
    startAnimating();
  }

  // When an access token (a JWT) expires, in ms since the epoch; null if it does not say.
  function expiresAtMs(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const exp = JSON.parse(atob(part)).exp;
      return typeof exp === 'number' ? exp * 1000 : null;
    } catch (_) {
      return null;
    }
  }

  // The call renews its voice minutes with the access token, which lives minutes: refresh
  // it a minute before it expires (at half its remaining life for a token that short) and hand
  // the new one to the session with `auth`. Development tokens do not expire: nothing to do.
  function scheduleRefresh(c) {
    if (session.dev || !session.refreshToken) return;
    const exp = expiresAtMs(session.accessToken);
    if (exp === null) return;
    const left = exp - Date.now();
    const wait = Math.max(left - 60000, left / 2, 1000);
    c.refreshTimer = setTimeout(async () => {
      if (call !== c) return;
      if (!(await refreshAccess())) {
        if (call === c) showNotice('Your sign-in could not be renewed: the call ends when its granted time runs out.', 'warning');
        return;
      }
      if (call !== c) return;
      send({ type: 'auth', token: session.accessToken });
      scheduleRefresh(c);
    }, wait);
  }

  // Reply audio received (a test hook and a health sign) and the jitter-buffer delay the
  // lipsync fallback uses.
  async function pollStats(c) {
    if (call !== c || !c.pc) return;
    const stats = await c.pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        el.call.dataset.rtpBytes = String(s.bytesReceived || 0);
        el.call.dataset.rtpPackets = String(s.packetsReceived || 0);
        const dDelay = (s.jitterBufferDelay || 0) - c.jitter.delay;
        const dCount = (s.jitterBufferEmittedCount || 0) - c.jitter.count;
        if (dCount > 0) clock.jitterDelayMs = (dDelay / dCount) * 1000;
        c.jitter = { delay: s.jitterBufferDelay || 0, count: s.jitterBufferEmittedCount || 0 };
      }
    });
  }

  function send(event) {
    if (call && call.dc && call.dc.readyState === 'open') {
      call.dc.send(JSON.stringify(event));
      return true;
    }
    return false;
  }

  function stopMedia(c) {
    clearInterval(c.statsTimer);
    clearTimeout(c.connectTimer);
    clearTimeout(c.refreshTimer);
    if (c.mic) for (const t of c.mic.getTracks()) t.stop();
    if (c.audio) c.audio.srcObject = null;
    if (c.pc) c.pc.close();
  }

  // Ends the call on this side; `message` (if any) goes to the status line.
  function endCall(message) {
    const c = call;
    if (!c) return;
    call = null;
    stopMedia(c);
    visemeQueue = [];
    clock.turnId = null;
    closeMouth();
    controls(false);
    el.mute.setAttribute('aria-pressed', 'false');
    el.mute.textContent = 'Mute';
    el.body.dataset.state = session.accessToken ? 'ready' : 'signed-out';
    setStatus(message || 'Ready to call.');
    // The call spent voice minutes: show today's use again.
    if (session.accessToken && !session.dev) showPlan().catch(() => {});
  }

  async function hangUp() {
    const c = call;
    if (!c) return;
    send({ type: 'hang_up' });
    endCall('You hung up.');
    if (c.location) {
      // The DTLS goodbye from closing the connection already ends the call; DELETE tidies
      // up at once even when that packet is lost.
      authed(c.location, { method: 'DELETE' }).catch(() => {});
    }
  }

  function interrupt() {
    if (!send({ type: 'interrupt' })) return;
    suppressedTurn = clock.turnId;
    if (clock.turnId !== null) {
      dropVisemes(clock.turnId);
      const li = lines.get(`companion:${clock.turnId}`);
      if (li) note(li, 'stopped', 'interrupted');
    }
    el.stop.disabled = true;
    setStatus('Stopped. Your turn.');
  }

  function toggleMute() {
    if (!call || !call.mic) return;
    const muted = el.mute.getAttribute('aria-pressed') !== 'true';
    for (const t of call.mic.getAudioTracks()) t.enabled = !muted;
    send({ type: muted ? 'mute' : 'unmute' });
    el.mute.setAttribute('aria-pressed', String(muted));
    el.mute.textContent = muted ? 'Unmute' : 'Mute';
    setStatus(muted ? 'Muted: the companion cannot hear you.' : 'Listening again.');
  }

  // ---------------------------------------------------------------- start-up

  el.authForm.addEventListener('submit', login);
  el.createAccount.addEventListener('click', signup);
  el.devForm.addEventListener('submit', useDevToken);
  el.signOut.addEventListener('click', () => signOut(null));
  el.callButton.addEventListener('click', startCall);
  el.hangUp.addEventListener('click', hangUp);
  el.stop.addEventListener('click', interrupt);
  el.mute.addEventListener('click', toggleMute);
  window.addEventListener('pagehide', () => {
    if (call) hangUp();
  });

  el.dev.hidden = !devTokensOn;
  // Accounts can be created here when the control plane runs in this process (its API
  // description is served beside the gateway).
  fetch('/openapi.json', { method: 'HEAD' })
    .then((r) => {
      el.createAccount.hidden = !r.ok;
    })
    .catch(() => {});
  fetch('/readyz')
    .then((r) => {
      el.nodeStatus.textContent = r.ok ? 'ready' : 'not ready';
      el.nodeStatus.dataset.ready = String(r.ok);
    })
    .catch(() => {
      el.nodeStatus.textContent = 'unreachable';
    });
})();
