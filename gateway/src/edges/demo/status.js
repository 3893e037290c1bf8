// The status page: asks /readyz and says what it answered.
'use strict';

fetch('/readyz')
  .then(async (r) => {
    const el = document.getElementById('ready');
    el.textContent = r.ok ? 'ready' : `not ready: ${JSON.stringify((await r.json()).checks)}`;
    el.className = r.ok ? 'ok' : 'bad';
  })
  .catch((e) => {
    document.getElementById('ready').textContent = `unreachable (${e})`;
  });
