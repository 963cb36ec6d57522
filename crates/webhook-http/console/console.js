// webhookd console: a single-page app over the management API (/api/v1). Plain JavaScript, no
// build step. The API key lives in this tab's sessionStorage and is sent only in the
// Authorization header, never in a URL. Pages are addressed by the URL fragment (#/webhooks/…).
'use strict';

(() => {
  const KEY_STORAGE = 'webhookd.apiKey';
  const BOARD_POLL_MS = 3000;
  // The log and the task page refresh themselves this often while the tab is visible.
  const LIVE_POLL_MS = 4000;
  // ...and as often as this while a delivery attempt of the task shown is due.
  const LIVE_SOONEST_MS = 1000;
  const PAGE_SIZE = 25;
  // Cards a board column shows at first, and adds with each "Load more".
  const COLUMN_SIZE = 50;
  // The largest page the list endpoints answer.
  const MAX_LIMIT = 500;
  const TASK_STATUSES = ['queued', 'delivered', 'in_progress', 'completed', 'failed'];
  const STATUS_LABELS = {
    active: 'Active', disabled: 'Disabled', deleted: 'Deleted',
    accepted: 'Accepted', ignored: 'Ignored', duplicate: 'Duplicate', rejected: 'Rejected',
    queued: 'Queued', retrying: 'Retrying', delivered: 'Delivered', in_progress: 'In progress', completed: 'Completed', failed: 'Failed',
  };
  // Where an accepted request's task stands in delivery (`delivery_status`), as a log row says it.
  const DELIVERY_LABELS = { queued: 'Queued', retrying: 'Retrying delivery', delivered: 'Delivered', failed: 'Delivery failed' };
  // What the log keeps of a credential header instead of its value.
  const REDACTED = '[redacted]';
  // Statuses with which a sender is refused before its body is read.
  const REFUSED_UNREAD = [401, 403, 429];
  // Icons as SVG path data on a 24 × 24 grid, drawn with the current text colour.
  const ICONS = {
    plus: 'M12 5v14M5 12h14',
    close: 'M6 6l12 12M18 6L6 18',
    zap: 'M13 2L4 14h7l-1 8 9-12h-7z',
    target: 'M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18zM12 7.5a4.5 4.5 0 1 0 0 9a4.5 4.5 0 1 0 0-9zM12 11.5a.5.5 0 1 0 0 1a.5.5 0 1 0 0-1z',
    inbox: 'M3 13h5l1.5 3h5l1.5-3h5M5.5 5h13L21 13v6H3v-6z',
    board: 'M4 4h4v16H4zM10 4h4v10h-4zM16 4h4v13h-4z',
    question: 'M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18zM9.2 9.3a2.9 2.9 0 1 1 4 2.7c-.7.3-1.2 1-1.2 1.8v.4M12 17.2v.1',
    pencil: 'M4 20h4L19 9l-4-4L4 16zM13.5 6.5l4 4',
    trash: 'M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13',
    copy: 'M9 9h11v11H9zM5 15H4V4h11v1',
    search: 'M10.5 4a6.5 6.5 0 1 0 0 13a6.5 6.5 0 1 0 0-13zM15.5 15.5L20 20',
    open: 'M14 4h6v6M20 4l-9 9M18 14v6H4V6h6',
    replay: 'M4 4v5h5M5.1 15a8 8 0 1 0 .6-7.3L4 9',
    retry: 'M20 4v5h-5M18.9 15a8 8 0 1 1-.6-7.3L20 9',
    lock: 'M6 11h12v9H6zM8.5 11V8a3.5 3.5 0 0 1 7 0v3',
    alert: 'M12 3.5L2.5 20h19zM12 10v4.5M12 17.2v.1',
    check: 'M5 12.5l4.5 4.5L19 7',
    quiet: 'M6 12h12',
  };
  // The webhook list's filters: `status` as the API takes it (none: active and disabled).
  const WEBHOOK_FILTERS = [['', 'All'], ['active', 'Active'], ['disabled', 'Disabled'], ['deleted', 'Deleted']];
  // The moves the task lifecycle allows, as the console offers them.
  const TASK_MOVES = {
    queued: [['delivered', 'Mark delivered'], ['failed', 'Mark failed']],
    delivered: [['in_progress', 'Start work']],
    in_progress: [['completed', 'Complete'], ['failed', 'Mark failed']],
    completed: [],
    failed: [],
  };
  // The senders a webhook can speak with (its `source`), and how to set each one up. Step and
  // hint texts are data: **…** is a label in the sender's own interface, `…` is code. A step
  // may carry a value to copy (`url` or `secret`), a snippet in which {url} and {secret} are
  // filled in, or `paste`: the place where a secret made by the sender goes into webhookd.
  const SOURCES = [
    {
      id: 'generic',
      label: 'Generic (X-Webhook-Secret)',
      name: 'Generic',
      secretFrom: 'webhookd',
      auth: 'The `X-Webhook-Secret` header equals the secret.',
      eventType: 'The `X-Event-Type` header, else the payload’s `event_type`.',
      deliveryId: 'The `Idempotency-Key` header.',
      // The generic sender's instruction is the payload's `message` itself.
      instruction: null,
      events: 'deploy.*, alert.fired',
      sample: null,
      steps: [
        { text: 'Have the sender POST a JSON object to the webhook URL, with the task’s instruction in `message` and its type in `event_type` (or the `X-Event-Type` header).', value: 'url', label: 'Webhook URL' },
        { text: 'It sends the secret in the `X-Webhook-Secret` header.', value: 'secret', label: 'Secret' },
        { text: 'For example, with curl:', label: 'curl example', snippet: 'curl -X POST \'{url}\' \\\n  -H \'Content-Type: application/json\' \\\n  -H \'X-Webhook-Secret: {secret}\' \\\n  -d \'{"message":"Deploy api to production","event_type":"deploy.finished"}\'' },
        { text: 'To make retries safe, it may send an `Idempotency-Key` header: a repeat within the deduplication window is answered `duplicate` and makes no second task.' },
      ],
    },
    {
      id: 'github',
      label: 'GitHub',
      name: 'GitHub',
      secretFrom: 'webhookd',
      auth: '`X-Hub-Signature-256`: an HMAC-SHA256 of the body, keyed with the secret.',
      eventType: 'The `X-GitHub-Event` header, plus `.action` when the payload has one (`pull_request.opened`).',
      deliveryId: 'The `X-GitHub-Delivery` header.',
      instruction: 'the event, repository and title',
      events: 'push, pull_request.*',
      sample: null,
      steps: [
        { text: 'In GitHub, open the repository’s **Settings → Webhooks → Add webhook** (or the organization’s, for all its repositories).' },
        { text: '**Payload URL**: the webhook URL.', value: 'url', label: 'Payload URL' },
        { text: '**Content type**: `application/json`.' },
        { text: '**Secret**: the webhook’s secret.', value: 'secret', label: 'Secret' },
        { text: 'Under **Which events would you like to trigger this webhook?**, choose the events, keep **Active** ticked and **Add webhook**. GitHub’s first delivery is a `ping`: webhookd answers it and makes no task.' },
      ],
    },
    {
      id: 'gitlab',
      label: 'GitLab',
      name: 'GitLab',
      secretFrom: 'webhookd',
      auth: 'The `X-Gitlab-Token` header equals the secret.',
      eventType: 'The payload’s `object_kind` (`push`, `merge_request`, `pipeline`…).',
      deliveryId: 'The `Idempotency-Key` header.',
      instruction: 'the event, project and title',
      events: 'merge_request, pipeline',
      sample: { object_kind: 'pipeline', project: { path_with_namespace: 'acme/api' }, object_attributes: { name: 'Deploy to production' } },
      steps: [
        { text: 'In GitLab, open the project’s (or group’s) **Settings → Webhooks → Add new webhook**.' },
        { text: '**URL**: the webhook URL.', value: 'url', label: 'URL' },
        { text: '**Secret token**: the webhook’s secret.', value: 'secret', label: 'Secret token' },
        { text: 'Under **Trigger**, tick the events, then **Add webhook**. **Test** sends a sample event, which becomes a task.' },
      ],
    },
    {
      id: 'stripe',
      label: 'Stripe',
      name: 'Stripe',
      secretFrom: 'sender',
      secretName: 'Stripe’s signing secret',
      secretPlaceholder: 'whsec_…',
      pasteHint: 'Stripe makes the signing secret (`whsec_…`) when you add the endpoint, which needs this webhook’s URL: leave this empty and paste it on the next screen. Until then webhookd refuses every request.',
      auth: '`Stripe-Signature`: `t=<time>,v1=<HMAC-SHA256 of “{t}.{body}”>`, keyed with Stripe’s signing secret; the time within 300 s.',
      eventType: 'The payload’s `type` (`payment_intent.succeeded`).',
      deliveryId: 'The payload’s `id` (the event’s `evt_…`).',
      instruction: 'the type and object id',
      events: 'payment_intent.*, invoice.paid',
      sample: { type: 'payment_intent.succeeded', data: { object: { id: 'pi_test', object: 'payment_intent' } } },
      steps: [
        { text: 'In the Stripe Dashboard, open **Developers → Webhooks → Add endpoint** (in Workbench: **Webhooks → Add destination**, then **Webhook endpoint**).' },
        { text: '**Endpoint URL**: the webhook URL.', value: 'url', label: 'Endpoint URL' },
        { text: 'Select the events to send, then **Add endpoint**.' },
        { text: 'On the endpoint’s page, **Signing secret → Reveal**: copy the `whsec_…` secret and paste it into webhookd.', value: 'paste' },
      ],
    },
    {
      id: 'slack',
      label: 'Slack',
      name: 'Slack',
      secretFrom: 'sender',
      secretName: 'Slack’s signing secret',
      secretPlaceholder: '',
      pasteHint: 'From your Slack app’s **Basic Information → App Credentials → Signing Secret**. Paste it now or on the next screen, before you set the Request URL: Slack checks that URL with a signed request.',
      auth: '`X-Slack-Signature`: `v0=<HMAC-SHA256 of “v0:{X-Slack-Request-Timestamp}:{body}”>`, keyed with the app’s signing secret; the timestamp within 300 s.',
      eventType: 'The payload’s `event.type`, else `type`; for a slash command, the command.',
      deliveryId: 'The payload’s `event_id`.',
      instruction: '`event.text`; for a slash command, its `text`',
      events: 'app_mention, message',
      sample: { type: 'event_callback', event: { type: 'app_mention', text: 'Deploy api to production' } },
      steps: [
        { text: 'At api.slack.com/apps, open your app’s **Basic Information → App Credentials**, show the **Signing Secret** and paste it into webhookd. Do this first: Slack checks the Request URL with a signed request.', value: 'paste' },
        { text: 'Open **Event Subscriptions**, turn on **Enable Events** and set the **Request URL** to the webhook URL. webhookd answers Slack’s `url_verification` challenge, and Slack shows **Verified**.', value: 'url', label: 'Request URL' },
        { text: 'Under **Subscribe to bot events**, add the events (e.g. `app_mention`), then **Save Changes**.' },
        { text: 'For a slash command: **Slash Commands → Create New Command**, with the same Request URL. The command becomes the event type and its text the instruction.' },
      ],
    },
    {
      id: 'pagerduty',
      label: 'PagerDuty',
      name: 'PagerDuty',
      secretFrom: 'sender',
      secretName: 'PagerDuty’s signing secret',
      secretPlaceholder: '',
      pasteHint: 'PagerDuty shows the signing secret once, when you add the subscription, which needs this webhook’s URL: leave this empty and paste it on the next screen. Until then webhookd refuses every request.',
      auth: '`X-PagerDuty-Signature`: `v1=<HMAC-SHA256 of the body>`, any of a comma-separated list, keyed with the subscription’s signing secret.',
      eventType: 'The payload’s `event.event_type` (`incident.triggered`).',
      deliveryId: 'The payload’s `event.id`.',
      instruction: 'the event type and `event.data.title`',
      events: 'incident.*',
      sample: { event: { event_type: 'incident.triggered', data: { title: 'Checkout latency above 2 s' } } },
      steps: [
        { text: 'In PagerDuty, open **Integrations → Generic Webhooks (v3) → New Webhook**.' },
        { text: '**Webhook URL**: the webhook URL.', value: 'url', label: 'Webhook URL' },
        { text: 'Choose the **Scope Type** (a service, a team or the account) and the **Event Subscription**, then **Add Webhook**.' },
        { text: 'PagerDuty shows the subscription’s signing secret once: copy it and paste it into webhookd.', value: 'paste' },
        { text: '**Send Test Notification** sends a `pagey.ping`: webhookd answers it and makes no task.' },
      ],
    },
    {
      id: 'shopify',
      label: 'Shopify',
      name: 'Shopify',
      secretFrom: 'sender',
      secretName: 'Shopify’s signing key',
      secretPlaceholder: '',
      pasteHint: 'For webhooks made in the Shopify admin: the key under **Settings → Notifications → Webhooks** (“Your webhooks will be signed with …”). For an app’s webhooks: the app’s client secret.',
      auth: '`X-Shopify-Hmac-Sha256`: the base64 HMAC-SHA256 of the body, keyed with the signing key or the app’s client secret.',
      eventType: 'The `X-Shopify-Topic` header (`orders/create`).',
      deliveryId: 'The `X-Shopify-Webhook-Id` header.',
      instruction: 'the topic and object id',
      events: 'orders/create, orders/paid',
      sample: null,
      steps: [
        { text: 'In the Shopify admin, open **Settings → Notifications → Webhooks → Create webhook** (an app subscribes through the webhook API or its `shopify.app.toml` instead).' },
        { text: 'Choose the **Event**, **Format** JSON, and set the **URL** to the webhook URL, then **Save**.', value: 'url', label: 'URL' },
        { text: 'Paste the key Shopify signs with into webhookd: the one shown under the webhooks (“Your webhooks will be signed with …”), or, for an app, its client secret.', value: 'paste' },
      ],
    },
    {
      id: 'standard_webhooks',
      label: 'Standard Webhooks',
      name: 'Standard Webhooks',
      secretFrom: 'webhookd',
      auth: '`webhook-signature`: `v1,<base64 HMAC-SHA256 of “{webhook-id}.{webhook-timestamp}.{body}”>`, any of a space-separated list, keyed with the base64 key after `whsec_`; the timestamp within 300 s.',
      eventType: 'The payload’s `type`.',
      deliveryId: 'The `webhook-id` header.',
      instruction: 'the `type`',
      events: 'invoice.*',
      sample: { type: 'invoice.paid', data: { id: 'inv_test' } },
      steps: [
        { text: 'In the sending service, add an endpoint with the webhook URL.', value: 'url', label: 'Endpoint URL' },
        { text: 'Give it the signing secret: a `whsec_…` base64 key, which every Standard Webhooks library takes as it is.', value: 'secret', label: 'Signing secret' },
        { text: 'The sender signs each message in the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers; webhookd refuses a signature more than five minutes old.' },
      ],
    },
    {
      id: 'alertmanager',
      label: 'Prometheus Alertmanager',
      name: 'Alertmanager',
      secretFrom: 'webhookd',
      auth: '`Authorization: Bearer <secret>`, or Basic with the secret as the password.',
      eventType: '`alertmanager.firing` or `alertmanager.resolved`, from the notification’s `status`.',
      deliveryId: 'None: Alertmanager repeats notifications on purpose.',
      instruction: 'the status, alert name, summary and alert count',
      events: 'alertmanager.firing',
      sample: { status: 'firing', commonLabels: { alertname: 'HighLatency' }, commonAnnotations: { summary: 'p99 above 2 s' }, alerts: [{ status: 'firing', labels: { alertname: 'HighLatency' } }] },
      steps: [
        { text: 'Add a receiver to `alertmanager.yml`, and route alerts to it:', label: 'Alertmanager configuration', snippet: 'receivers:\n  - name: webhookd\n    webhook_configs:\n      - url: \'{url}\'\n        http_config:\n          authorization:\n            credentials: \'{secret}\'' },
        { text: 'Reload Alertmanager. Resolved alerts arrive as `alertmanager.resolved` unless the receiver says `send_resolved: false`.' },
      ],
    },
    {
      id: 'grafana',
      label: 'Grafana',
      name: 'Grafana',
      secretFrom: 'webhookd',
      auth: '`Authorization: Bearer <secret>`, or Basic with the secret as the password.',
      eventType: '`grafana.firing` or `grafana.resolved`, from the notification’s `status`.',
      deliveryId: 'None: Grafana repeats notifications on purpose.',
      instruction: 'the `title`',
      events: 'grafana.firing',
      sample: { status: 'firing', title: '[FIRING:1] HighLatency', alerts: [{ status: 'firing', labels: { alertname: 'HighLatency' } }] },
      steps: [
        { text: 'In Grafana, open **Alerting → Contact points → Add contact point** and choose the **Webhook** integration.' },
        { text: '**URL**: the webhook URL.', value: 'url', label: 'URL' },
        { text: 'Under **Optional Webhook settings**, set **Authorization Header - Scheme** to `Bearer` and **Authorization Header - Credentials** to the secret.', value: 'secret', label: 'Credentials' },
        { text: '**Test** sends a test notification, which becomes a task. **Save contact point** and use it in a notification policy.' },
      ],
    },
  ];
  // How long a rotated-out secret may keep working, as the rotate dialog offers it.
  const OVERLAPS = [[0, 'None'], [3600, '1 hour'], [86400, '24 hours'], [604800, '7 days']];

  const state = { key: null, role: null, org: null, generation: 0, focusAfter: null };
  const main = document.getElementById('main');
  let uid = 0;

  // ------------------------------------------------------------------------------------------
  // DOM helpers

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') el.className = value;
      else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
      else if (name === 'value') el.value = value;
      else if (value === true) el.setAttribute(name, '');
      else el.setAttribute(name, String(value));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function nextId(prefix) {
    uid += 1;
    return `${prefix}-${uid}`;
  }

  function label(status) {
    return STATUS_LABELS[status] || status;
  }

  function badge(status, text) {
    return h('span', { class: `badge badge-${status}` }, text || label(status));
  }

  function icon(name) {
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('class', `icon icon-${name}`);
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('d', ICONS[name]);
    svg.append(path);
    return svg;
  }

  // "3 min ago", "in 2 h", "yesterday"; a date beyond a week.
  function relativeTime(date, now) {
    const seconds = Math.round((date.getTime() - now) / 1000);
    const ahead = seconds > 0;
    const span = Math.abs(seconds);
    const say = (n, unit) => (ahead ? `in ${n} ${unit}` : `${n} ${unit} ago`);
    if (span < 45) return ahead ? 'in a moment' : 'just now';
    if (span < 3570) return say(Math.max(1, Math.round(span / 60)), 'min');
    if (span < 86400 - 1800) return say(Math.round(span / 3600), 'h');
    const days = Math.round(span / 86400);
    if (days === 1) return ahead ? 'tomorrow' : 'yesterday';
    if (days < 7) return say(days, 'days');
    const sameYear = date.getFullYear() === new Date(now).getFullYear();
    return date.toLocaleDateString(undefined, { month: 'short', day: 'numeric', year: sameYear ? undefined : 'numeric' });
  }

  // A point in time as "3 min ago", with the UTC time on hover; the page keeps it current.
  function time(iso, fallback) {
    if (!iso) return h('span', { class: 'muted' }, fallback || 'Never');
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return h('span', {}, iso);
    const utc = `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
    return h('time', { datetime: iso, title: utc, 'data-relative': '' }, relativeTime(date, Date.now()));
  }

  function refreshTimes() {
    const now = Date.now();
    for (const el of document.querySelectorAll('time[data-relative]')) {
      const text = relativeTime(new Date(el.getAttribute('datetime')), now);
      if (el.textContent !== text) el.textContent = text;
    }
  }

  function prettyJson(value) {
    return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
  }

  function toast(message) {
    const el = document.getElementById('toast');
    el.textContent = message;
    el.classList.add('shown');
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => el.classList.remove('shown'), 2500);
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      const area = h('textarea', { 'aria-hidden': 'true', class: 'offscreen', readonly: true }, text);
      document.body.append(area);
      area.select();
      const copied = document.execCommand('copy');
      area.remove();
      return copied;
    }
  }

  // A secret shown once says when it was copied, so that its dialog closes without asking.
  function markCopied(el) {
    el.dispatchEvent(new CustomEvent('secretcopied', { bubbles: true }));
  }

  // A button that copies `text` (or what the function `text` answers when it is pressed).
  function copyButton(text, what, secret) {
    const button = h('button', {
      type: 'button', class: 'btn btn-small', 'aria-label': `Copy ${what}`,
      onclick: async () => {
        const copied = await copyText(typeof text === 'function' ? text() : text);
        if (copied && secret) markCopied(button);
        button.textContent = copied ? 'Copied' : 'Copy failed';
        toast(copied ? `${what[0].toUpperCase()}${what.slice(1)} copied to the clipboard` : 'Could not copy: select the text and copy it by hand');
        setTimeout(() => { button.textContent = 'Copy'; }, 2000);
      },
    }, 'Copy');
    return button;
  }

  // A read-only value with a copy button, for URLs and secrets shown once.
  function copyField(labelText, value, id, secret) {
    const input = h('input', {
      type: 'text', id: id || nextId('copy'), readonly: true, value, spellcheck: 'false', 'data-secret': secret ? '' : null,
      onfocus: (e) => e.target.select(),
      oncopy: (e) => { if (secret) markCopied(e.target); },
    });
    return h('div', { class: 'field copy-field' },
      h('label', { for: input.id }, labelText),
      h('div', { class: 'copy-row' }, input, copyButton(value, labelText.toLowerCase(), secret)));
  }

  // Text with **interface labels** and `code` marked, as the sources table writes it.
  function richText(text) {
    return text.split(/(\*\*[^*]+\*\*|`[^`]+`)/).filter(Boolean).map((part) => {
      if (part.startsWith('**')) return h('strong', {}, part.slice(2, -2));
      if (part.startsWith('`')) return h('code', {}, part.slice(1, -1));
      return part;
    });
  }

  // A block of text to paste elsewhere (a command, a configuration), with a copy button.
  function snippet(labelText, text, secret) {
    const id = nextId('snippet');
    return h('div', { class: 'snippet' },
      // Focusable and named, so that a keyboard can scroll a long line into view.
      h('pre', { id, tabindex: '0', role: 'region', 'aria-label': labelText }, text),
      h('div', { class: 'actions' }, copyButton(text, labelText, secret)));
  }

  // Where a task's instruction comes from without a template.
  function instructionText(source, lower) {
    const text = source.instruction
      ? `The payload’s \`message\` when it is a string, else ${source.instruction}.`
      : 'The payload’s `message` (written as JSON when it is not a string).';
    return lower ? `t${text.slice(1)}` : text;
  }

  function sourceOf(id) {
    return SOURCES.find((s) => s.id === id) || SOURCES[0];
  }

  // A labelled form control with a hint and a place for its error.
  function field(labelText, control, hint, optional) {
    if (!control.id) control.id = nextId('field');
    const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
    const error = h('p', { class: 'field-error', id: `${control.id}-error`, hidden: true });
    control.setAttribute('aria-describedby', [hintEl && hintEl.id, error.id].filter(Boolean).join(' '));
    return h('div', { class: 'field' },
      h('label', { for: control.id }, labelText, optional ? h('span', { class: 'optional' }, ' (optional)') : null),
      control, hintEl, error);
  }

  function formError() {
    return h('p', { class: 'form-error', role: 'alert', hidden: true });
  }

  function clearErrors(scope) {
    for (const el of scope.querySelectorAll('.field-error, .form-error')) {
      el.textContent = '';
      el.hidden = true;
    }
    for (const el of scope.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  // The entries of a list typed into one control: comma-separated, or (`data-list="lines"`)
  // separated by commas, spaces or new lines.
  function listEntries(control) {
    const separator = control.dataset.list === 'lines' ? /[\s,]+/ : /,/;
    return control.value.split(separator).map((entry) => entry.trim()).filter(Boolean);
  }

  // What the API calls a field, in the words of the forms, for errors about a field that is
  // not on the form at hand; and one entry of a list field.
  const FIELD_LABELS = {
    api_key: 'API key', name: 'Name', target_id: 'Target', source: 'Sender', event_types: 'Event types',
    rate_limit_per_minute: 'Rate limit per minute', status: 'Status', secret: 'Secret', kind: 'Kind',
    endpoint_url: 'Endpoint URL', instruction_template: 'Instruction template', allowed_source_ips: 'Allowed source IPs',
    payload: 'Payload', previous_valid_for_seconds: 'Keep the old secret valid for',
  };
  const ITEM_LABELS = { event_types: 'Event type', allowed_source_ips: 'Allowed source IP' };

  // API text as a sentence: no `code` marks, a capital first letter, a full stop.
  function sentence(text) {
    const plain = String(text).replace(/`([^`]*)`/g, '$1').replace(/\s+/g, ' ').trim();
    if (!plain) return plain;
    const capital = `${plain[0].toUpperCase()}${plain.slice(1)}`;
    return /[.!?]$/.test(capital) ? capital : `${capital}.`;
  }

  function controlFor(scope, name) {
    return scope.querySelector(`[data-field="${CSS.escape(name)}"]`);
  }

  function labelOf(control) {
    const el = control && control.id ? document.querySelector(`label[for="${CSS.escape(control.id)}"]`) : null;
    if (!el) return null;
    const copy = el.cloneNode(true);
    for (const extra of copy.querySelectorAll('.optional')) extra.remove();
    return copy.textContent.trim() || null;
  }

  // A refused field in the form's words: "Event type 2 (“bad type!”) may contain only …".
  // `index` is the API's zero-based position in a list; people count from 1.
  function fieldMessage(scope, problem) {
    const control = controlFor(scope, problem.field);
    let subject = labelOf(control) || FIELD_LABELS[problem.field] || sentence(problem.field.replace(/_/g, ' ')).slice(0, -1);
    if (problem.index !== undefined) {
      const entry = control && 'value' in control ? listEntries(control)[problem.index] : undefined;
      subject = `${ITEM_LABELS[problem.field] || subject} ${problem.index + 1}${entry ? ` (“${entry}”)` : ''}`;
    }
    const reason = problem.reason.replace(/`([^`]*)`/g, '$1').trim();
    const verb = /^(must|may|is|are|has|cannot|can|should|does|needs|contains)\b/.test(reason);
    return sentence(verb ? `${subject} ${reason}` : `${subject}: ${reason}`);
  }

  // The refused fields of an error: a check's own list, or the one field the API names
  // (problem+json `field`, `event_types[1]` for the second entry).
  function problemsOf(error) {
    if (error.problems) return error.problems;
    if (!error.field) return [];
    const [, name, index] = /^([^[]+)(?:\[(\d+)\])?/.exec(error.field);
    let reason = error.detail || error.title || 'is not valid';
    // The API's detail starts with the field it names: the form names it in its own words.
    reason = reason.replace(/^`[^`]+` /, '');
    // An error made here (no HTTP status) carries a whole sentence already.
    const message = error.status === undefined ? error.detail : undefined;
    return [{ field: name, index: index === undefined ? undefined : Number(index), reason, message }];
  }

  // Shows an error: each refused field's message next to it, all at once, with a summary on
  // top when there are several; focus goes to the first. Other errors show on top of `scope`.
  function showError(scope, error) {
    clearErrors(scope);
    const problems = problemsOf(error);
    const general = [];
    let first = null;
    const placed = [];
    for (const problem of problems) {
      const message = problem.message || fieldMessage(scope, problem);
      const control = controlFor(scope, problem.field);
      const place = control && document.getElementById(`${control.id}-error`);
      if (!place) {
        general.push(message);
        continue;
      }
      place.textContent = place.hidden ? message : `${place.textContent} ${message}`;
      place.hidden = false;
      control.setAttribute('aria-invalid', 'true');
      // A control inside a closed disclosure (Advanced) cannot take focus.
      const disclosure = control.closest('details');
      if (disclosure) disclosure.open = true;
      if (!placed.includes(control)) placed.push(control);
      first = first || control;
    }
    if (!problems.length) general.push(errorText(error));
    if (placed.length > 1) {
      general.unshift(`${placed.length} fields need a change: ${placed.map((c) => labelOf(c) || c.dataset.field).join(', ')}.`);
    }
    const box = scope.querySelector('.form-error');
    if (general.length && box) {
      box.textContent = general.join(' ');
      box.hidden = false;
    } else if (general.length) {
      toast(general.join(' '));
    }
    if (first) first.focus();
  }

  // Runs a form's checks and shows every refusal at once; true when all passed. `checks` are
  // [field, reason or null, index?] with the API's field names.
  function checkForm(scope, checks) {
    const problems = checks.filter(([, reason]) => reason)
      .map(([name, reason, index]) => ({ field: name, reason, index }));
    if (problems.length) showError(scope, { problems });
    else clearErrors(scope);
    return problems.length === 0;
  }

  // The rules the API applies, checked before sending so that every mistake shows at once.
  const RULES = {
    name(value) {
      const text = value.trim();
      if (!text) return 'is required';
      if ([...text].length > 200) return 'must be at most 200 characters';
      if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) return 'must not contain control characters';
      return null;
    },
    eventType(pattern) {
      if (pattern.length > 128) return 'must be at most 128 characters';
      let stem = pattern;
      if (pattern.endsWith('*')) {
        stem = pattern.slice(0, -1);
        if (stem.length <= 1 || !stem.endsWith('.')) return 'may use a wildcard only as a trailing .* after a prefix, e.g. deploy.*';
      }
      if (stem.includes('*')) return 'may use a wildcard only as a trailing .* after a prefix, e.g. deploy.*';
      if (!/^[A-Za-z0-9._:/-]*$/.test(stem)) return 'may contain only letters, digits and . _ - : /, with an optional trailing .*';
      return null;
    },
    rate(value) {
      if (value === '') return 'is required';
      const number = Number(value);
      if (!Number.isInteger(number)) return 'must be a whole number';
      if (number < 1 || number > 1000000) return 'must be between 1 and 1,000,000 requests per minute';
      return null;
    },
    secret(value) {
      if (value.length < 16) return `must be at least 16 characters (this one has ${value.length})`;
      if (value.length > 256) return 'must be at most 256 characters';
      if (!/^[\x21-\x7e]+$/.test(value)) return 'must contain only visible ASCII characters, without spaces';
      return null;
    },
    endpoint(value) {
      if (value.length > 2048) return 'must be at most 2048 characters';
      let url;
      try { url = new URL(value); } catch { return 'must be an absolute URL, like https://agent.example.com/tasks'; }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must use http or https';
      if (url.username || url.password) return 'must not contain credentials';
      if (!url.hostname) return 'must name a host';
      return null;
    },
  };

  // The checks of an event-type list, one per refused entry.
  function eventTypeChecks(control) {
    const entries = listEntries(control);
    const checks = entries.map((entry, index) => ['event_types', RULES.eventType(entry), index]);
    if (entries.length > 64) checks.push(['event_types', 'may list at most 64 patterns']);
    return checks;
  }

  function errorText(error) {
    if (error.status === 403) return `${sentence(error.detail || 'Forbidden')} Changes need an admin API key.`;
    return sentence(error.detail || error.title || error.message || 'Something went wrong');
  }

  // ------------------------------------------------------------------------------------------
  // API client

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.code = problem.code;
      this.title = problem.title;
      this.detail = problem.detail;
      this.field = problem.field;
    }
  }

  async function request(method, path, body, key) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${key || state.key}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method, headers, cache: 'no-store', credentials: 'omit',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, { detail: `webhookd could not be reached (${error.message}). Check that it is running, then try again.` });
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    return { response, data, text };
  }

  // An answer's parsed JSON and its text, or an ApiError.
  async function apiAnswer(method, path, body) {
    const { response, data, text } = await request(method, path, body);
    if (response.ok) return { data, text };
    const problem = data && typeof data === 'object' ? data : { detail: text || response.statusText };
    const error = new ApiError(response.status, problem);
    if (response.status === 401) {
      signOut('Your API key is no longer accepted. Sign in again.');
    }
    throw error;
  }

  async function api(method, path, body) {
    return (await apiAnswer(method, path, body)).data;
  }

  // The API has no "who am I": a write that changes nothing tells the role. A viewer key is
  // refused with 403 before the body is read; an admin key gets 400 for the empty body.
  async function probeRole(key) {
    const { response } = await request('PATCH', '/api/v1/tasks/00000000-0000-0000-0000-000000000000', {}, key);
    return response.status === 403 ? 'viewer' : 'admin';
  }

  const canWrite = () => state.role === 'admin';

  // ------------------------------------------------------------------------------------------
  // Dialogs

  // A modal dialog. While it shows a secret that was not copied, Escape and the close button
  // ask first: the secret is never shown again.
  function openDialog(title, content) {
    const opener = document.activeElement;
    const titleId = nextId('dialog-title');
    const body = h('div', { class: 'dialog-body' });
    let copied = false;
    let asking = null;
    const keepOpen = () => {
      asking.remove();
      asking = null;
      const secret = body.querySelector('[data-secret]');
      if (secret) secret.focus();
    };
    const requestClose = () => {
      if (asking) {
        keepOpen();
        return;
      }
      if (copied || !body.querySelector('[data-secret]')) {
        dialog.close();
        return;
      }
      const textId = nextId('ask');
      const stay = h('button', { type: 'button', class: 'btn btn-primary', onclick: keepOpen }, 'Keep it open');
      asking = h('div', { class: 'callout callout-warn close-confirm', role: 'alertdialog', 'aria-labelledby': textId, 'aria-modal': 'false' },
        h('p', { id: textId }, h('strong', {}, 'Close without copying the secret?'), ' webhookd never shows it again; a lost secret can only be replaced.'),
        h('div', { class: 'actions' }, stay,
          h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, 'Close anyway')));
      body.prepend(asking);
      stay.focus();
    };
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('div', { class: 'dialog-head' },
        h('h2', { id: titleId }, title),
        h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', onclick: requestClose }, icon('close'))),
      body);
    append(body, [content]);
    body.addEventListener('secretcopied', () => {
      copied = true;
      if (asking) asking.remove();
      asking = null;
    });
    // Escape: the keydown's default would close the dialog; the cancel event is the fallback
    // where a browser closes it another way.
    let keyHandled = false;
    dialog.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return;
      event.preventDefault();
      keyHandled = true;
      setTimeout(() => { keyHandled = false; });
      requestClose();
    });
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      if (!keyHandled) requestClose();
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = body.querySelector('input:not([readonly]), select, textarea, button.btn-primary, button.btn-danger');
    if (first) first.focus();
    return { dialog, body, setTitle: (text) => { document.getElementById(titleId).textContent = text; } };
  }

  function confirmDialog({ title, message, confirmLabel, danger, action }) {
    const error = formError();
    const confirm = h('button', { type: 'submit', class: danger ? 'btn btn-danger' : 'btn btn-primary' }, confirmLabel);
    const form = h('form', { novalidate: true },
      error,
      append(h('div', { class: 'stack' }), [message]),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => handle.dialog.close() }, 'Cancel'),
        confirm));
    const cancel = form.querySelector('.dialog-actions .btn');
    const handle = openDialog(title, form);
    // A destructive confirmation starts on Cancel: Enter alone never deletes.
    if (danger) cancel.focus();
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      confirm.disabled = true;
      try {
        await action(handle);
      } catch (err) {
        showError(form, err);
        confirm.disabled = false;
      }
    });
    return handle;
  }

  function secretOnce(what, secret) {
    return [
      h('div', { class: 'callout callout-warn', role: 'note' },
        h('strong', {}, 'Copy the secret now: you will not see this again.'),
        ` webhookd keeps the ${what} encrypted and never shows it a second time.`),
      copyField('Secret', secret, 'shown-secret', true),
    ];
  }

  // ------------------------------------------------------------------------------------------
  // Page scaffolding

  function page(...children) {
    const el = h('div', { class: 'page' }, ...children);
    main.replaceChildren(el);
    return el;
  }

  function pageHead(title, lead, actions, crumbs) {
    return h('div', { class: 'page-head' },
      h('div', {},
        crumbs ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, crumbs) : null,
        h('div', { class: 'title-row' }, title instanceof Node ? title : h('h1', { tabindex: '-1' }, title)),
        lead ? h('p', { class: 'lead' }, lead) : null),
      actions ? h('div', { class: 'actions' }, actions) : null);
  }

  function emptyState(iconName, title, text, action) {
    return h('div', { class: 'empty' },
      h('div', { class: 'empty-icon', 'aria-hidden': 'true' }, icon(iconName)),
      h('h2', {}, title),
      h('p', {}, text),
      action || null);
  }

  function readOnlyNote() {
    return canWrite() ? null : h('p', { class: 'callout callout-info' },
      'You are signed in with a read-only key: you can look at everything, and changes need an admin key.');
  }

  function loading() {
    page(h('p', { class: 'muted', role: 'status' }, 'Loading…'));
  }

  function failure(error) {
    page(pageHead('Something went wrong'),
      h('div', { class: 'card' }, h('div', { class: 'card-body' },
        h('p', { class: 'form-error', role: 'alert' }, errorText(error)),
        h('button', { type: 'button', class: 'btn', onclick: () => route() }, 'Try again'))));
  }

  // After a page change, focus its heading, or the control that changed the page (a filter,
  // the board's target) so that keyboard users keep their place.
  function focusPage() {
    const control = state.focusAfter && main.querySelector(state.focusAfter);
    state.focusAfter = null;
    const heading = main.querySelector('h1');
    if (control) control.focus();
    else if (heading) heading.focus({ preventScroll: true });
  }

  // Renders the page shown again in place (without the loading state), then gives the focus
  // back to the control `selector` finds on it: the one that changed what the page shows.
  async function rerender(selector) {
    await route({ keepFocus: true });
    const again = document.querySelector(selector);
    if (again) again.focus();
  }

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  // ------------------------------------------------------------------------------------------
  // Sign-in

  function renderSignIn(message) {
    document.getElementById('topbar').hidden = true;
    const input = h('input', { type: 'password', name: 'api_key', 'data-field': 'api_key', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'whk_…' });
    const error = formError();
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
    const form = h('form', { novalidate: true },
      message ? h('p', { class: 'callout callout-info' }, message) : null,
      error,
      field('API key', input, 'Kept in this browser tab only, until you sign out or close it.'),
      submit);
    main.replaceChildren(h('div', { class: 'signin' },
      h('div', { class: 'brand' }, h('img', { src: '/console/icon.svg', alt: '', width: 28, height: 28 }), 'webhookd'),
      h('div', { class: 'card' }, h('div', { class: 'card-body' },
        h('h1', { tabindex: '-1' }, 'Sign in'),
        h('p', { class: 'lead' }, 'Use an API key of your organization. webhookd prints the first admin key when it first starts; ',
          h('code', {}, 'webhookd api-key create'), ' makes more.'),
        form))));
    input.focus();
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) {
        showError(form, { field: 'api_key', detail: 'Enter an API key.' });
        return;
      }
      submit.disabled = true;
      try {
        const { response, data } = await request('GET', '/api/v1/organization', undefined, key);
        if (response.status === 401) {
          showError(form, { field: 'api_key', detail: `This key is not accepted: ${(data && data.detail) || 'unknown key'}.` });
          return;
        }
        if (!response.ok) throw new ApiError(response.status, data || {});
        state.key = key;
        state.org = data;
        state.role = await probeRole(key);
        sessionStorage.setItem(KEY_STORAGE, key);
        showShell();
        route();
      } catch (err) {
        showError(form, err);
      } finally {
        submit.disabled = false;
      }
    });
  }

  function signOut(message) {
    state.key = null;
    state.role = null;
    state.org = null;
    state.generation += 1;
    sessionStorage.removeItem(KEY_STORAGE);
    renderSignIn(message);
  }

  function showShell() {
    document.getElementById('topbar').hidden = false;
    document.getElementById('org-name').textContent = state.org ? state.org.name : '';
    const role = document.getElementById('role-badge');
    role.className = `badge badge-${state.role}`;
    role.textContent = state.role === 'admin' ? 'Admin' : 'Read-only';
    role.title = state.role === 'admin' ? 'This key can change everything' : 'This key can only read';
  }

  // ------------------------------------------------------------------------------------------
  // Webhooks

  // How a webhook fared over the last 24 hours (its `health`): failures are marked with an icon
  // and words, not only a colour, and lead to the log's failed requests.
  function healthSummary(webhook) {
    const { accepted_24h: accepted, failed_24h: failed, last_failure_at: lastFailure } = webhook.health;
    const title = `Last 24 hours: ${accepted.toLocaleString()} accepted, ${failed.toLocaleString()} failed`;
    if (failed > 0) {
      return h('div', { class: 'health health-failing', 'data-health': 'failing', title },
        h('span', { class: 'health-line' },
          h('a', { class: 'health-flag', href: `#/webhooks/${webhook.id}/log?outcome=failed` }, icon('alert'), `${failed.toLocaleString()} failed`),
          h('span', { class: 'muted' }, ` · ${accepted.toLocaleString()} accepted`)),
        lastFailure ? h('span', { class: 'health-last' }, 'Last failure ', time(lastFailure)) : null);
    }
    if (accepted > 0) {
      return h('div', { class: 'health health-ok', 'data-health': 'ok', title },
        h('span', { class: 'health-line' }, h('span', { class: 'health-flag' }, icon('check'), `${accepted.toLocaleString()} accepted`)),
        h('span', { class: 'health-last' }, 'No failures'));
    }
    return h('div', { class: 'health health-quiet', 'data-health': 'quiet', title },
      h('span', { class: 'health-line' }, h('span', { class: 'health-flag' }, icon('quiet'), 'Quiet')),
      h('span', { class: 'health-last' }, 'Nothing received'));
  }

  // The foot of a list read a page at a time: while `listPath` has a next page (`setMore` is
  // given its cursor), a "Load more" button that reads it and hands its items to `addItems`.
  function moreFoot(listPath, addItems) {
    const foot = h('div', { class: 'list-foot' });
    const setMore = (cursor) => {
      foot.replaceChildren();
      foot.hidden = !cursor;
      if (!cursor) return;
      const more = h('button', { type: 'button', class: 'btn', onclick: async () => {
        more.disabled = true;
        try {
          const next = await api('GET', `${listPath}&cursor=${encodeURIComponent(cursor)}`);
          addItems(next.items);
          setMore(next.next_cursor);
        } catch (err) {
          more.disabled = false;
          toast(errorText(err));
        }
      } }, 'Load more');
      foot.append(more);
    };
    return { foot, setMore };
  }

  async function webhooksPage(gen, query) {
    const status = WEBHOOK_FILTERS.some(([value]) => value === query.get('status')) ? query.get('status') : '';
    const listPath = `/api/v1/webhooks?limit=${PAGE_SIZE}${status ? `&status=${status}` : ''}`;
    const [list, targets] = await Promise.all([
      api('GET', listPath),
      api('GET', '/api/v1/targets?limit=500'),
    ]);
    if (gen !== state.generation) return;
    const create = canWrite()
      ? h('button', { type: 'button', class: 'btn btn-primary', onclick: () => createWebhookDialog(targets.items) }, icon('plus'), 'Create Webhook')
      : null;
    const head = pageHead('Webhooks', 'Endpoints that external systems post events to. Each accepted event becomes a task for the webhook’s target.', create);
    const filters = h('div', { class: 'toolbar' }, h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Status' },
      WEBHOOK_FILTERS.map(([value, text]) => h('label', {},
        h('input', { type: 'radio', name: 'status', value, checked: value === status, onchange: () => {
          state.focusAfter = 'input[name="status"]:checked';
          go(`#/webhooks${value ? `?status=${value}` : ''}`);
        } }),
        h('span', {}, text)))));
    if (list.items.length === 0 && status) {
      const text = status === 'deleted'
        ? 'A deleted webhook is listed here; its log stays readable until the retention period purges it.'
        : `No webhook is ${label(status).toLowerCase()}. Choose “All” to see every webhook.`;
      page(head, readOnlyNote(), filters, h('div', { class: 'card' }, emptyState('inbox', `No ${label(status).toLowerCase()} webhooks`, text)));
      return;
    }
    if (list.items.length === 0) {
      let next;
      if (!canWrite()) {
        next = h('p', {}, 'An admin creates webhooks; they will show up here.');
      } else if (targets.items.length === 0) {
        next = h('a', { class: 'btn btn-primary', href: '#/targets' }, 'Create a target first');
      } else {
        next = h('button', { type: 'button', class: 'btn btn-primary', onclick: () => createWebhookDialog(targets.items) }, icon('plus'), 'Create Webhook');
      }
      const text = targets.items.length === 0 && canWrite()
        ? 'A webhook delivers its events to a target (an agent or a team). Create a target, then a webhook to get a URL to hand to the sender.'
        : 'Create a webhook to get a URL that CI pipelines, monitors or other systems can post JSON events to.';
      page(head, readOnlyNote(), filters, h('div', { class: 'card' }, emptyState('zap', 'No webhooks yet', text, next)));
      return;
    }
    const tbody = h('tbody', {});
    const table = h('table', { class: 'list' },
      h('caption', { class: 'visually-hidden' }, 'Webhooks'),
      h('thead', {}, h('tr', {},
        ['Name', 'URL', 'Target', 'Status', 'Last 24 h', 'Last triggered'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody);
    const addRows = (items) => {
      for (const webhook of items) {
        tbody.append(h('tr', {},
          h('td', { class: 'primary', 'data-label': 'Name' }, h('a', { class: 'name-link', href: `#/webhooks/${webhook.id}` }, webhook.name),
            webhook.source && webhook.source !== 'generic' ? h('span', { class: 'sender' }, sourceOf(webhook.source).name) : null),
          h('td', { 'data-label': 'URL' }, h('div', { class: 'url-cell' },
            h('code', { title: webhook.url }, webhook.url), copyButton(webhook.url, `URL of ${webhook.name}`))),
          h('td', { 'data-label': 'Target', class: 'target' }, webhook.target ? webhook.target.name : h('span', { class: 'muted' }, 'None')),
          h('td', { 'data-label': 'Status' }, badge(webhook.status)),
          h('td', { 'data-label': 'Last 24 h' }, healthSummary(webhook)),
          h('td', { 'data-label': 'Last triggered', class: 'nowrap' }, time(webhook.last_triggered_at))));
      }
    };
    const { foot, setMore } = moreFoot(listPath, addRows);
    addRows(list.items);
    setMore(list.next_cursor);
    page(head, readOnlyNote(), filters, h('div', { class: 'card' }, h('div', { class: 'table-wrap' }, table), foot));
  }

  // The steps that connect a sender to a webhook. The secret is known only right after the
  // webhook is made; `paste` is the form in which a secret made by the sender is saved, where
  // the steps can offer one (else they point at Rotate secret).
  function setupSteps(source, { url, secret, paste }) {
    const fill = (text) => text.replaceAll('{url}', url).replaceAll('{secret}', secret || '<secret>');
    return h('ol', { class: 'steps' }, source.steps.map((step) => {
      const extra = [];
      if (step.value === 'url') {
        extra.push(copyField(step.label, url));
      } else if (step.value === 'secret') {
        extra.push(secret
          ? copyField(step.label, secret, null, true)
          : h('p', { class: 'hint' }, 'webhookd showed the secret once, when it was made. Lost it? Rotate secret makes a new one.'));
      } else if (step.value === 'paste') {
        extra.push(paste || h('p', { class: 'hint' }, canWrite()
          ? richText('On this page: **Rotate secret**, then **Paste the sender’s secret**.')
          : 'An admin pastes it with Rotate secret on this page.'));
      }
      if (step.snippet) extra.push(snippet(step.label, fill(step.snippet), Boolean(secret) && step.snippet.includes('{secret}')));
      return h('li', {}, h('p', {}, richText(step.text)), extra);
    }));
  }

  // Where a secret made by the sender (Stripe's signing secret…) is saved into webhookd.
  function pasteSecretForm(webhook, source) {
    const input = h('input', { type: 'text', name: 'secret', 'data-field': 'secret', autocomplete: 'off', spellcheck: 'false', minlength: 16, maxlength: 256, placeholder: source.secretPlaceholder || null });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save secret');
    const form = h('form', { novalidate: true, class: 'paste-secret' },
      formError(),
      field(source.secretName, input, '16 to 256 visible ASCII characters. webhookd keeps it encrypted and never shows it.'),
      h('div', { class: 'actions' }, submit));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const secret = input.value.trim();
      if (!secret) {
        showError(form, { field: 'secret', detail: `Paste ${source.secretName}.` });
        return;
      }
      if (!checkForm(form, [['secret', RULES.secret(secret)]])) return;
      submit.disabled = true;
      try {
        await api('POST', `/api/v1/webhooks/${webhook.id}/rotate-secret`, { secret });
        const done = h('p', { class: 'callout callout-ok', role: 'status', tabindex: '-1' },
          `Saved: webhookd now checks ${source.name}’s signatures with it.`);
        form.replaceWith(done);
        done.focus();
      } catch (err) {
        showError(form, err);
        submit.disabled = false;
      }
    });
    return form;
  }

  function createWebhookDialog(targets) {
    if (targets.length === 0) {
      openDialog('Create webhook', [
        emptyState('target', 'Create a target first', 'A webhook turns each event into a task for a target: an agent or a team. Create one, then come back.',
          h('a', { class: 'btn btn-primary', href: '#/targets', onclick: () => document.querySelector('dialog').close() }, 'Go to targets')),
      ]);
      return;
    }
    const name = h('input', { type: 'text', name: 'name', 'data-field': 'name', required: true, maxlength: 200, autocomplete: 'off' });
    const target = h('select', { name: 'target_id', 'data-field': 'target_id', required: true },
      targets.map((t) => h('option', { value: t.id }, `${t.name} (${t.kind})`)));
    const sender = h('select', { name: 'source', 'data-field': 'source' },
      SOURCES.map((s) => h('option', { value: s.id }, s.label)));
    const senderHint = h('span', {});
    const events = h('input', { type: 'text', name: 'event_types', 'data-field': 'event_types', autocomplete: 'off', spellcheck: 'false', placeholder: SOURCES[0].events });
    const rate = h('input', { type: 'number', name: 'rate_limit_per_minute', 'data-field': 'rate_limit_per_minute', min: 1, max: 1000000, value: '100' });
    const secret = h('input', { type: 'text', name: 'secret', 'data-field': 'secret', autocomplete: 'off', spellcheck: 'false', minlength: 16, maxlength: 256 });
    const secretField = field('Your secret', secret, '16 to 256 visible ASCII characters, which the sender uses as this webhook’s secret.');
    secretField.hidden = true;
    const generate = h('input', { type: 'radio', name: 'secret_mode', value: 'generate', checked: true });
    const own = h('input', { type: 'radio', name: 'secret_mode', value: 'own' });
    const onMode = () => {
      secretField.hidden = !own.checked;
      if (own.checked) secret.focus();
    };
    generate.addEventListener('change', onMode);
    own.addEventListener('change', onMode);
    const secretChoice = h('fieldset', {},
      h('legend', {}, 'Secret'),
      h('div', { class: 'radio-row' },
        h('label', {}, generate, 'Generate one for me'),
        h('label', {}, own, 'Use my own')));
    // For senders that make the secret themselves, the secret is pasted rather than generated.
    const pasted = h('input', { type: 'text', name: 'sender_secret', 'data-field': 'sender_secret', autocomplete: 'off', spellcheck: 'false', minlength: 16, maxlength: 256 });
    const pastedLabel = h('span', {});
    const pastedHint = h('span', {});
    const pastedField = field(pastedLabel, pasted, pastedHint, true);
    const template = h('textarea', { name: 'instruction_template', 'data-field': 'instruction_template', rows: 3, spellcheck: 'false', maxlength: 4096, placeholder: 'Deploy {{ deployment.environment }} failed: {{ message }}' });
    const templateHint = h('span', {});
    const ips = h('textarea', { name: 'allowed_source_ips', 'data-field': 'allowed_source_ips', 'data-list': 'lines', rows: 2, spellcheck: 'false', placeholder: '192.0.2.0/24, 2001:db8::/32' });
    const onSender = () => {
      const source = sourceOf(sender.value);
      senderHint.replaceChildren(...richText(`webhookd checks: ${source.auth}`));
      events.placeholder = source.events;
      const fromSender = source.secretFrom === 'sender';
      secretChoice.hidden = fromSender;
      secretField.hidden = fromSender || !own.checked;
      pastedField.hidden = !fromSender;
      if (fromSender) {
        pastedLabel.textContent = source.secretName;
        pasted.placeholder = source.secretPlaceholder || '';
        pastedHint.replaceChildren(...richText(source.pasteHint));
      }
      templateHint.replaceChildren(...richText(`Jinja syntax over the payload. Leave it empty for ${instructionText(source, true)}`));
    };
    sender.addEventListener('change', onSender);
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create webhook');
    const form = h('form', { novalidate: true },
      formError(),
      field('Name', name, 'Shown in the console and the logs, e.g. “CI pipeline”.'),
      field('Target', target, 'Who receives the tasks this webhook creates.'),
      field('Sender', sender, senderHint),
      field('Event types', events, 'Exact names or prefix.*, separated by commas. Leave empty to accept every event.', true),
      secretChoice,
      secretField,
      pastedField,
      field('Rate limit per minute', rate, 'Requests beyond it are answered 429.'),
      h('details', { class: 'disclosure' },
        h('summary', {}, 'Advanced'),
        h('div', { class: 'disclosure-body' },
          field('Instruction template', template, templateHint, true),
          field('Allowed source IPs', ips, 'Networks in CIDR notation, separated by commas or new lines. Requests from elsewhere are refused (403). Leave empty to accept any address.', true))),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => handle.dialog.close() }, 'Cancel'),
        submit));
    onSender();
    const handle = openDialog('Create webhook', form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const source = sourceOf(sender.value);
      const fromSender = source.secretFrom === 'sender';
      const ok = checkForm(form, [
        ['name', RULES.name(name.value)],
        ...eventTypeChecks(events),
        ['secret', !fromSender && own.checked ? RULES.secret(secret.value) : null],
        ['sender_secret', fromSender && pasted.value.trim() ? RULES.secret(pasted.value.trim()) : null],
        ['rate_limit_per_minute', RULES.rate(rate.value)],
      ]);
      if (!ok) return;
      const body = {
        name: name.value.trim(),
        target_id: target.value,
        event_types: listEntries(events),
      };
      // Settings left at their defaults are not sent: the answer says what they are.
      if (source.id !== 'generic') body.source = source.id;
      if (fromSender && pasted.value.trim()) body.secret = pasted.value.trim();
      // Until the sender's own secret is pasted, a generated one nobody knows refuses everything.
      else if (fromSender) body.generate_secret = true;
      else if (own.checked) body.secret = secret.value;
      else body.generate_secret = true;
      body.rate_limit_per_minute = Number(rate.value);
      if (template.value.trim()) body.instruction_template = template.value;
      const networks = listEntries(ips);
      if (networks.length) body.allowed_source_ips = networks;
      submit.disabled = true;
      try {
        const created = await api('POST', '/api/v1/webhooks', body);
        showCreated(handle, created, sourceOf(created.source || source.id), fromSender && !body.secret);
        if (location.hash === '#/webhooks' || location.hash === '') {
          handle.dialog.addEventListener('close', () => { if (location.hash === '#/webhooks') route(); });
        }
      } catch (err) {
        // The sender's pasted secret is sent as `secret`: show a refusal next to it.
        if (fromSender && err.field === 'secret') err.field = 'sender_secret';
        showError(form, err);
      } finally {
        submit.disabled = false;
      }
    });
  }

  // The dialog after creation: the sender's setup steps, with the URL and the secret, shown
  // once, to copy; or, for senders that make the secret, the place to paste theirs.
  function showCreated(handle, created, source, needsSenderSecret) {
    const fromSender = source.secretFrom === 'sender';
    let paste = null;
    if (needsSenderSecret) paste = pasteSecretForm(created, source);
    else if (fromSender) paste = h('p', { class: 'callout callout-ok' }, `${source.secretName} is saved.`);
    handle.setTitle('Webhook created');
    handle.body.replaceChildren();
    append(handle.body, [
      h('p', { class: 'callout callout-ok', role: 'status' }, `“${created.name}” is ready. ${fromSender ? `Connect ${source.name} to its URL.` : 'Hand its URL and secret to the sender.'}`),
      !fromSender && created.secret ? h('div', { class: 'callout callout-warn', role: 'note' },
        h('strong', {}, 'Copy the secret now: you will not see this again.'),
        ' webhookd keeps the secret encrypted and never shows it a second time.') : null,
      h('section', { class: 'setup', 'aria-labelledby': 'setup-title' },
        h('h3', { id: 'setup-title' }, source.id === 'generic' ? 'Send events' : `Set up ${source.name}`),
        setupSteps(source, { url: created.url, secret: fromSender ? null : created.secret, paste })),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn btn-primary', onclick: () => { go(`#/webhooks/${created.id}`); handle.dialog.close(); } }, 'Done')),
    ]);
    const first = handle.body.querySelector('.setup input');
    if (first) first.focus();
  }

  function webhookTabs(webhook, current) {
    return h('nav', { class: 'tabs', 'aria-label': 'Webhook' },
      h('a', { href: `#/webhooks/${webhook.id}`, 'aria-current': current === 'overview' ? 'page' : null }, 'Overview'),
      h('a', { href: `#/webhooks/${webhook.id}/log`, 'aria-current': current === 'log' ? 'page' : null }, 'Invocation log'));
  }

  // The list a webhook is found in: a deleted one under the list's Deleted filter.
  function webhooksLink(webhook) {
    return webhook && webhook.status === 'deleted'
      ? h('a', { href: '#/webhooks?status=deleted' }, 'Deleted webhooks')
      : h('a', { href: '#/webhooks' }, 'Webhooks');
  }

  function webhookHead(webhook, lead) {
    return pageHead(
      h('div', { class: 'title-row' }, h('h1', { tabindex: '-1' }, webhook.name), badge(webhook.status)),
      lead, null,
      [webhooksLink(webhook), ' / ', webhook.name]);
  }

  function samplePayload(webhook) {
    const source = sourceOf(webhook.source);
    if (source.sample) return JSON.stringify(source.sample, null, 2);
    // Senders that name the event in a header (GitHub, Shopify): the payload cannot type it.
    if (source.id !== 'generic') return JSON.stringify({ message: 'Test event from the console', test: true }, null, 2);
    const pattern = webhook.event_types.find((p) => !p.endsWith('*'));
    const prefix = webhook.event_types.find((p) => p.endsWith('.*'));
    const payload = { message: 'Test event from the console' };
    if (pattern) payload.event_type = pattern;
    else if (prefix) payload.event_type = `${prefix.slice(0, -2)}.test`;
    payload.test = true;
    return JSON.stringify(payload, null, 2);
  }

  // How the webhook's sender proves it holds the secret: the source's way, or a generic
  // webhook's `verification` override.
  function verificationText(webhook, source) {
    const v = webhook.verification;
    if (!v) return source.auth;
    if (v.scheme === 'header') return `The \`${v.header}\` header equals the secret.`;
    if (v.scheme === 'bearer') return '`Authorization: Bearer <secret>`.';
    if (v.scheme === 'basic') return '`Authorization: Basic`, with the secret as the password.';
    if (v.scheme === 'hmac') {
      const algorithm = (v.algorithm || 'sha256').toUpperCase().replace('SHA', 'SHA-');
      const prefix = v.prefix ? `, after \`${v.prefix}\`` : '';
      return `\`${v.header}\`: the ${v.encoding || 'hex'} HMAC-${algorithm} of the body${prefix}.`;
    }
    return `\`${JSON.stringify(v)}\``;
  }

  // A setting that the webhook may override: the override, or what the source does.
  function overridable(value, fallback) {
    return value
      ? [h('code', {}, value), h('span', { class: 'muted' }, ' · set on this webhook')]
      : richText(fallback);
  }

  function secretText(webhook) {
    if (!webhook.has_secret) return h('span', { class: 'muted' }, 'None: anyone with the URL can post, and tasks say the sender is unverified');
    const expires = webhook.previous_secret_expires_at;
    return [
      'Set',
      expires && new Date(expires) > new Date()
        ? h('p', { class: 'hint', 'data-previous-secret': '' }, 'The previous secret also works until ', time(expires), '.')
        : null,
    ];
  }

  async function webhookPage(gen, id) {
    const webhook = await api('GET', `/api/v1/webhooks/${encodeURIComponent(id)}`);
    if (gen !== state.generation) return;
    const deleted = webhook.status === 'deleted';
    const source = sourceOf(webhook.source);
    const ips = webhook.allowed_source_ips || [];
    const props = h('dl', { class: 'props' },
      h('dt', {}, 'URL'), h('dd', {}, h('div', { class: 'url-cell' }, h('code', {}, webhook.url), copyButton(webhook.url, 'webhook URL'))),
      h('dt', {}, 'Target'), h('dd', {}, webhook.target
        ? [h('a', { href: `#/board/${webhook.target.id}` }, webhook.target.name), h('span', { class: 'muted' }, ` · ${webhook.target.kind}`)]
        : h('span', { class: 'muted' }, 'Deleted')),
      h('dt', {}, 'Sender'), h('dd', { 'data-prop': 'source' }, source.label),
      h('dt', {}, 'Authentication'), h('dd', {}, richText(verificationText(webhook, source)),
        webhook.verification ? h('span', { class: 'muted' }, ' · set on this webhook') : null),
      h('dt', {}, 'Secret'), h('dd', {}, secretText(webhook)),
      h('dt', {}, 'Event types'), h('dd', {}, webhook.event_types.length
        ? webhook.event_types.map((t) => h('span', { class: 'chip' }, t))
        : h('span', { class: 'muted' }, 'Every event')),
      h('dt', {}, 'Event type from'), h('dd', {}, overridable(webhook.event_type_from, source.eventType)),
      h('dt', {}, 'Delivery id from'), h('dd', {}, overridable(webhook.dedup_key_from, source.deliveryId)),
      h('dt', {}, 'Instruction'), h('dd', { 'data-prop': 'instruction' }, webhook.instruction_template
        ? [h('pre', { class: 'template' }, webhook.instruction_template), h('span', { class: 'muted' }, 'Template set on this webhook')]
        : richText(instructionText(source))),
      h('dt', {}, 'Allowed source IPs'), h('dd', { 'data-prop': 'allowed_source_ips' }, ips.length
        ? ips.map((cidr) => h('span', { class: 'chip' }, cidr))
        : h('span', { class: 'muted' }, 'Any address')),
      h('dt', {}, 'Rate limit'), h('dd', {}, `${webhook.rate_limit_per_minute.toLocaleString()} requests per minute`),
      h('dt', {}, 'Created'), h('dd', {}, time(webhook.created_at)),
      h('dt', {}, 'Updated'), h('dd', {}, time(webhook.updated_at)),
      h('dt', {}, 'Last triggered'), h('dd', {}, time(webhook.last_triggered_at)),
      h('dt', {}, 'Last 24 h'), h('dd', { 'data-prop': 'health' }, healthSummary(webhook)));
    const left = h('div', { class: 'stack' }, detailsCard(webhook, props, canWrite() && !deleted));
    if (!deleted) {
      left.append(h('section', { class: 'card setup', 'aria-labelledby': 'setup-title' }, h('div', { class: 'card-body' },
        h('h2', { id: 'setup-title' }, source.id === 'generic' ? 'Send events' : `Set up ${source.name}`),
        h('p', { class: 'lead' }, source.id === 'generic'
          ? 'How a sender posts events to this webhook.'
          : `How to point ${source.name} at this webhook.`),
        setupSteps(source, { url: webhook.url, secret: null }))));
    }
    const right = h('div', { class: 'stack' });
    if (deleted) {
      right.append(h('div', { class: 'callout callout-warn', 'data-deleted': '' },
        'This webhook is deleted: its URL answers 410 Gone to every sender, and it can no longer be changed, tested or rotated. Its invocation log and each request in it stay readable.'));
    } else if (canWrite()) {
      right.append(manageCard(webhook), testCard(webhook));
    }
    page(webhookHead(webhook), webhookTabs(webhook, 'overview'), readOnlyNote(),
      h('div', { class: 'grid-2' }, left, right.childElementCount ? right : h('div', {})));
  }

  // The webhook's details, which an admin edits in place: name, target, event types, limit
  // and status.
  function detailsCard(webhook, props, editable) {
    const card = h('section', { class: 'card', 'aria-labelledby': 'details-title' });
    const editButton = editable
      ? h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'edit', onclick: () => edit() }, icon('pencil'), 'Edit')
      : null;
    const show = () => {
      card.replaceChildren(h('div', { class: 'card-body' },
        h('div', { class: 'card-head' }, h('h2', { id: 'details-title' }, 'Details'), editButton),
        props));
    };
    const edit = async () => {
      editButton.disabled = true;
      let targets;
      try {
        targets = (await api('GET', `/api/v1/targets?limit=${MAX_LIMIT}`)).items;
      } catch (err) {
        toast(errorText(err));
        return;
      } finally {
        editButton.disabled = false;
      }
      card.replaceChildren(h('div', { class: 'card-body' },
        h('div', { class: 'card-head' }, h('h2', { id: 'details-title' }, 'Edit details')),
        editWebhookForm(webhook, targets, () => {
          show();
          editButton.focus();
        })));
      card.querySelector('input').focus();
    };
    show();
    return card;
  }

  function editWebhookForm(webhook, targets, cancel) {
    const name = h('input', { type: 'text', name: 'name', 'data-field': 'name', required: true, maxlength: 200, autocomplete: 'off', value: webhook.name });
    const current = webhook.target ? webhook.target.id : '';
    const target = h('select', { name: 'target_id', 'data-field': 'target_id' },
      current && !targets.some((t) => t.id === current) ? h('option', { value: current, selected: true }, webhook.target.name) : null,
      targets.map((t) => h('option', { value: t.id, selected: t.id === current }, `${t.name} (${t.kind})`)));
    const events = h('input', { type: 'text', name: 'event_types', 'data-field': 'event_types', autocomplete: 'off', spellcheck: 'false', value: webhook.event_types.join(', '), placeholder: sourceOf(webhook.source).events });
    const rate = h('input', { type: 'number', name: 'rate_limit_per_minute', 'data-field': 'rate_limit_per_minute', min: 1, max: 1000000, value: String(webhook.rate_limit_per_minute) });
    const status = h('select', { name: 'status', 'data-field': 'status' },
      h('option', { value: 'active', selected: webhook.status === 'active' }, 'Active: accepting events'),
      h('option', { value: 'disabled', selected: webhook.status === 'disabled' }, 'Disabled: senders get 403'));
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save changes');
    const form = h('form', { novalidate: true, class: 'edit-form' },
      formError(),
      field('Name', name),
      field('Target', target, 'Who receives the tasks this webhook creates from now on.'),
      field('Event types', events, 'Exact names or prefix.*, separated by commas. Leave empty to accept every event.', true),
      field('Rate limit per minute', rate, 'Requests beyond it are answered 429.'),
      field('Status', status),
      h('div', { class: 'actions' },
        submit,
        h('button', { type: 'button', class: 'btn', onclick: cancel }, 'Cancel')));
    form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        cancel();
      }
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const ok = checkForm(form, [
        ['name', RULES.name(name.value)],
        ...eventTypeChecks(events),
        ['rate_limit_per_minute', RULES.rate(rate.value)],
      ]);
      if (!ok) return;
      // Only what changed is sent.
      const body = {};
      if (name.value.trim() !== webhook.name) body.name = name.value.trim();
      if (target.value !== current) body.target_id = target.value;
      const types = listEntries(events);
      if (JSON.stringify(types) !== JSON.stringify(webhook.event_types)) body.event_types = types;
      if (Number(rate.value) !== webhook.rate_limit_per_minute) body.rate_limit_per_minute = Number(rate.value);
      if (status.value !== webhook.status) body.status = status.value;
      if (Object.keys(body).length === 0) {
        cancel();
        return;
      }
      submit.disabled = true;
      try {
        await api('PATCH', `/api/v1/webhooks/${webhook.id}`, body);
        toast(`“${body.name || webhook.name}” saved`);
        await rerender('[data-action="edit"]');
      } catch (err) {
        showError(form, err);
        submit.disabled = false;
      }
    });
    return form;
  }

  function manageCard(webhook) {
    const active = webhook.status === 'active';
    const error = formError();
    const toggle = h('button', {
      type: 'button', class: 'switch', role: 'switch', 'aria-checked': String(active), 'aria-labelledby': 'status-label', 'aria-describedby': 'status-help',
      onclick: async () => {
        toggle.disabled = true;
        try {
          await api('PATCH', `/api/v1/webhooks/${webhook.id}`, { status: active ? 'disabled' : 'active' });
          toast(active ? `“${webhook.name}” disabled` : `“${webhook.name}” enabled`);
          await rerender('button[role="switch"]');
        } catch (err) {
          showError(card, err);
          toggle.disabled = false;
        }
      },
    });
    const card = h('section', { class: 'card', 'aria-labelledby': 'manage-title' }, h('div', { class: 'card-body' },
      h('h2', { id: 'manage-title' }, 'Manage'),
      error,
      h('div', { class: 'switch-row' },
        h('div', {},
          h('strong', { id: 'status-label' }, 'Accepting events'),
          h('p', { id: 'status-help' }, active ? 'Senders get 202 Accepted.' : 'Disabled: senders get 403 webhook_disabled.')),
        toggle),
      h('div', { class: 'switch-row' },
        h('div', {}, h('strong', {}, 'Secret'), h('p', {}, 'Replace it, or paste the sender’s new one; the old one may keep working for a while.')),
        h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'rotate', onclick: () => rotateDialog(webhook) }, 'Rotate secret')),
      h('div', { class: 'switch-row' },
        h('div', {}, h('strong', {}, 'Delete'), h('p', {}, 'Its URL answers 410 Gone forever.')),
        h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => deleteWebhookDialog(webhook) }, 'Delete'))));
    return card;
  }

  function rotateDialog(webhook) {
    const source = sourceOf(webhook.source);
    const fromSender = source.secretFrom === 'sender';
    const generate = h('input', { type: 'radio', name: 'rotate_mode', value: 'generate', checked: !fromSender });
    const own = h('input', { type: 'radio', name: 'rotate_mode', value: 'own', checked: fromSender });
    const secret = h('input', { type: 'text', name: 'secret', 'data-field': 'secret', autocomplete: 'off', spellcheck: 'false', minlength: 16, maxlength: 256, placeholder: fromSender ? source.secretPlaceholder || null : null });
    const secretField = field(fromSender ? source.secretName : 'The sender’s secret', secret, '16 to 256 visible ASCII characters.');
    const onMode = () => { secretField.hidden = !own.checked; };
    generate.addEventListener('change', onMode);
    own.addEventListener('change', onMode);
    onMode();
    const overlap = h('div', { class: 'segmented' },
      OVERLAPS.map(([seconds, text]) => h('label', {},
        h('input', { type: 'radio', name: 'previous_valid_for_seconds', value: String(seconds), checked: seconds === 0, 'data-field': seconds === 0 ? 'previous_valid_for_seconds' : null }),
        h('span', {}, text))));
    confirmDialog({
      title: 'Rotate the secret?',
      message: [
        h('fieldset', {},
          h('legend', {}, 'New secret'),
          h('div', { class: 'radio-row' },
            h('label', {}, generate, 'Generate one'),
            h('label', {}, own, 'Paste the sender’s secret'))),
        secretField,
        h('fieldset', {},
          h('legend', {}, 'Keep the old secret valid for'),
          overlap,
          h('p', { class: 'hint' }, 'While it lasts, both secrets are accepted, so senders can move to the new one without refused requests. With none, senders still using the old secret are refused (401) from now on.')),
      ],
      confirmLabel: 'Rotate secret',
      action: async (handle) => {
        const body = {};
        if (own.checked) {
          if (!secret.value.trim()) throw Object.assign(new Error(), { field: 'secret', detail: 'Paste the new secret, or choose Generate one.' });
          body.secret = secret.value.trim();
        }
        const seconds = Number(handle.body.querySelector('input[name="previous_valid_for_seconds"]:checked').value);
        // Without an overlap nothing is sent: the old secret stops at once, as it always did.
        if (seconds > 0) body.previous_valid_for_seconds = seconds;
        const rotated = await api('POST', `/api/v1/webhooks/${webhook.id}/rotate-secret`, body);
        const until = rotated.previous_secret_expires_at;
        handle.setTitle(own.checked ? 'Secret replaced' : 'New secret');
        handle.body.replaceChildren(
          ...(own.checked
            ? [h('p', { class: 'callout callout-ok', role: 'status' }, 'webhookd now checks requests with the secret you pasted.')]
            : secretOnce('secret', rotated.secret)),
          until
            ? h('p', { class: 'callout callout-info', 'data-previous-secret': '' }, 'The old secret keeps working until ', time(until), '.')
            : h('p', { class: 'hint' }, 'The old secret no longer works.'),
          h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: () => handle.dialog.close() }, 'Done')));
        const focus = handle.body.querySelector('#shown-secret') || handle.body.querySelector('.dialog-actions .btn');
        focus.focus();
        handle.dialog.addEventListener('close', async () => {
          await rerender('[data-action="rotate"]');
        });
      },
    });
  }

  function deleteWebhookDialog(webhook) {
    confirmDialog({
      title: `Delete webhook “${webhook.name}”?`,
      message: [
        h('p', {}, 'Senders will get 410 Gone at its URL from now on, and the URL is never reused. Its invocation log stays readable. This cannot be undone.'),
        h('p', { class: 'muted' }, h('code', {}, webhook.url)),
      ],
      confirmLabel: `Delete “${webhook.name}”`,
      danger: true,
      action: async (handle) => {
        await api('DELETE', `/api/v1/webhooks/${webhook.id}`);
        handle.dialog.close();
        toast(`Webhook “${webhook.name}” deleted`);
        go('#/webhooks');
      },
    });
  }

  function testCard(webhook) {
    const payload = h('textarea', { name: 'payload', 'data-field': 'payload', rows: 7, spellcheck: 'false' }, samplePayload(webhook));
    const result = h('div', { class: 'test-result', 'aria-live': 'polite' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Send test event');
    const form = h('form', { novalidate: true },
      formError(),
      field('Sample payload (JSON)', payload, sourceOf(webhook.source).id === 'generic'
        ? 'A JSON object. Its event_type field selects the event type; message becomes the task’s instruction.'
        : `A JSON object as ${sourceOf(webhook.source).name} sends it. A message string in it becomes the task’s instruction.`),
      h('div', { class: 'actions' }, submit),
      result);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      result.replaceChildren();
      let parsed;
      try {
        parsed = JSON.parse(payload.value);
      } catch (err) {
        showError(form, { problems: [{ field: 'payload', reason: `is not valid JSON: ${err.message}` }] });
        return;
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        showError(form, { problems: [{ field: 'payload', reason: 'must be a JSON object, like {"message": "…"}' }] });
        return;
      }
      submit.disabled = true;
      try {
        const outcome = await api('POST', `/api/v1/webhooks/${webhook.id}/test`, { payload: parsed });
        const kind = { accepted: 'ok', ignored: 'info', duplicate: 'info' }[outcome.status] || 'warn';
        const explain = {
          accepted: 'The event was accepted and a task was created.',
          ignored: 'The webhook does not subscribe to this event type, so no task was created.',
          rejected: 'A real sender would have been refused.',
          duplicate: 'An event with the same delivery id was accepted before, so no task was created.',
        }[outcome.status];
        // Focus moves to the result (the button was disabled meanwhile), which scrolls into view.
        const shown = h('div', { class: `callout callout-${kind} test-outcome`, role: 'status', tabindex: '-1' },
          h('div', { class: 'actions' }, badge(outcome.status), h('strong', {}, `HTTP ${outcome.http_status}`),
            outcome.code ? h('code', {}, outcome.code) : null),
          h('p', {}, explain, outcome.detail ? ` ${outcome.detail}` : ''),
          h('p', { class: 'actions' },
            outcome.task_id ? h('a', { href: `#/tasks/${outcome.task_id}` }, 'Open the task') : null,
            h('a', { href: `#/webhooks/${webhook.id}/log` }, 'See it in the log')));
        result.replaceChildren(shown);
        shown.focus({ preventScroll: true });
        shown.scrollIntoView({ block: 'nearest' });
      } catch (err) {
        showError(form, err);
      } finally {
        submit.disabled = false;
      }
    });
    return h('section', { class: 'card', 'aria-labelledby': 'test-title' }, h('div', { class: 'card-body' },
      h('h2', { id: 'test-title' }, 'Test'),
      h('p', { class: 'lead' }, 'Runs the real pipeline as an authenticated sender would; status, rate limits and event types all apply.'),
      form));
  }

  // ------------------------------------------------------------------------------------------
  // Invocation log

  const OUTCOMES = [['', 'All'], ['failed', 'Failed'], ['accepted', 'Accepted'], ['ignored', 'Ignored'], ['duplicate', 'Duplicate'], ['rejected', 'Rejected']];

  // Runs `tick` now and then every `ms` while this page is the one shown, or sooner when `tick`
  // answers a shorter delay (in ms, at least LIVE_SOONEST_MS); while the tab is hidden it
  // waits, and runs again as soon as the tab shows. `control.now()`, when given, runs it at
  // once (after a change made on the page).
  function live(gen, ms, tick, control) {
    let timer = null;
    let running = false;
    const current = () => gen === state.generation && state.key;
    const run = async () => {
      timer = null;
      if (!current() || document.hidden || running) return;
      running = true;
      let delay = ms;
      try {
        const asked = await tick();
        if (typeof asked === 'number') delay = Math.min(ms, Math.max(LIVE_SOONEST_MS, asked));
      } finally {
        running = false;
      }
      if (current() && !document.hidden && timer === null) timer = setTimeout(run, delay);
    };
    const onVisibility = () => {
      if (!current()) {
        document.removeEventListener('visibilitychange', onVisibility);
        return;
      }
      if (!document.hidden && timer === null) run();
    };
    document.addEventListener('visibilitychange', onVisibility);
    if (control) {
      control.now = () => {
        clearTimeout(timer);
        timer = null;
        return run();
      };
    }
    return run();
  }

  // A line that says when a live page last refreshed, or why it could not.
  function liveStatus() {
    const text = h('span', {}, 'Loading…');
    const el = h('p', { class: 'board-status', role: 'status', 'aria-live': 'off' }, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), text);
    return {
      el,
      ok(ms) {
        el.classList.remove('stale');
        text.textContent = `Live · updated ${new Date().toLocaleTimeString()} · refreshes every ${ms / 1000} s while shown`;
      },
      failed(error) {
        el.classList.add('stale');
        text.textContent = `Could not refresh: ${errorText(error)} Retrying…`;
      },
    };
  }

  // The log's filters, as the URL holds them (`#/webhooks/{id}/log?outcome=…&q=…`) so that a
  // filtered log has a link. `since` and `until` are days in the browser's time zone, `until`
  // included.
  const LOG_FILTERS = ['outcome', 'q', 'event_type', 'source_ip', 'since', 'until', 'test'];
  const TEST_CHOICES = [['', 'All requests'], ['true', 'Only test events'], ['false', 'No test events']];
  const DAY = /^\d{4}-\d\d-\d\d$/;

  function logFilters(query) {
    const filters = {};
    for (const name of LOG_FILTERS) {
      const value = (query.get(name) || '').trim();
      if (value) filters[name] = value;
    }
    if (filters.outcome && !OUTCOMES.some(([value]) => value === filters.outcome)) delete filters.outcome;
    if (filters.test && !TEST_CHOICES.some(([value]) => value === filters.test)) delete filters.test;
    for (const name of ['since', 'until']) {
      if (filters[name] && !DAY.test(filters[name])) delete filters[name];
    }
    return filters;
  }

  function logHash(webhookId, filters) {
    const params = new URLSearchParams();
    for (const name of LOG_FILTERS) if (filters[name]) params.set(name, filters[name]);
    const search = params.toString();
    return `#/webhooks/${webhookId}/log${search ? `?${search}` : ''}`;
  }

  // The start of `day` (YYYY-MM-DD) plus `days`, local time, as RFC 3339.
  function dayStart(day, days) {
    const [year, month, date] = day.split('-').map(Number);
    return new Date(year, month - 1, date + days).toISOString();
  }

  // The filters as the API takes them: the "until" day is included whole.
  function logQuery(filters) {
    const params = new URLSearchParams();
    for (const name of LOG_FILTERS) {
      const value = filters[name];
      if (!value) continue;
      if (name === 'since') params.set(name, dayStart(value, 0));
      else if (name === 'until') params.set(name, dayStart(value, 1));
      else params.set(name, value);
    }
    return params.toString();
  }

  // The filters other than the outcome, in words: "words “rollback”, event type deploy.finished".
  function filterWords(filters) {
    const parts = [];
    if (filters.q) parts.push(`words “${filters.q}”`);
    if (filters.event_type) parts.push(`event type ${filters.event_type}`);
    if (filters.source_ip) parts.push(`source IP ${filters.source_ip}`);
    if (filters.since && filters.until) parts.push(`received ${filters.since} to ${filters.until}`);
    else if (filters.since) parts.push(`received since ${filters.since}`);
    else if (filters.until) parts.push(`received until ${filters.until}`);
    if (filters.test) parts.push(filters.test === 'true' ? 'test events only' : 'no test events');
    return parts.join(', ');
  }

  // The search box and the filters of the log; `apply(filters, focus)` goes to the log with
  // the filters given, and focuses `focus` there.
  function logFilterForm(webhookId, filters, apply) {
    const search = h('input', { type: 'search', id: 'log-q', name: 'q', 'data-field': 'q', value: filters.q || '', autocomplete: 'off', spellcheck: 'false', placeholder: 'Words in the payload, e.g. rollback api' });
    const eventType = h('input', { type: 'text', id: 'log-event-type', name: 'event_type', 'data-field': 'event_type', value: filters.event_type || '', autocomplete: 'off', spellcheck: 'false', placeholder: 'deploy.finished' });
    const sourceIp = h('input', { type: 'text', id: 'log-source-ip', name: 'source_ip', 'data-field': 'source_ip', value: filters.source_ip || '', autocomplete: 'off', spellcheck: 'false', placeholder: '203.0.113.7' });
    const since = h('input', { type: 'date', id: 'log-since', name: 'since', 'data-field': 'since', value: filters.since || '' });
    const until = h('input', { type: 'date', id: 'log-until', name: 'until', 'data-field': 'until', value: filters.until || '' });
    const test = h('select', { id: 'log-test', name: 'test', 'data-field': 'test' },
      TEST_CHOICES.map(([value, text]) => h('option', { value, selected: value === (filters.test || '') }, text)));
    const active = LOG_FILTERS.some((name) => name !== 'outcome' && filters[name]);
    // The filters besides the words fold away until one is set.
    const set = ['event_type', 'source_ip', 'since', 'until', 'test'].filter((name) => filters[name]).length;
    const form = h('form', { class: 'card log-filters', role: 'search', 'aria-label': 'Search and filter the log', novalidate: true },
      h('div', { class: 'card-body' },
        formError(),
        h('div', { class: 'search-row' },
          field('Search', search, 'Whole words of the payload, in any order and any case; every word must be there.'),
          h('button', { type: 'submit', class: 'btn btn-primary' }, icon('search'), 'Search')),
        h('details', { class: 'disclosure more-filters', open: set > 0 },
          h('summary', {}, 'More filters', set ? h('span', { class: 'muted' }, ` · ${set} set`) : null),
          h('div', { class: 'disclosure-body filter-grid' },
            field('Event type', eventType),
            field('Source IP', sourceIp),
            field('Since', since),
            field('Until', until, 'That day included.'),
            field('Test events', test))),
        active ? h('p', { class: 'actions' }, h('a', { href: logHash(webhookId, { outcome: filters.outcome }), onclick: (event) => {
          event.preventDefault();
          apply({ outcome: filters.outcome }, '#log-q');
        } }, 'Clear search and filters')) : null));
    // Choosing among test events applies at once; the rest on Search (or Enter).
    test.addEventListener('change', () => form.requestSubmit());
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const next = {
        outcome: filters.outcome,
        q: search.value.trim(),
        event_type: eventType.value.trim(),
        source_ip: sourceIp.value.trim(),
        since: since.value,
        until: until.value,
        test: test.value,
      };
      const ok = checkForm(form, [
        ['q', next.q && !/[\p{L}\p{N}]/u.test(next.q) ? 'needs a word: letters or digits' : null],
        ['until', next.since && next.until && next.until < next.since ? 'must be the same day as Since or later' : null],
      ]);
      if (!ok) return;
      apply(next, `#${document.activeElement && form.contains(document.activeElement) && document.activeElement.id ? document.activeElement.id : 'log-q'}`);
    });
    return form;
  }

  async function logPage(gen, id, query) {
    const filters = logFilters(query);
    const outcome = filters.outcome || '';
    const search = logQuery(filters);
    const listPath = `/api/v1/webhooks/${encodeURIComponent(id)}/invocations?limit=${PAGE_SIZE}${search ? `&${search}` : ''}`;
    const [webhook, first] = await Promise.all([
      api('GET', `/api/v1/webhooks/${encodeURIComponent(id)}`),
      // A filter the API refuses is shown next to its field, on the page.
      api('GET', listPath).catch((err) => {
        if (err.status === 422 && LOG_FILTERS.includes(err.field)) return { refused: err, items: [], next_cursor: null };
        throw err;
      }),
    ]);
    if (gen !== state.generation) return;
    const apply = (next, focus) => {
      state.focusAfter = focus;
      go(logHash(webhook.id, next));
    };
    const group = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Outcome' },
      OUTCOMES.map(([value, text]) => h('label', {},
        h('input', { type: 'radio', name: 'outcome', value, checked: value === outcome, onchange: () => {
          apply({ ...filters, outcome: value }, 'input[name="outcome"]:checked');
        } }),
        h('span', {}, text))));
    const form = logFilterForm(webhook.id, filters, apply);
    const list = h('ul', { class: 'log', 'aria-label': 'Invocations, newest first' });
    const rows = new Map();
    const row = (item) => {
      const made = invocationItem(item);
      rows.set(item.id, made);
      return made.li;
    };
    const addItems = (items) => { for (const item of items) list.append(row(item)); };
    const { foot, setMore } = moreFoot(listPath, (items) => addItems(items.filter((item) => !rows.has(item.id))));
    const deleted = webhook.status === 'deleted';
    const words = filterWords(filters);
    let empty;
    if (words) {
      const what = outcome ? `${label(outcome).toLowerCase()} invocations` : 'invocations';
      empty = emptyState('search', 'No results', `No ${what} match ${words}.`,
        h('a', { class: 'btn', href: logHash(webhook.id, { outcome }) }, 'Clear search and filters'));
    } else if (outcome) {
      empty = emptyState('inbox', 'Nothing here', `No ${label(outcome).toLowerCase()} invocations. Choose “All” to see every request.`);
    } else if (deleted) {
      empty = emptyState('inbox', 'No invocations yet', 'This webhook is deleted, and nothing it logged is left.');
    } else {
      empty = emptyState('inbox', 'No invocations yet', 'Every request to this webhook’s URL is logged here, newest first, as it arrives. Send an event to its URL, or use Test on the Overview tab.',
        h('a', { class: 'btn', href: `#/webhooks/${webhook.id}` }, 'Go to Overview'));
    }
    const body = h('div', { class: 'card' }, empty, list, foot);
    const status = liveStatus();
    const toolbar = h('div', { class: 'toolbar' }, group, status.el);
    const showEmpty = () => {
      empty.hidden = rows.size > 0;
      list.hidden = rows.size === 0;
    };
    addItems(first.items);
    setMore(first.next_cursor);
    showEmpty();
    const note = deleted
      ? h('p', { class: 'callout callout-warn', 'data-deleted': '' }, 'This webhook is deleted: its URL answers 410 Gone, so nothing new arrives here. What it logged stays readable.')
      : null;
    page(webhookHead(webhook), webhookTabs(webhook, 'log'), note, form, toolbar, body);
    if (first.refused) {
      empty.hidden = true;
      status.el.hidden = true;
      showError(form, first.refused);
      return;
    }

    // Live: new requests come in on top, and the rows shown follow their delivery.
    let fresh = true;
    await live(gen, LIVE_POLL_MS, async () => {
      try {
        const latest = fresh ? first : await api('GET', listPath);
        fresh = false;
        if (gen !== state.generation) return;
        const known = latest.items.findIndex((item) => rows.has(item.id));
        if (known === -1 && latest.items.length > 0) {
          // More arrived than one page holds: start over from the newest.
          rows.clear();
          list.replaceChildren();
          addItems(latest.items);
          setMore(latest.next_cursor);
        } else {
          const arrived = latest.items.slice(0, Math.max(known, 0));
          for (const item of arrived.reverse()) list.prepend(row(item));
          for (const item of latest.items.slice(Math.max(known, 0))) {
            const shown = rows.get(item.id);
            if (shown) shown.update(item);
          }
        }
        showEmpty();
        status.ok(LIVE_POLL_MS);
      } catch (err) {
        if (gen === state.generation) status.failed(err);
      }
    });
  }

  function shortId(id) {
    return `${id.slice(0, 8)}…`;
  }

  function duplicateLink(id) {
    return h('a', { href: `#/invocations/${id}`, class: 'duplicate-of', 'aria-label': `Duplicate of invocation ${id}` }, `duplicate of ${shortId(id)}`);
  }

  // Why the webhook's template did not make the task's instruction.
  function fallbackNote(text) {
    return h('p', { class: 'callout callout-warn fallback', role: 'note' },
      h('strong', {}, 'The instruction template did not make the instruction: '), text,
      '. The task took the payload’s message or the sender’s default instead.');
  }

  // What the sender was answered, and what it led to.
  function answerProps(item) {
    return h('dl', { class: 'props' },
      h('dt', {}, 'Answered'), h('dd', {}, `HTTP ${item.http_status}`, item.error_code ? [' · ', h('code', {}, item.error_code)] : null),
      item.delivery_id ? [h('dt', {}, 'Delivery id'), h('dd', {}, h('code', {}, item.delivery_id))] : null,
      item.duplicate_of ? [h('dt', {}, 'Duplicate of'), h('dd', {}, h('a', { href: `#/invocations/${item.duplicate_of}` }, 'The invocation first accepted with this delivery id'))] : null,
      h('dt', {}, 'Source IP'), h('dd', {}, item.source_ip || h('span', { class: 'muted' }, 'unknown')),
      h('dt', {}, 'Task'), h('dd', {}, item.task_id
        ? [h('a', { href: `#/tasks/${item.task_id}` }, 'Open the task'), item.delivery_status ? [' · ', deliveryLabel(item.delivery_status)] : null]
        : h('span', { class: 'muted' }, 'None')));
  }

  function targetProps(item) {
    const response = item.target_response;
    let waiting = 'No delivery: no task was created.';
    if (item.task_id) waiting = 'No delivery attempt yet: the task waits on the board or for its next attempt.';
    return response
      ? h('dl', { class: 'props' },
        h('dt', {}, 'Status'), h('dd', {}, response.status_code ? `HTTP ${response.status_code}` : h('span', { class: 'muted' }, 'No answer')),
        h('dt', {}, 'Latency'), h('dd', {}, `${response.latency_ms} ms`),
        h('dt', {}, 'At'), h('dd', {}, time(response.at)),
        response.error ? [h('dt', {}, 'Error'), h('dd', { class: 'field-error' }, response.error)] : null,
        response.body_excerpt ? [h('dt', {}, 'Body'), h('dd', {}, h('pre', { class: 'json' }, response.body_excerpt))] : null)
      : h('p', { class: 'muted' }, waiting);
  }

  function deliveryLabel(status) {
    return DELIVERY_LABELS[status] || label(status);
  }

  // The outcome of a request, coloured by where its delivery stands: an accepted request is
  // green only once delivered, and red when its delivery failed.
  function outcomeBadges(item) {
    if (item.outcome !== 'accepted' || !item.delivery_status) return [badge(item.outcome)];
    const tone = { queued: 'pending', retrying: 'retrying', delivered: 'accepted', failed: 'failed' }[item.delivery_status] || 'pending';
    return [
      h('span', { class: `badge badge-${tone}`, 'data-outcome': 'accepted' }, label('accepted')),
      h('span', { class: `badge plain delivery delivery-${item.delivery_status}`, 'data-delivery': item.delivery_status }, deliveryLabel(item.delivery_status)),
    ];
  }

  // Why a log entry has no payload to show.
  function noPayload(item) {
    if (REFUSED_UNREAD.includes(item.http_status)) {
      return h('p', { class: 'muted' }, 'Body not read: the request was refused before its body was read.');
    }
    return h('p', { class: 'muted' }, 'No JSON object was received.');
  }

  function summaryParts(item) {
    return [
      h('span', { class: 'when' }, time(item.received_at)),
      h('span', { class: 'outcome' }, outcomeBadges(item)),
      h('span', { class: 'mono status' }, `HTTP ${item.http_status}`),
      h('span', { class: 'event' },
        // A duplicate is logged without the payload it repeats: its type is the original's.
        item.event_type ? h('code', {}, item.event_type) : (item.duplicate_of ? null : h('span', { class: 'muted' }, 'no event type')),
        item.error_code ? [' ', h('code', { class: 'muted' }, item.error_code)] : null,
        item.duplicate_of ? [' ', duplicateLink(item.duplicate_of)] : null,
        item.message_preview ? [' ', h('span', { class: 'preview' }, item.message_preview)] : null),
      h('span', { class: 'actions source' },
        item.test ? h('span', { class: 'tag-test' }, 'test') : null,
        item.repeat_count > 1 ? h('span', { class: 'badge plain', title: 'Identical requests coalesced into this entry' }, `×${item.repeat_count}`) : null,
        h('span', { class: 'muted mono' }, item.source_ip || ''),
        h('a', { class: 'open-request', href: `#/invocations/${item.id}`, 'aria-label': 'Open the request', title: 'Open the request: headers, body, answer and deliveries' }, icon('open'))),
    ];
  }

  // What changes in a log entry after it is written.
  function rowSignature(item) {
    return JSON.stringify([item.delivery_status, item.target_response && item.target_response.at, item.repeat_count, item.task_id]);
  }

  // One entry of the log: a summary that opens on the whole record. `update` shows a newer
  // state of the same entry.
  function invocationItem(item) {
    const summary = h('summary', {}, summaryParts(item));
    const fallback = h('div', {}, item.instruction_fallback ? fallbackNote(item.instruction_fallback) : null);
    // Lists carry an excerpt of the payload; the whole of it is read when the entry is opened.
    const payload = h('div', {}, h('h3', {}, 'Payload'), item.payload_excerpt !== null
      ? h('pre', { class: 'json' }, item.payload_excerpt)
      : noPayload(item));
    const answer = h('div', {}, h('h3', {}, 'Answer to the sender'), answerProps(item));
    const delivery = h('div', {}, h('h3', {}, 'Target response'), targetProps(item));
    let loaded = false;
    const details = h('details', { ontoggle: async () => {
      if (!details.open || loaded) return;
      loaded = true;
      try {
        const whole = await api('GET', `/api/v1/invocations/${encodeURIComponent(item.id)}`);
        if (item.payload_excerpt !== null) {
          payload.replaceChildren(h('h3', {}, 'Payload'), whole.payload ? prettyJson(whole.payload) : noPayload(whole));
        }
        if (whole.instruction_fallback) fallback.replaceChildren(fallbackNote(whole.instruction_fallback));
      } catch (err) {
        loaded = false;
        toast(errorText(err));
      }
    } }, summary,
    h('div', { class: 'expanded' },
      payload,
      h('div', { class: 'stack' }, fallback, answer, delivery,
        h('p', {}, h('a', { href: `#/invocations/${item.id}` }, 'Open the whole request: headers, body and every delivery attempt')))));
    let signature = rowSignature(item);
    return {
      li: h('li', { 'data-invocation': item.id }, details),
      update(next) {
        const changed = rowSignature(next);
        if (changed === signature) return;
        signature = changed;
        summary.replaceChildren(...summaryParts(next));
        answer.replaceChildren(h('h3', {}, 'Answer to the sender'), answerProps(next));
        delivery.replaceChildren(h('h3', {}, 'Target response'), targetProps(next));
      },
    };
  }

  // ------------------------------------------------------------------------------------------
  // A request's page: the whole record of one invocation, with its delivery timeline

  // Where a task stands in delivery, as the log's `delivery_status` says it.
  function deliveryOf(task) {
    if (task.status === 'queued') return task.last_error ? 'retrying' : 'queued';
    return task.status === 'failed' ? 'failed' : 'delivered';
  }

  // The JSON text of member `name` of the object whose JSON text is `text`, exactly as written:
  // a payload as its sender sent it, which JSON.parse would reformat. Null when it is absent.
  function rawMember(text, name) {
    const end = text.length;
    const stringEnd = (from) => {
      let i = from + 1;
      while (i < end && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      return i + 1;
    };
    const valueEnd = (from) => {
      let depth = 0;
      let i = from;
      while (i < end) {
        const c = text[i];
        if (c === '"') {
          i = stringEnd(i);
          if (depth === 0) return i;
          continue;
        }
        if (c === '{' || c === '[') depth += 1;
        else if (c === '}' || c === ']') {
          depth -= 1;
          if (depth <= 0) return depth === 0 ? i + 1 : i;
        } else if (c === ',' && depth === 0) return i;
        i += 1;
      }
      return i;
    };
    const skip = (i, chars) => {
      let at = i;
      while (at < end && chars.includes(text[at])) at += 1;
      return at;
    };
    let i = text.indexOf('{') + 1;
    while (i > 0 && i < end) {
      i = skip(i, ' \t\r\n,');
      if (text[i] !== '"') return null;
      const keyEnd = stringEnd(i);
      const key = JSON.parse(text.slice(i, keyEnd));
      i = skip(keyEnd, ' \t\r\n:');
      const valueStop = valueEnd(i);
      if (key === name) return text.slice(i, valueStop).trim();
      i = valueStop;
    }
    return null;
  }

  // Why webhookd cannot send a request again, said before the replay API would refuse it
  // (409 `not_replayable`, 410 `webhook_deleted`); null when it can, or only the API knows.
  function replayBlocker(record, webhook) {
    if (webhook && webhook.status === 'deleted') {
      return 'Its webhook is deleted: the URL answers 410 Gone, so nothing is sent to it again.';
    }
    const request = record.request;
    if (record.payload !== null || !request) return null;
    if (request.body_kept === 'whole' && request.body !== null) return null;
    return request.body_kept === 'not_read'
      ? 'Not replayable: the request was refused before its body was read, so there is no body to send again.'
      : 'Not replayable: only an excerpt of its body was kept, so it cannot be sent again as it came.';
  }

  function replayError(error) {
    if (error.code === 'not_replayable') return `Not replayable. ${sentence(error.detail || 'The body was not kept whole')}`;
    if (error.code === 'webhook_deleted') return `Its webhook is deleted. ${sentence(error.detail || 'The URL answers 410 Gone')}`;
    return errorText(error);
  }

  // The request's headers as received; credentials show as redacted, never their value.
  function headerList(request) {
    if (!request) {
      return h('p', { class: 'muted' }, 'Not recorded: this request was logged before webhookd kept request headers.');
    }
    const omitted = request.headers_omitted;
    return [
      request.headers.length
        ? h('dl', { class: 'headers' }, request.headers.map(({ name, value }) => [
          h('dt', {}, name),
          h('dd', {}, value === REDACTED
            ? h('span', { class: 'redacted', 'data-redacted': '', title: 'A credential: webhookd never stores its value' }, icon('lock'), 'Redacted')
            : value),
        ]))
        : h('p', { class: 'muted' }, 'No headers.'),
      omitted ? h('p', { class: 'hint' }, `${omitted} more header${omitted === 1 ? ' was' : 's were'} not kept: at most 64 headers and 8 KiB of them are.`) : null,
    ];
  }

  // The body as the sender sent it and, when it is JSON, pretty-printed; Copy copies the view
  // shown. `text` is the record's JSON text, which holds the payload as it was received.
  function bodyView(record, text) {
    const request = record.request;
    if (request && request.body_kept === 'not_read') {
      return h('p', { class: 'callout callout-info', 'data-body': 'not_read' },
        h('strong', {}, 'Body not read: '), 'the request was refused before its body was read, so there is none to show.');
    }
    let raw = null;
    if (record.payload !== null) raw = rawMember(text, 'payload') || JSON.stringify(record.payload);
    else if (request && request.body !== null) raw = request.body;
    if (raw === null) return noPayload(record);
    let pretty = null;
    try {
      pretty = JSON.stringify(JSON.parse(raw), null, 2);
    } catch {
      pretty = null;
    }
    const excerpt = request && request.body_kept === 'excerpt';
    const pre = h('pre', { class: 'json body', tabindex: '0', role: 'region', 'aria-label': 'Request body' });
    let mode = pretty === null ? 'raw' : 'pretty';
    const show = () => { pre.textContent = mode === 'pretty' ? pretty : raw; };
    show();
    const views = pretty === null || pretty === raw ? null
      : h('div', { class: 'segmented segmented-small', role: 'radiogroup', 'aria-label': 'Body view' },
        [['pretty', 'Pretty'], ['raw', 'Raw']].map(([value, name]) => h('label', {},
          h('input', { type: 'radio', name: 'body-view', value, checked: value === mode, onchange: () => { mode = value; show(); } }),
          h('span', {}, name))));
    let note = null;
    if (excerpt) {
      note = h('p', { class: 'callout callout-warn', 'data-body': 'excerpt' }, h('strong', {}, 'Excerpt: '),
        'only the first 4 KiB of this body were kept (bytes that are not UTF-8 replaced), so it is cut short here and cannot be replayed.');
    } else if (pretty === null) {
      note = h('p', { class: 'hint', 'data-body': 'not_json' }, 'Not JSON: shown as it came.');
    }
    return [
      note,
      h('div', { class: 'body-bar' }, views, copyButton(() => pre.textContent, 'body')),
      pre,
    ];
  }

  // What webhookd answered the sender, and what the answer meant.
  function answerSent(record) {
    const problem = record.problem;
    const code = problem ? problem.code : record.error_code;
    const subscriptions = record.subscriptions;
    let meaning = null;
    if (record.outcome === 'accepted') meaning = 'Accepted: the event became a task for the webhook’s target.';
    else if (record.outcome === 'duplicate') meaning = 'A duplicate: a request with the same delivery id was accepted before, so no second task was made.';
    else if (record.outcome === 'ignored' && subscriptions) {
      meaning = [record.event_type ? ['Ignored: the event type ', h('code', {}, record.event_type)] : 'Ignored: the event had no type, which',
        ' matches none of the webhook’s event types, so no task was made.'];
    } else if (record.outcome === 'ignored') meaning = 'Ignored: webhookd answered it and made no task.';
    return h('dl', { class: 'props', 'data-answer': '' },
      h('dt', {}, 'Status'), h('dd', { 'data-prop': 'status' }, h('strong', {}, `HTTP ${problem ? problem.status : record.http_status}`), code ? [' · ', h('code', {}, code)] : null),
      problem ? [h('dt', {}, 'Title'), h('dd', { 'data-prop': 'title' }, problem.title)] : null,
      problem ? [h('dt', {}, 'Detail'), h('dd', { 'data-prop': 'detail' }, problem.detail)] : null,
      meaning ? [h('dt', {}, 'Meaning'), h('dd', {}, meaning)] : null,
      subscriptions ? [h('dt', {}, 'Matched against'), h('dd', { 'data-prop': 'subscriptions' }, subscriptions.length
        ? subscriptions.map((t) => h('span', { class: 'chip' }, t))
        : h('span', { class: 'muted' }, 'No event types'))] : null,
      record.delivery_id ? [h('dt', {}, 'Delivery id'), h('dd', {}, h('code', {}, record.delivery_id))] : null,
      record.duplicate_of ? [h('dt', {}, 'Duplicate of'), h('dd', {}, duplicateLink(record.duplicate_of))] : null,
      record.replay_of ? [h('dt', {}, 'Replay of'), h('dd', {}, h('a', { href: `#/invocations/${record.replay_of}`, 'data-replay-of': '' }, `The request ${shortId(record.replay_of)} it sent again`))] : null,
      record.repeat_count > 1 ? [h('dt', {}, 'Repeats'), h('dd', {}, `${record.repeat_count} identical requests, refused in the same second; this is the first one’s record`)] : null,
      h('dt', {}, 'Source IP'), h('dd', {}, record.source_ip || h('span', { class: 'muted' }, 'unknown')));
  }

  // The target's answer to an attempt: pretty when it is JSON.
  function agentAnswer(text) {
    try {
      return prettyJson(JSON.parse(text));
    } catch {
      return h('pre', { class: 'json' }, text);
    }
  }

  function attemptStep(attempt) {
    const answer = attempt.status_code ? `HTTP ${attempt.status_code}` : 'No answer';
    return h('li', { class: `step ${attempt.succeeded ? 'step-ok' : 'step-failed'}`, 'data-attempt': attempt.number },
      h('div', { class: 'step-head' },
        h('h3', {}, `Attempt ${attempt.number}`),
        h('span', { class: `badge ${attempt.succeeded ? 'badge-accepted' : 'badge-failed'}` }, answer),
        h('span', { class: 'muted' }, `${attempt.latency_ms.toLocaleString()} ms`),
        time(attempt.at)),
      attempt.error ? h('p', { class: 'field-error' }, sentence(attempt.error)) : null,
      attempt.body_excerpt ? [h('p', { class: 'step-label' }, 'The target answered'), agentAnswer(attempt.body_excerpt)] : null);
  }

  // Where the task stands now: what the API says, its status and when it last changed.
  function statusStep(task, attempts) {
    let text = null;
    if (task.status === 'queued' && attempts.length === 0) text = 'No delivery attempt yet: the task waits on the board, or for its first attempt.';
    else if (task.status === 'queued') text = ['Waiting for the next attempt', task.next_attempt_at ? [', due ', time(task.next_attempt_at)] : null, '.'];
    else if (task.status === 'delivered') text = 'The target acknowledged it; its agent moves it on as it works.';
    else if (task.status === 'in_progress') text = 'Its agent is working on it.';
    else if (task.status === 'completed') text = 'Its agent completed it.';
    else if (task.status === 'failed') text = 'Delivery gave up, or its agent reported a failure. Retry puts it back in the queue.';
    const tone = { completed: 'ok', delivered: 'ok', in_progress: 'ok', failed: 'failed' }[task.status] || 'pending';
    return h('li', { class: `step step-${tone}`, 'data-step': 'status' },
      h('div', { class: 'step-head' }, h('h3', {}, 'Task now'), badge(task.status), h('span', { class: 'muted' }, 'updated ', time(task.updated_at))),
      text ? h('p', {}, text) : null,
      task.status === 'failed' && task.last_error ? h('p', { class: 'field-error' }, sentence(task.last_error)) : null);
  }

  // Request received → task created → each delivery attempt → where the task stands.
  function timeline(record) {
    const task = record.task;
    const steps = [h('li', { class: 'step step-ok', 'data-step': 'received' },
      h('div', { class: 'step-head' }, h('h3', {}, 'Request received'), time(record.received_at)),
      h('p', {}, `Answered HTTP ${record.http_status}`, record.error_code ? [' · ', h('code', {}, record.error_code)] : null))];
    if (task) {
      steps.push(h('li', { class: 'step step-ok', 'data-step': 'task' },
        h('div', { class: 'step-head' }, h('h3', {}, 'Task created'), time(task.created_at)),
        h('p', {}, h('a', { href: `#/tasks/${task.id}` }, 'Open the task'), task.instruction ? [' · ', h('span', { class: 'muted' }, task.instruction)] : null)));
      for (const attempt of record.attempts) steps.push(attemptStep(attempt));
      steps.push(statusStep(task, record.attempts));
    } else {
      const why = {
        rejected: 'Refused, so no task was made.',
        ignored: 'Ignored, so no task was made.',
        duplicate: 'A duplicate: the first request’s task stands for it.',
      }[record.outcome] || 'No task was made.';
      steps.push(h('li', { class: 'step step-pending', 'data-step': 'end' }, h('div', { class: 'step-head' }, h('h3', {}, 'No task')), h('p', {}, why)));
    }
    return h('ol', { class: 'timeline' }, steps);
  }

  // How soon a page showing `task` should refresh: a moment after its next delivery attempt is
  // due. A queued task overdue for long waits on a board, not for an attempt: undefined then.
  function attemptDueIn(task) {
    if (!task || task.status !== 'queued' || !task.next_attempt_at) return undefined;
    const due = new Date(task.next_attempt_at).getTime() - Date.now();
    return due < -30000 ? undefined : due + 500;
  }

  function recordSignature(record) {
    const task = record.task;
    return JSON.stringify([record.attempts.length, task && [task.status, task.updated_at, task.next_attempt_at]]);
  }

  // A request's page: headers, body, the answer sent, and its delivery as a timeline; Replay
  // and Retry for an admin. It refreshes while it shows.
  async function invocationPage(gen, id) {
    const path = `/api/v1/invocations/${encodeURIComponent(id)}`;
    const first = await apiAnswer('GET', path);
    const record = first.data;
    const webhook = await api('GET', `/api/v1/webhooks/${record.webhook_id}`).catch(() => null);
    if (gen !== state.generation) return;
    const crumbs = webhook
      ? [webhooksLink(webhook), ' / ', h('a', { href: `#/webhooks/${webhook.id}` }, webhook.name), ' / ',
        h('a', { href: `#/webhooks/${webhook.id}/log` }, 'Invocation log'), ' / ', 'Request']
      : [h('a', { href: '#/webhooks' }, 'Webhooks'), ' / ', 'Request'];
    const titleRow = h('div', { class: 'title-row' });
    const actions = h('div', { class: 'actions' });
    const notice = h('div', { 'aria-live': 'polite' });
    const timelineBody = h('div', {});
    const status = liveStatus();
    const liveControl = {};
    const blocker = replayBlocker(record, webhook);

    const replay = async (button) => {
      notice.replaceChildren();
      button.disabled = true;
      try {
        const out = await api('POST', `${path}/replay`);
        if (out.invocation_id) {
          toast(`Replayed: ${label(out.status).toLowerCase()}, HTTP ${out.http_status}`);
          go(`#/invocations/${out.invocation_id}`);
          return;
        }
        // A refused replay is logged like any refusal, coalesced: say what it was answered.
        notice.replaceChildren(h('div', { class: 'callout callout-warn', role: 'alert', 'data-replay': 'rejected' },
          h('strong', {}, `The replay was refused: HTTP ${out.http_status}`), out.code ? [' · ', h('code', {}, out.code)] : null,
          out.detail ? `. ${sentence(out.detail)}` : '.', ' ',
          webhook ? h('a', { href: logHash(webhook.id, { outcome: 'rejected' }) }, 'See it in the log') : null));
      } catch (err) {
        notice.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, replayError(err)));
      }
      button.disabled = false;
    };
    const retry = async (button) => {
      notice.replaceChildren();
      button.disabled = true;
      try {
        await api('POST', `/api/v1/tasks/${record.task.id}/retry`);
        toast('The task is queued again, due now');
        await liveControl.now();
      } catch (err) {
        notice.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, errorText(err)));
      }
      button.disabled = false;
    };

    const render = (current) => {
      if (current.task && !current.delivery_status) current.delivery_status = deliveryOf(current.task);
      titleRow.replaceChildren();
      append(titleRow, [h('h1', { tabindex: '-1' }, current.event_type || 'Request'), outcomeBadges(current),
        current.test ? h('span', { class: 'tag-test' }, 'test') : null,
        current.replay_of ? h('span', { class: 'badge plain' }, 'Replay') : null]);
      const focused = actions.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
      actions.replaceChildren();
      if (canWrite()) {
        if (current.task && current.task.status === 'failed') {
          const again = h('button', { type: 'button', class: 'btn', 'data-focus-key': 'retry', onclick: () => retry(again) }, icon('retry'), 'Retry delivery');
          actions.append(again);
        }
        const button = h('button', { type: 'button', class: 'btn btn-primary', 'data-focus-key': 'replay', disabled: Boolean(blocker), 'aria-describedby': blocker ? 'replay-blocked' : null, onclick: () => replay(button) }, icon('replay'), 'Replay');
        actions.append(button);
      }
      if (focused) {
        // Retry goes once the task is queued again: the focus goes to the heading.
        const again = actions.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
        (again || titleRow.querySelector('h1')).focus();
      }
      timelineBody.replaceChildren(timeline(current));
    };
    let shown = recordSignature(record);
    let { task } = record;
    const refresh = async () => {
      const latest = await api('GET', path);
      if (gen !== state.generation) return;
      if (recordSignature(latest) !== shown) {
        shown = recordSignature(latest);
        render(latest);
      }
      task = latest.task;
    };

    render(record);
    page(pageHead(titleRow,
      h('span', {}, 'Received ', time(record.received_at), record.source_ip ? ` from ${record.source_ip}` : '',
        record.replay_of ? [' · a replay of ', h('a', { href: `#/invocations/${record.replay_of}` }, shortId(record.replay_of))] : null),
      actions, crumbs),
    canWrite() && blocker ? h('p', { class: 'callout callout-info', id: 'replay-blocked' }, blocker) : null,
    notice,
    record.task ? h('div', { class: 'toolbar' }, status.el) : null,
    h('div', { class: 'grid-2 request-grid' },
      h('div', { class: 'stack' },
        h('section', { class: 'card', 'aria-labelledby': 'headers-title' }, h('div', { class: 'card-body' },
          h('h2', { id: 'headers-title' }, 'Request headers'), headerList(record.request))),
        h('section', { class: 'card', 'aria-labelledby': 'body-title' }, h('div', { class: 'card-body' },
          h('h2', { id: 'body-title' }, 'Body'), bodyView(record, first.text)))),
      h('div', { class: 'stack' },
        record.instruction_fallback ? fallbackNote(record.instruction_fallback) : null,
        h('section', { class: 'card', 'aria-labelledby': 'answer-title' }, h('div', { class: 'card-body' },
          h('h2', { id: 'answer-title' }, 'Answer sent'), answerSent(record))),
        h('section', { class: 'card timeline-card', 'aria-labelledby': 'timeline-title' }, h('div', { class: 'card-body' },
          h('h2', { id: 'timeline-title' }, 'Timeline'), timelineBody)))));

    // Without a task nothing of the record changes any more.
    if (!record.task) return;
    let fresh = true;
    await live(gen, LIVE_POLL_MS, async () => {
      try {
        if (!fresh) await refresh();
        fresh = false;
        if (gen === state.generation) status.ok(LIVE_POLL_MS);
      } catch (err) {
        if (gen === state.generation) status.failed(err);
      }
      return attemptDueIn(task);
    }, liveControl);
  }

  // ------------------------------------------------------------------------------------------
  // Targets

  async function targetsPage(gen) {
    const list = await api('GET', '/api/v1/targets?limit=500');
    if (gen !== state.generation) return;
    const create = canWrite()
      ? h('button', { type: 'button', class: 'btn btn-primary', onclick: createTargetDialog }, icon('plus'), 'Create Target')
      : null;
    const head = pageHead('Targets', 'The agents and teams that receive tasks. With an endpoint, tasks are pushed to it; without one, they wait on the board.', create);
    if (list.items.length === 0) {
      page(head, readOnlyNote(), h('div', { class: 'card' }, emptyState('target', 'No targets yet',
        canWrite()
          ? 'Create a target for each agent or team that should receive tasks. Webhooks then point at a target.'
          : 'An admin creates targets; they will show up here.',
        canWrite() ? h('button', { type: 'button', class: 'btn btn-primary', onclick: createTargetDialog }, icon('plus'), 'Create Target') : null)));
      return;
    }
    const rows = list.items.map((t) => h('tr', {},
      h('td', { class: 'primary', 'data-label': 'Name' }, h('span', { class: 'name-link' }, t.name)),
      h('td', { 'data-label': 'Kind' }, h('span', { class: 'badge plain' }, t.kind === 'agent' ? 'Agent' : 'Team')),
      h('td', { 'data-label': 'Endpoint' }, t.endpoint_url ? h('code', {}, t.endpoint_url) : h('span', { class: 'muted' }, 'None: tasks wait on the board')),
      h('td', { 'data-label': 'Created', class: 'nowrap' }, time(t.created_at)),
      h('td', { 'data-label': 'Actions' }, h('div', { class: 'actions' },
        h('a', { class: 'btn btn-small', href: `#/board/${t.id}`, 'aria-label': `Task board of ${t.name}` }, 'Board'),
        canWrite() ? h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Edit ${t.name}`, 'data-edit': t.id, onclick: () => editTargetDialog(t) }, icon('pencil'), 'Edit') : null,
        canWrite() ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', 'aria-label': `Delete ${t.name}`, onclick: () => deleteTargetDialog(t) }, 'Delete') : null))));
    page(head, readOnlyNote(), h('div', { class: 'card' }, h('div', { class: 'table-wrap' }, h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['Name', 'Kind', 'Endpoint', 'Created', h('span', { class: 'visually-hidden' }, 'Actions')].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)))));
  }

  function createTargetDialog() {
    const kind = h('select', { name: 'kind', 'data-field': 'kind' }, h('option', { value: 'agent' }, 'Agent'), h('option', { value: 'team' }, 'Team'));
    const name = h('input', { type: 'text', name: 'name', 'data-field': 'name', required: true, maxlength: 200, autocomplete: 'off' });
    const endpoint = h('input', { type: 'url', name: 'endpoint_url', 'data-field': 'endpoint_url', autocomplete: 'off', spellcheck: 'false', placeholder: 'https://agent.example.com/tasks' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create target');
    const form = h('form', { novalidate: true },
      formError(),
      field('Kind', kind),
      field('Name', name, 'e.g. “Deploy bot” or “On-call team”.'),
      field('Endpoint URL', endpoint, 'webhookd pushes each task there, signed. Leave empty to let the target read tasks from the board.', true),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => handle.dialog.close() }, 'Cancel'),
        submit));
    const handle = openDialog('Create target', form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const ok = checkForm(form, [
        ['name', RULES.name(name.value)],
        ['endpoint_url', endpoint.value.trim() ? RULES.endpoint(endpoint.value.trim()) : null],
      ]);
      if (!ok) return;
      const body = { kind: kind.value, name: name.value.trim() };
      if (endpoint.value.trim()) body.endpoint_url = endpoint.value.trim();
      submit.disabled = true;
      try {
        const created = await api('POST', '/api/v1/targets', body);
        handle.setTitle('Target created');
        handle.body.replaceChildren(
          h('p', { class: 'callout callout-ok', role: 'status' }, `“${created.name}” is ready. Point webhooks at it.`),
          h('p', { class: 'hint' }, 'Deliveries to its endpoint carry a webhook-signature header made with this signing secret.'),
          ...secretOnce('signing secret', created.signing_secret),
          h('div', { class: 'dialog-actions' },
            h('button', { type: 'button', class: 'btn btn-primary', onclick: () => handle.dialog.close() }, 'Done')));
        handle.body.querySelector('#shown-secret').focus();
        handle.dialog.addEventListener('close', () => { if (location.hash === '#/targets') route(); });
      } catch (err) {
        showError(form, err);
      } finally {
        submit.disabled = false;
      }
    });
  }

  function editTargetDialog(target) {
    const name = h('input', { type: 'text', name: 'name', 'data-field': 'name', required: true, maxlength: 200, autocomplete: 'off', value: target.name });
    const endpoint = h('input', { type: 'url', name: 'endpoint_url', 'data-field': 'endpoint_url', autocomplete: 'off', spellcheck: 'false', value: target.endpoint_url || '', placeholder: 'https://agent.example.com/tasks' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save changes');
    const form = h('form', { novalidate: true },
      formError(),
      field('Name', name),
      field('Endpoint URL', endpoint, 'webhookd pushes each task there, signed with the target’s signing secret. Leave empty to let the target read tasks from the board.', true),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => handle.dialog.close() }, 'Cancel'),
        submit));
    const handle = openDialog(`Edit target “${target.name}”`, form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const url = endpoint.value.trim();
      const ok = checkForm(form, [
        ['name', RULES.name(name.value)],
        ['endpoint_url', url ? RULES.endpoint(url) : null],
      ]);
      if (!ok) return;
      const body = {};
      if (name.value.trim() !== target.name) body.name = name.value.trim();
      if (url !== (target.endpoint_url || '')) body.endpoint_url = url || null;
      if (Object.keys(body).length === 0) {
        handle.dialog.close();
        return;
      }
      submit.disabled = true;
      try {
        const saved = await api('PATCH', `/api/v1/targets/${target.id}`, body);
        handle.dialog.close();
        toast(`Target “${saved.name}” saved`);
        await rerender(`[data-edit="${target.id}"]`);
      } catch (err) {
        showError(form, err);
        submit.disabled = false;
      }
    });
  }

  // The webhooks (not deleted) that point at a target, read page by page.
  async function webhooksUsing(target) {
    const using = [];
    let cursor = null;
    do {
      const page = await api('GET', `/api/v1/webhooks?limit=${MAX_LIMIT}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      using.push(...page.items.filter((w) => w.status !== 'deleted' && w.target && w.target.id === target.id));
      cursor = page.next_cursor;
    } while (cursor);
    return using;
  }

  // Why a target in use cannot be deleted, with the way out: each webhook, to edit or delete.
  function targetInUse(target, webhooks) {
    return [
      h('p', {}, webhooks.length === 1
        ? `One webhook sends its tasks to “${target.name}”. Point it at another target, or delete it, and then delete this target.`
        : `${webhooks.length} webhooks send their tasks to “${target.name}”. Point each at another target, or delete it, and then delete this target.`),
      h('ul', { class: 'using' }, webhooks.map((w) => h('li', {},
        h('a', { href: `#/webhooks/${w.id}`, onclick: () => { const open = document.querySelector('dialog'); if (open) open.close(); } }, w.name),
        ' ', badge(w.status)))),
      h('p', { class: 'hint' }, 'On a webhook’s page, Edit changes its target.'),
    ];
  }

  async function deleteTargetDialog(target) {
    let using;
    try {
      using = await webhooksUsing(target);
    } catch (err) {
      toast(errorText(err));
      return;
    }
    if (using.length > 0) {
      const handle = openDialog(`“${target.name}” is in use`, [
        targetInUse(target, using),
        h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: () => handle.dialog.close() }, 'Close')),
      ]);
      return;
    }
    confirmDialog({
      title: `Delete target “${target.name}”?`,
      message: h('p', {}, 'No webhook points at it. Its tasks stay on record.'),
      confirmLabel: `Delete “${target.name}”`,
      danger: true,
      action: async (handle) => {
        try {
          await api('DELETE', `/api/v1/targets/${target.id}`);
        } catch (err) {
          if (err.code !== 'target_in_use') throw err;
          // A webhook was pointed at it meanwhile.
          handle.setTitle(`“${target.name}” is in use`);
          handle.body.replaceChildren(...targetInUse(target, await webhooksUsing(target)),
            h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn btn-primary', onclick: () => handle.dialog.close() }, 'Close')));
          handle.body.querySelector('.btn-primary').focus();
          return;
        }
        handle.dialog.close();
        toast(`Target “${target.name}” deleted`);
        route();
      },
    });
  }

  // ------------------------------------------------------------------------------------------
  // Task board

  // The board of one target, or (`#/board`) of all of them. Each column shows its newest
  // tasks and loads more on demand; the board refreshes itself while the tab is visible.
  async function boardPage(gen, targetId) {
    const targets = (await api('GET', `/api/v1/targets?limit=${MAX_LIMIT}`)).items;
    if (gen !== state.generation) return;
    if (targets.length === 0) {
      page(pageHead('Task board', 'Tasks created by accepted events, by status.'),
        h('div', { class: 'card' }, emptyState('board', 'No targets yet', 'The board shows the tasks of your targets. Create a target and a webhook pointing at it; accepted events then appear here.',
          canWrite() ? h('a', { class: 'btn btn-primary', href: '#/targets' }, 'Go to targets') : null)));
      return;
    }
    const target = targetId ? targets.find((t) => t.id === targetId) : null;
    if (targetId && !target) {
      location.replace('#/board');
      return;
    }
    const names = new Map(targets.map((t) => [t.id, t.name]));
    const select = h('select', { id: 'board-target', onchange: () => {
      state.focusAfter = '#board-target';
      go(select.value ? `#/board/${select.value}` : '#/board');
    } },
      h('option', { value: '', selected: !target }, 'All targets'),
      targets.map((t) => h('option', { value: t.id, selected: target && t.id === target.id }, `${t.name} (${t.kind})`)));
    const status = liveStatus();
    const board = h('div', { class: 'board' });
    const filter = target ? `target_id=${target.id}&` : '';
    const columns = TASK_STATUSES.map((s) => {
      const column = {
        status: s,
        want: COLUMN_SIZE,
        signature: '',
        list: h('ul', { 'aria-labelledby': `col-${s}` }),
        count: h('span', { class: 'count' }, '0'),
        more: h('button', { type: 'button', class: 'btn btn-small more', hidden: true }, 'Load more'),
      };
      column.more.setAttribute('aria-label', `Load more ${label(s).toLowerCase()} tasks`);
      column.more.addEventListener('click', async () => {
        column.want += COLUMN_SIZE;
        column.more.disabled = true;
        try {
          await refreshColumn(column);
        } catch (err) {
          toast(errorText(err));
        } finally {
          column.more.disabled = false;
        }
        // With nothing more to load the button hides: the last card takes the focus.
        if (column.more.hidden) {
          const cards = column.list.querySelectorAll('.task-card');
          if (cards.length) cards[cards.length - 1].focus();
        }
      });
      board.append(h('section', { class: 'column', 'aria-labelledby': `col-${s}`, 'data-status': s },
        h('div', { class: 'column-head' }, h('h2', { id: `col-${s}` }, label(s)), column.count),
        column.list, column.more));
      return column;
    });
    // A column's newest `want` tasks, read in pages of at most MAX_LIMIT.
    const refreshColumn = async (column) => {
      const items = [];
      let cursor = null;
      do {
        const limit = Math.min(column.want - items.length, MAX_LIMIT);
        const more = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
        const answer = await api('GET', `/api/v1/tasks?${filter}status=${column.status}&limit=${limit}${more}`);
        items.push(...answer.items);
        cursor = answer.next_cursor;
      } while (cursor && items.length < column.want);
      if (gen !== state.generation) return;
      const signature = JSON.stringify([items.map((t) => [t.id, t.updated_at]), Boolean(cursor)]);
      if (signature === column.signature) return;
      column.signature = signature;
      renderColumn(column, items, Boolean(cursor), target ? null : names);
    };
    const hint = h('p', { class: 'callout callout-info', hidden: true }, target
      ? 'No tasks yet. Tasks appear here when a webhook pointing at this target accepts an event; try Test on a webhook.'
      : 'No tasks yet. Tasks appear here when a webhook accepts an event; try Test on a webhook.');
    let lead = 'The tasks of every target, by status.';
    if (target) {
      lead = target.endpoint_url
        ? 'Tasks of this target, by status. webhookd pushes them to its endpoint.'
        : 'Tasks of this target, by status. It has no endpoint: its agent works them from here or through the API.';
    }
    page(pageHead('Task board', lead,
      h('div', { class: 'field' }, h('label', { for: 'board-target' }, 'Target'), select)),
    h('div', { class: 'toolbar' }, status.el), hint, board);

    await live(gen, BOARD_POLL_MS, async () => {
      try {
        await Promise.all(columns.map(refreshColumn));
        if (gen !== state.generation) return;
        hint.hidden = columns.some((c) => c.list.querySelector('.task-card'));
        status.ok(BOARD_POLL_MS);
      } catch (err) {
        if (gen === state.generation) status.failed(err);
      }
    });
  }

  // Shows a column's tasks; `names` (target id → name) when the board shows every target.
  function renderColumn(column, tasks, more, names) {
    column.count.textContent = more ? `${tasks.length}+` : String(tasks.length);
    column.more.hidden = !more;
    if (tasks.length === 0) {
      column.list.replaceChildren(h('li', { class: 'column-empty' }, `Nothing ${label(column.status).toLowerCase()}`));
      return;
    }
    // The card that has the focus keeps it across a refresh.
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.task : null;
    column.list.replaceChildren(...tasks.map((task) => h('li', {},
      h('a', { class: 'task-card', href: `#/tasks/${task.id}`, 'data-task': task.id },
        h('div', { class: 'instruction' }, task.instruction || h('span', { class: 'muted' }, '(no message)')),
        h('div', { class: 'meta' },
          task.test ? h('span', { class: 'tag-test' }, 'test') : null,
          names ? h('span', { class: 'card-target' }, names.get(task.target_id) || 'Deleted target') : null,
          task.event_type ? h('code', {}, task.event_type) : null,
          time(task.created_at),
          task.attempts ? h('span', {}, `${task.attempts} attempt${task.attempts === 1 ? '' : 's'}`) : null),
        task.last_error ? h('div', { class: 'error' }, task.last_error) : null))));
    if (focused) {
      const again = column.list.querySelector(`[data-task="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  async function taskPage(gen, id) {
    const task = await api('GET', `/api/v1/tasks/${encodeURIComponent(id)}`);
    const attemptsPath = `/api/v1/tasks/${task.id}/attempts`;
    const [target, webhook, attempts] = await Promise.all([
      api('GET', `/api/v1/targets/${task.target_id}`).catch(() => null),
      api('GET', `/api/v1/webhooks/${task.webhook_id}`).catch(() => null),
      api('GET', attemptsPath),
    ]);
    if (gen !== state.generation) return;
    const status = liveStatus();
    const render = (current, tried) => {
      // A re-render keeps the focus on the control that had it, when it is still there.
      const focused = main.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
      page(...taskView(current, tried, target, webhook, status));
      if (focused) {
        const again = main.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
        (again || main.querySelector('h1')).focus();
      }
    };
    render(task, attempts.items);
    let shown = JSON.stringify([task.status, task.updated_at, task.attempts, task.last_error]);
    let fresh = true;
    await live(gen, LIVE_POLL_MS, async () => {
      try {
        const latest = fresh ? task : await api('GET', `/api/v1/tasks/${task.id}`);
        fresh = false;
        if (gen !== state.generation) return;
        const signature = JSON.stringify([latest.status, latest.updated_at, latest.attempts, latest.last_error]);
        if (signature !== shown) {
          const tried = latest.attempts === task.attempts ? attempts : await api('GET', attemptsPath);
          if (gen !== state.generation) return;
          shown = signature;
          render(latest, tried.items);
        }
        status.ok(LIVE_POLL_MS);
        return attemptDueIn(latest);
      } catch (err) {
        if (gen === state.generation) status.failed(err);
      }
      return undefined;
    });
  }

  function taskView(task, attempts, target, webhook, status) {
    const error = formError();
    const move = async (body, path, method) => {
      try {
        await api(method, path, body);
        toast('Task updated');
        route({ keepFocus: true });
      } catch (err) {
        showError(actions, err);
      }
    };
    const buttons = canWrite()
      ? [
        ...TASK_MOVES[task.status].map(([to, text]) => h('button', { type: 'button', class: 'btn btn-small', 'data-focus-key': `move-${to}`, onclick: () => move({ status: to }, `/api/v1/tasks/${task.id}`, 'PATCH') }, text)),
        task.status === 'failed' ? h('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-focus-key': 'retry', onclick: () => move(undefined, `/api/v1/tasks/${task.id}/retry`, 'POST') }, 'Retry') : null,
      ]
      : [];
    const actions = h('div', {}, error, h('div', { class: 'actions' }, buttons));
    const props = h('dl', { class: 'props' },
      h('dt', {}, 'Target'), h('dd', {}, target ? h('a', { href: `#/board/${target.id}` }, target.name) : task.target_id),
      h('dt', {}, 'Webhook'), h('dd', {}, webhook ? h('a', { href: `#/webhooks/${webhook.id}` }, webhook.name) : task.webhook_id),
      h('dt', {}, 'Request'), h('dd', {}, h('a', { href: `#/invocations/${task.invocation_id}` }, 'The request that made this task')),
      h('dt', {}, 'Event type'), h('dd', {}, task.event_type ? h('code', {}, task.event_type) : h('span', { class: 'muted' }, 'None')),
      h('dt', {}, 'Source'), h('dd', {}, task.source.provider ? `${sourceOf(task.source.provider).name} · ` : '',
        task.source.verified ? 'Verified sender' : 'Unverified sender', task.source.source_ip ? ` · ${task.source.source_ip}` : ''),
      h('dt', {}, 'Received'), h('dd', {}, time(task.source.received_at)),
      h('dt', {}, 'Attempts'), h('dd', {}, String(task.attempts)),
      // Only a queued task waits for an attempt.
      task.status === 'queued' ? [h('dt', {}, 'Next attempt'), h('dd', {}, time(task.next_attempt_at))] : null,
      task.last_error ? [h('dt', {}, 'Last error'), h('dd', { class: 'field-error' }, sentence(task.last_error))] : null,
      h('dt', {}, 'Created'), h('dd', {}, time(task.created_at)),
      h('dt', {}, 'Updated'), h('dd', {}, time(task.updated_at)));
    return [pageHead(
      h('div', { class: 'title-row' }, h('h1', { tabindex: '-1' }, task.instruction || 'Task'), badge(task.status), task.test ? h('span', { class: 'tag-test' }, 'test') : null),
      'The instruction comes from the sender’s payload: untrusted text from outside.', null,
      [h('a', { href: target ? `#/board/${target.id}` : '#/board' }, 'Task board'), ' / ', 'Task']),
    h('div', { class: 'toolbar' }, status.el),
    h('div', { class: 'grid-2' },
      h('section', { class: 'card' }, h('div', { class: 'card-body' }, h('h2', {}, 'Context'), h('p', { class: 'lead' }, 'The whole payload.'), prettyJson(task.context))),
      h('div', { class: 'stack' },
        h('section', { class: 'card' }, h('div', { class: 'card-body' }, props)),
        buttons.some(Boolean) ? h('section', { class: 'card' }, h('div', { class: 'card-body' }, h('h2', {}, 'Move'), h('p', { class: 'lead' }, 'As the agent would report progress.'), actions)) : null,
        h('section', { class: 'card', 'aria-labelledby': 'attempts-title' }, h('div', { class: 'card-body' },
          h('h2', { id: 'attempts-title' }, 'Delivery attempts'),
          attempts.length
            ? h('ol', { class: 'timeline' }, attempts.map(attemptStep))
            : h('p', { class: 'muted' }, 'None yet.')))))];
  }

  // ------------------------------------------------------------------------------------------
  // Router

  function notFoundPage() {
    page(pageHead('Page not found'), h('div', { class: 'card' }, emptyState('question', 'Nothing here', 'This address does not match a page of the console.',
      h('a', { class: 'btn btn-primary', href: '#/webhooks' }, 'Go to webhooks'))));
  }

  async function route(options) {
    if (!state.key) {
      renderSignIn();
      return;
    }
    state.generation += 1;
    const gen = state.generation;
    const raw = location.hash.replace(/^#/, '') || '/webhooks';
    const [path, search] = raw.split('?');
    const query = new URLSearchParams(search || '');
    const parts = path.split('/').filter(Boolean);
    const section = { tasks: 'board', invocations: 'webhooks' }[parts[0]] || parts[0];
    for (const link of document.querySelectorAll('.mainnav a')) {
      if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    const keepFocus = options && options.keepFocus;
    if (!keepFocus) loading();
    try {
      if (parts[0] === 'webhooks' && parts.length === 1) await webhooksPage(gen, query);
      else if (parts[0] === 'webhooks' && parts.length === 2) await webhookPage(gen, parts[1]);
      else if (parts[0] === 'webhooks' && parts.length === 3 && parts[2] === 'log') await logPage(gen, parts[1], query);
      else if (parts[0] === 'targets' && parts.length === 1) await targetsPage(gen);
      else if (parts[0] === 'board' && parts.length <= 2) await boardPage(gen, parts[1]);
      else if (parts[0] === 'tasks' && parts.length === 2) await taskPage(gen, parts[1]);
      else if (parts[0] === 'invocations' && parts.length === 2) await invocationPage(gen, parts[1]);
      else notFoundPage();
    } catch (error) {
      if (!state.key || gen !== state.generation) return;
      if (error.status === 404) {
        page(pageHead('Not found'), h('div', { class: 'card' }, emptyState('question', 'Not found', `${sentence(error.detail || 'It does not exist')} It may belong to another organization, or the address is mistyped.`,
          h('a', { class: 'btn btn-primary', href: '#/webhooks' }, 'Go to webhooks'))));
      } else {
        failure(error);
      }
    }
    if (!keepFocus && gen === state.generation) focusPage();
    document.title = `${(main.querySelector('h1') || {}).textContent || 'Console'} · webhookd`;
  }

  async function start() {
    document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));
    document.getElementById('skip-link').addEventListener('click', (event) => {
      event.preventDefault();
      main.focus();
    });
    window.addEventListener('hashchange', () => route());
    // "3 min ago" stays true while a page is open.
    setInterval(refreshTimes, 30000);
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (!key) {
      renderSignIn();
      return;
    }
    const { response, data } = await request('GET', '/api/v1/organization', undefined, key)
      .catch((error) => ({ response: { ok: false, status: 0 }, data: { detail: error.detail } }));
    if (!response.ok) {
      sessionStorage.removeItem(KEY_STORAGE);
      renderSignIn(response.status === 401 ? 'Your API key is no longer accepted. Sign in again.' : (data && data.detail) || undefined);
      return;
    }
    state.key = key;
    state.org = data;
    state.role = await probeRole(key);
    showShell();
    route();
  }

  start();
})();
