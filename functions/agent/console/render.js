// DOM building for the console: a small element helper and the transcript's lines. Data from the
// API reaches the DOM through textContent and attributes only (never innerHTML), and only http(s)
// links become a src or an href.
import { t } from './i18n.js';

/** Builds an element. `props`: className, text, testid, on… handlers, other attributes
 *  (true: present, false / null / undefined: absent). Children: nodes or strings. */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'testid') node.setAttribute('data-testid', value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2).toLowerCase(), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** `url` when it is an http(s) link (absolute or relative to this page), else null. */
export function httpUrl(url) {
  if (typeof url !== 'string' || !url.trim()) return null;
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch {
    return null;
  }
}

/** A duration in milliseconds, in words of the current language. */
export function duration(ms) {
  const minutes = Math.floor(Math.max(0, ms) / 60000);
  if (minutes < 1) return t('duration.seconds');
  if (minutes < 60) return t('duration.minutes', { n: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return t('duration.hours', { h: hours, m: minutes % 60 });
  return t('duration.days', { n: Math.floor(hours / 24) });
}

export function clockTime(ms) {
  if (typeof ms !== 'number') return '';
  return new Date(ms).toLocaleTimeString(document.documentElement.lang || undefined, { hour: '2-digit', minute: '2-digit' });
}

export function dateTime(ms) {
  if (typeof ms !== 'number') return '';
  return new Date(ms).toLocaleString(document.documentElement.lang || undefined);
}

/** The customer's picture, or their initial on a coloured disc. */
export function avatar(url, name, size = '') {
  const src = httpUrl(url);
  if (src) return el('img', { className: `avatar ${size}`, src, alt: '', referrerpolicy: 'no-referrer' });
  const initial = (name || '?').trim().charAt(0).toUpperCase() || '?';
  return el('span', { className: `avatar initial ${size}`, 'aria-hidden': 'true', text: initial });
}

/** A one-line preview of a LINE message object (or a notification's lastMessage). */
export function preview(message) {
  if (!message) return '';
  switch (message.type) {
    case 'text': return message.text || '';
    case 'sticker': return t('transcript.sticker', { id: message.stickerId || '' });
    case 'image': return t('transcript.imageSent');
    case 'video': return t('transcript.video');
    case 'audio': return t('transcript.audio');
    case 'file': return t('transcript.file', { name: message.fileName || '' });
    case 'location': return t('transcript.location', { title: message.title || message.address || '' });
    default: return message.altText || t('transcript.other', { type: message.type || '?' });
  }
}

/** A Google Maps link for a location message. */
export function mapLink(latitude, longitude) {
  const lat = Number(latitude);
  const lng = Number(longitude);
  if (!Number.isFinite(lat) || !Number.isFinite(lng)) return null;
  return `https://www.google.com/maps?q=${lat},${lng}`;
}

/** LINE's image of a sticker: the API's sticker view (`sticker.animatedImageUrl` or
 *  `imageUrl`, on LINE's sticker CDN), else the CDN's still image for the id. */
function stickerImage(message, view) {
  const shown = view || message.sticker;
  const given = shown && httpUrl(shown.animatedImageUrl || shown.imageUrl);
  if (given && given.startsWith('https://')) return given;
  const id = String(message.stickerId || '');
  if (!/^\d{1,20}$/.test(id)) return null;
  return `https://stickershop.line-scdn.net/stickershop/v1/sticker/${id}/android/sticker.png`;
}

/** The content of one LINE message object. `mediaUrl`: the transcript's signed link for it;
 *  `sticker`: the transcript's sticker view of a customer's sticker. */
export function messageBody(message, mediaUrl, inbound, sticker) {
  const m = message || {};
  switch (m.type) {
    case 'text':
      return el('p', { className: 'msg-text', text: m.text || '' });
    case 'sticker': {
      const label = t('transcript.sticker', { id: `${m.packageId || ''}/${m.stickerId || ''}` });
      const src = stickerImage(m, sticker);
      if (!src) return el('span', { className: 'msg-other', text: label });
      const img = el('img', { className: 'msg-sticker', src, alt: label, loading: 'lazy', referrerpolicy: 'no-referrer' });
      img.addEventListener('error', () => img.replaceWith(el('span', { className: 'msg-other', text: label })), { once: true });
      return img;
    }
    case 'image': {
      const full = httpUrl(mediaUrl || m.originalContentUrl);
      const src = httpUrl(mediaUrl || m.previewImageUrl || m.originalContentUrl);
      const alt = inbound ? t('transcript.image') : t('transcript.imageSent');
      if (!src) return el('span', { className: 'msg-other', text: `${alt} ${t('transcript.noMedia')}` });
      return el('a', { href: full || src, target: '_blank', rel: 'noopener noreferrer' },
        el('img', { className: 'msg-image', src, alt, loading: 'lazy' }));
    }
    case 'video': {
      const src = httpUrl(mediaUrl || m.originalContentUrl);
      if (!src) return el('span', { className: 'msg-other', text: `${t('transcript.video')} ${t('transcript.noMedia')}` });
      const poster = httpUrl(m.previewImageUrl);
      return el('video', { className: 'msg-video', src, controls: true, preload: 'metadata', poster, 'aria-label': t('transcript.video') });
    }
    case 'audio': {
      const src = httpUrl(mediaUrl || m.originalContentUrl);
      if (!src) return el('span', { className: 'msg-other', text: `${t('transcript.audio')} ${t('transcript.noMedia')}` });
      return el('audio', { className: 'msg-audio', src, controls: true, preload: 'metadata', 'aria-label': t('transcript.audio') });
    }
    case 'file': {
      const label = t('transcript.file', { name: m.fileName || '' });
      const href = httpUrl(mediaUrl || m.url);
      return href
        ? el('a', { className: 'msg-link', href, target: '_blank', rel: 'noopener noreferrer', download: m.fileName || true, text: label })
        : el('span', { className: 'msg-other', text: `${label} ${t('transcript.noMedia')}` });
    }
    case 'location': {
      const href = mapLink(m.latitude, m.longitude);
      const title = t('transcript.location', { title: m.title || m.address || '' });
      return el('div', { className: 'msg-location' },
        el('strong', { text: title }),
        m.address && m.title ? el('span', { text: m.address }) : null,
        href ? el('a', { className: 'msg-link', href, target: '_blank', rel: 'noopener noreferrer', testid: 'map-link', text: t('transcript.openMap') }) : null);
    }
    default:
      return el('span', { className: 'msg-other', text: m.altText || t('transcript.other', { type: m.type || '?' }) });
  }
}

/**
 * One transcript line. `context`: { meId, canQuote, onQuote(entry) }.
 */
export function transcriptLine(entry, context) {
  if (entry.direction === 'internal') {
    // An agent's note: for the team only.
    const who = entry.agentId === context.meId ? t('transcript.you') : (entry.agentName || t('transcript.agent'));
    return el('div', {
      testid: 'entry', className: 'line internal', 'data-direction': 'internal', 'data-type': entry.type, 'data-id': entry.id,
    },
    el('div', { className: 'who', text: t('transcript.note', { name: who }) }),
    el('div', { className: 'bubble note', text: entry.text || '' }),
    el('div', { className: 'meta' }, el('time', {
      className: 'when', datetime: new Date(entry.at).toISOString(), title: dateTime(entry.at), text: clockTime(entry.at),
    })));
  }
  const direction = entry.direction === 'out' ? 'out' : 'in';
  const attrs = { testid: 'entry', 'data-direction': direction, 'data-type': entry.type, 'data-id': entry.id };
  const time = el('time', { className: 'when', datetime: new Date(entry.at).toISOString(), title: dateTime(entry.at), text: clockTime(entry.at) });

  if (entry.retracted) {
    return el('div', { ...attrs, className: 'line system' }, el('span', { text: t('transcript.unsent') }), ' ', time);
  }
  if (direction === 'out') {
    let who;
    let kind;
    if (entry.type === 'botMessage') {
      who = t('transcript.bot');
      kind = 'bot';
    } else if (entry.type === 'automatedMessage' || !entry.agentId) {
      const trigger = entry.trigger ? t(`trigger.${entry.trigger}`) : '';
      who = trigger && !trigger.startsWith('trigger.') ? t('transcript.automatedTrigger', { trigger }) : t('transcript.automated');
      kind = 'automated';
    } else {
      who = entry.agentId === context.meId ? t('transcript.you') : (entry.agentName || t('transcript.agent'));
      kind = 'agent';
    }
    const messages = entry.messages || [entry.message].filter(Boolean);
    const delivery = entry.delivery && entry.delivery.status;
    return el('div', { ...attrs, className: `line out ${kind}`, 'data-kind': kind },
      el('div', { className: 'who', text: who }),
      messages.map((m) => el('div', { className: 'bubble' }, messageBody(m, null, false))),
      el('div', { className: 'meta' }, time,
        delivery ? el('span', {
          className: `delivery ${delivery}`,
          testid: 'delivery',
          'data-status': delivery,
          title: (entry.delivery && entry.delivery.error) || null,
          text: t(`delivery.${delivery}`),
        }) : null));
  }
  if (entry.type === 'message') {
    const quote = entry.quoteToken && context.canQuote
      ? el('button', {
        type: 'button',
        className: 'link-button quote',
        testid: 'quote',
        onclick: () => context.onQuote(entry),
        text: t('transcript.replyTo'),
      })
      : null;
    // The line it quotes, when it is in this transcript: its preview; else that it quotes.
    const quoted = entry.quotedEntryId && context.byId && context.byId.get(entry.quotedEntryId);
    const quotedText = quoted && (quoted.message || (quoted.messages || [])[0]);
    return el('div', { ...attrs, className: 'line in' },
      el('div', { className: 'who', text: entry.senderName || t('transcript.customer') }),
      entry.quotedMessageId ? el('div', {
        className: 'quoted',
        testid: 'quoted',
        'data-quoted-id': entry.quotedEntryId || '',
        text: quotedText ? t('transcript.quoted', { text: preview(quotedText) }) : t('transcript.quoting'),
      }) : null,
      el('div', { className: 'bubble' }, messageBody(entry.message, entry.media && entry.media.url, true, entry.sticker)),
      el('div', { className: 'meta' }, time, quote));
  }
  if (entry.type === 'postback') {
    const data = (entry.postback && entry.postback.data) || '';
    const survey = /^survey:[^:]+:(\d+)$/.exec(data);
    return el('div', { ...attrs, className: 'line in' },
      el('div', { className: 'who', text: entry.senderName || t('transcript.customer') }),
      el('div', { className: 'bubble postback', text: survey ? t('transcript.surveyAnswer', { score: survey[1] }) : t('transcript.postback', { data }) }),
      el('div', { className: 'meta' }, time));
  }
  const label = entry.type === 'follow' ? t('transcript.follow')
    : entry.type === 'unfollow' ? t('transcript.unfollow')
      : t('transcript.event', { type: entry.type });
  return el('div', { ...attrs, className: 'line system' }, el('span', { text: label }), ' ', time);
}
