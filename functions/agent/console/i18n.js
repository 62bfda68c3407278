// The console's words: one message table per language, every user-visible text of the page.
// `t(key, vars)` fills `{name}` placeholders. The language follows the browser (navigator.languages)
// until the agent picks one, which is remembered in localStorage (not a secret).

export const LANGUAGES = { en: 'English', ja: '日本語' };

const MESSAGES = {
  en: {
    'app.title': 'omniline console',
    'app.titleUnread': '({count}) omniline console',
    'app.skip': 'Skip to the conversation',
    'app.language': 'Language',
    'signin.heading': 'Sign in to the agent console',
    'signin.intro': 'Paste the agent token your administrator gave you (POST /admin/v1/agents). It is kept in this tab only and forgotten when you close it.',
    'signin.token': 'Agent token',
    'signin.submit': 'Sign in',
    'signin.checking': 'Signing in…',
    'signin.empty': 'Paste your agent token first.',
    'signin.invalid': 'This token was not accepted. Check it, or ask your administrator for a new one.',
    'signin.ended': 'Your session has ended. Sign in again.',
    'signin.signedOut': 'You have signed out.',
    'signin.oidc': 'OIDC sign-in is not available in this build yet. Sign in with an agent token meanwhile.',
    'signin.configFailed': 'The console could not read its configuration: {message}',
    'header.presence': 'Presence',
    'header.signOut': 'Sign out',
    'header.enableNotifications': 'Enable notifications',
    'header.notificationsOn': 'Notifications on',
    'header.notificationsBlocked': 'Notifications blocked by the browser',
    'header.notificationsUnsupported': 'This browser has no notifications',
    'header.load': '{active} / {capacity} conversations',
    'presence.available': 'Available',
    'presence.busy': 'Busy',
    'presence.away': 'Away',
    'presence.offline': 'Offline',
    'inbox.heading': 'Inbox',
    'inbox.tabs': 'Conversations',
    'tab.mine': 'Mine',
    'tab.waiting': 'Waiting in my queues',
    'tab.closed': 'Recently closed',
    'inbox.empty.mine': 'No conversation is assigned to you.',
    'inbox.empty.waiting': 'Nobody is waiting in your queues.',
    'inbox.empty.closed': 'No closed conversation yet.',
    'inbox.loading': 'Loading…',
    'inbox.unread': '{count} unread',
    'inbox.waited': 'waiting {duration}',
    'inbox.idle': 'last activity {duration} ago',
    'inbox.closedAgo': 'closed {duration} ago',
    'inbox.unknownCustomer': 'Unknown customer',
    'inbox.groupChat': 'Group chat',
    'inbox.roomChat': 'Multi-person chat',
    'duration.seconds': 'less than a minute',
    'duration.minutes': '{n} min',
    'duration.hours': '{h} h {m} min',
    'duration.days': '{n} d',
    'status.waiting': 'Waiting',
    'status.active': 'Active',
    'status.closed': 'Closed',
    'conversation.none': 'Choose a conversation in the inbox.',
    'conversation.region': 'Conversation',
    'conversation.yours': 'assigned to you',
    'conversation.otherAgent': 'assigned to another agent',
    'conversation.queue': 'queue {name}',
    'conversation.opened': 'opened {time}',
    'conversation.pick': 'Pick',
    'conversation.picked': 'The conversation is yours.',
    'conversation.transferLabel': 'Transfer to queue',
    'conversation.transferPlaceholder': 'Queue id',
    'conversation.transfer': 'Transfer',
    'conversation.transferred': 'Transferred.',
    'conversation.transferEmpty': 'Choose or type a queue id first.',
    'conversation.close': 'Close',
    'conversation.closed': 'Closed. The customer gets the closing message and the survey if enabled.',
    'conversation.survey': 'Survey: {score} / {scale}',
    'conversation.surveyWaiting': 'Survey sent, no answer yet.',
    'transcript.label': 'Transcript',
    'transcript.loading': 'Loading the transcript…',
    'transcript.empty': 'No messages yet.',
    'transcript.customer': 'Customer',
    'transcript.agent': 'Agent',
    'transcript.you': 'You',
    'transcript.bot': 'Bot',
    'transcript.automated': 'Automated message',
    'transcript.automatedTrigger': 'Automated message · {trigger}',
    'transcript.unsent': 'The customer unsent a message.',
    'transcript.replyTo': 'Reply to this message',
    'transcript.quoting': 'Quotes an earlier message',
    'transcript.image': 'Image from the customer',
    'transcript.imageSent': 'Image',
    'transcript.video': 'Video',
    'transcript.audio': 'Audio',
    'transcript.file': 'File: {name}',
    'transcript.sticker': 'Sticker {id}',
    'transcript.location': 'Location: {title}',
    'transcript.openMap': 'Open in Google Maps',
    'transcript.postback': 'Tapped: {data}',
    'transcript.surveyAnswer': 'Survey answer: {score}',
    'transcript.event': 'Event: {type}',
    'transcript.follow': 'The customer added the account as a friend.',
    'transcript.unfollow': 'The customer blocked the account.',
    'transcript.other': '[{type}]',
    'transcript.noMedia': '(not available)',
    'delivery.queued': 'Queued',
    'delivery.sent': 'Sent',
    'delivery.unconfirmed': 'Not confirmed',
    'delivery.failed': 'Failed',
    'delivery.suppressed': 'Not sent (blocked)',
    'delivery.quota_exhausted': 'Held: monthly limit reached',
    'trigger.conversationStarted': 'greeting',
    'trigger.queued': 'queued',
    'trigger.noAgentAvailable': 'no agent available',
    'trigger.agentAssigned': 'agent assigned',
    'trigger.agentEnded': 'agent ended',
    'trigger.outsideBusinessHours': 'outside business hours',
    'trigger.attachmentsNotAccepted': 'attachments not accepted',
    'trigger.unsupportedMessageType': 'unsupported message',
    'trigger.survey': 'survey',
    'composer.label': 'Reply to the customer',
    'composer.hint': 'Enter sends, Shift+Enter starts a new line.',
    'composer.placeholder': 'Write a reply…',
    'composer.pickFirst': 'Pick the conversation to answer it.',
    'composer.notYours': 'This conversation is assigned to another agent.',
    'composer.closed': 'This conversation is closed.',
    'composer.send': 'Send',
    'composer.replyingTo': 'Replying to: {text}',
    'composer.cancelQuote': 'Cancel the quote',
    'notify.assigned': 'New conversation: {name}',
    'notify.message': 'New message from {name}',
    'error.network': 'The server is not answering. Check your connection.',
    'error.generic': '{context}: {message}',
    'error.dismiss': 'Dismiss',
    'context.inbox': 'Inbox',
    'context.conversation': 'Conversation',
    'context.send': 'Send',
    'context.presence': 'Presence',
    'context.pick': 'Pick',
    'context.transfer': 'Transfer',
    'context.close': 'Close',
    'context.notifications': 'Notifications',
  },
  ja: {
    'app.title': 'omniline コンソール',
    'app.titleUnread': '({count}) omniline コンソール',
    'app.skip': '会話へ移動',
    'app.language': '言語',
    'signin.heading': 'エージェントコンソールにサインイン',
    'signin.intro': '管理者から受け取ったエージェントトークンを貼り付けてください（POST /admin/v1/agents）。このタブの中だけに保存され、タブを閉じると消えます。',
    'signin.token': 'エージェントトークン',
    'signin.submit': 'サインイン',
    'signin.checking': 'サインインしています…',
    'signin.empty': 'まずエージェントトークンを貼り付けてください。',
    'signin.invalid': 'このトークンは受け付けられませんでした。確認するか、管理者に新しいトークンを依頼してください。',
    'signin.ended': 'セッションが終了しました。もう一度サインインしてください。',
    'signin.signedOut': 'サインアウトしました。',
    'signin.oidc': 'このビルドでは OIDC サインインはまだ利用できません。当面はエージェントトークンでサインインしてください。',
    'signin.configFailed': 'コンソールの設定を読み込めませんでした: {message}',
    'header.presence': '在席状況',
    'header.signOut': 'サインアウト',
    'header.enableNotifications': '通知を有効にする',
    'header.notificationsOn': '通知オン',
    'header.notificationsBlocked': 'ブラウザーが通知をブロックしています',
    'header.notificationsUnsupported': 'このブラウザーは通知に対応していません',
    'header.load': '対応中 {active} / {capacity} 件',
    'presence.available': '対応可能',
    'presence.busy': '取り込み中',
    'presence.away': '離席中',
    'presence.offline': 'オフライン',
    'inbox.heading': '受信箱',
    'inbox.tabs': '会話',
    'tab.mine': '自分の担当',
    'tab.waiting': 'キューで待機中',
    'tab.closed': '最近終了した会話',
    'inbox.empty.mine': '担当している会話はありません。',
    'inbox.empty.waiting': 'キューで待っているお客様はいません。',
    'inbox.empty.closed': '終了した会話はまだありません。',
    'inbox.loading': '読み込み中…',
    'inbox.unread': '未読 {count} 件',
    'inbox.waited': '待ち時間 {duration}',
    'inbox.idle': '最終やり取りから {duration}',
    'inbox.closedAgo': '{duration}前に終了',
    'inbox.unknownCustomer': '不明なお客様',
    'inbox.groupChat': 'グループトーク',
    'inbox.roomChat': '複数人トーク',
    'duration.seconds': '1分未満',
    'duration.minutes': '{n}分',
    'duration.hours': '{h}時間{m}分',
    'duration.days': '{n}日',
    'status.waiting': '待機中',
    'status.active': '対応中',
    'status.closed': '終了',
    'conversation.none': '受信箱から会話を選んでください。',
    'conversation.region': '会話',
    'conversation.yours': 'あなたの担当',
    'conversation.otherAgent': '他のエージェントの担当',
    'conversation.queue': 'キュー {name}',
    'conversation.opened': '開始 {time}',
    'conversation.pick': '担当する',
    'conversation.picked': 'この会話の担当になりました。',
    'conversation.transferLabel': '転送先のキュー',
    'conversation.transferPlaceholder': 'キュー ID',
    'conversation.transfer': '転送',
    'conversation.transferred': '転送しました。',
    'conversation.transferEmpty': 'キュー ID を選ぶか入力してください。',
    'conversation.close': '終了',
    'conversation.closed': '終了しました。お客様には終了メッセージと（有効なら）アンケートが届きます。',
    'conversation.survey': 'アンケート: {score} / {scale}',
    'conversation.surveyWaiting': 'アンケート送信済み、まだ回答はありません。',
    'transcript.label': 'トーク履歴',
    'transcript.loading': 'トーク履歴を読み込み中…',
    'transcript.empty': 'まだメッセージはありません。',
    'transcript.customer': 'お客様',
    'transcript.agent': 'エージェント',
    'transcript.you': 'あなた',
    'transcript.bot': 'ボット',
    'transcript.automated': '自動メッセージ',
    'transcript.automatedTrigger': '自動メッセージ・{trigger}',
    'transcript.unsent': 'お客様がメッセージの送信を取り消しました。',
    'transcript.replyTo': 'このメッセージに返信',
    'transcript.quoting': '以前のメッセージを引用',
    'transcript.image': 'お客様からの画像',
    'transcript.imageSent': '画像',
    'transcript.video': '動画',
    'transcript.audio': '音声',
    'transcript.file': 'ファイル: {name}',
    'transcript.sticker': 'スタンプ {id}',
    'transcript.location': '位置情報: {title}',
    'transcript.openMap': 'Google マップで開く',
    'transcript.postback': 'タップ: {data}',
    'transcript.surveyAnswer': 'アンケートの回答: {score}',
    'transcript.event': 'イベント: {type}',
    'transcript.follow': 'お客様が友だち追加しました。',
    'transcript.unfollow': 'お客様がブロックしました。',
    'transcript.other': '[{type}]',
    'transcript.noMedia': '（利用できません）',
    'delivery.queued': '送信待ち',
    'delivery.sent': '送信済み',
    'delivery.unconfirmed': '未確認',
    'delivery.failed': '失敗',
    'delivery.suppressed': '未送信（ブロック中）',
    'delivery.quota_exhausted': '保留: 月間上限に達しました',
    'trigger.conversationStarted': 'あいさつ',
    'trigger.queued': '順番待ち',
    'trigger.noAgentAvailable': '対応可能なエージェントなし',
    'trigger.agentAssigned': '担当者決定',
    'trigger.agentEnded': '対応終了',
    'trigger.outsideBusinessHours': '営業時間外',
    'trigger.attachmentsNotAccepted': '添付ファイル不可',
    'trigger.unsupportedMessageType': '未対応のメッセージ',
    'trigger.survey': 'アンケート',
    'composer.label': 'お客様への返信',
    'composer.hint': 'Enter で送信、Shift+Enter で改行します。',
    'composer.placeholder': '返信を入力…',
    'composer.pickFirst': '返信するには、まずこの会話を担当してください。',
    'composer.notYours': 'この会話は他のエージェントが担当しています。',
    'composer.closed': 'この会話は終了しています。',
    'composer.send': '送信',
    'composer.replyingTo': '返信先: {text}',
    'composer.cancelQuote': '引用を取り消す',
    'notify.assigned': '新しい会話: {name}',
    'notify.message': '{name} さんから新しいメッセージ',
    'error.network': 'サーバーが応答しません。接続を確認してください。',
    'error.generic': '{context}: {message}',
    'error.dismiss': '閉じる',
    'context.inbox': '受信箱',
    'context.conversation': '会話',
    'context.send': '送信',
    'context.presence': '在席状況',
    'context.pick': '担当',
    'context.transfer': '転送',
    'context.close': '終了',
    'context.notifications': '通知',
  },
};

const STORAGE_KEY = 'omniline.console.language';
let current = 'en';

/** The language to start with: the one chosen before, else the browser's first supported one. */
export function initialLanguage() {
  let stored = null;
  try { stored = window.localStorage.getItem(STORAGE_KEY); } catch { stored = null; }
  if (stored && MESSAGES[stored]) return stored;
  const wanted = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en']);
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (MESSAGES[base]) return base;
  }
  return 'en';
}

export function setLanguage(lang, remember = false) {
  current = MESSAGES[lang] ? lang : 'en';
  document.documentElement.lang = current;
  if (remember) {
    try { window.localStorage.setItem(STORAGE_KEY, current); } catch { /* private mode: not kept */ }
  }
}

export function language() {
  return current;
}

/** The text of `key` in the current language (English when missing), `{name}`s filled from `vars`. */
export function t(key, vars) {
  const table = MESSAGES[current] || MESSAGES.en;
  const template = table[key] ?? MESSAGES.en[key] ?? key;
  if (!vars) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** Fills every `data-i18n` (text), `data-i18n-label` (aria-label), `data-i18n-placeholder` and
 *  `data-i18n-title` under `root`. */
export function translate(root = document) {
  for (const node of root.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll('[data-i18n-label]')) node.setAttribute('aria-label', t(node.dataset.i18nLabel));
  for (const node of root.querySelectorAll('[data-i18n-placeholder]')) node.setAttribute('placeholder', t(node.dataset.i18nPlaceholder));
  for (const node of root.querySelectorAll('[data-i18n-title]')) node.setAttribute('title', t(node.dataset.i18nTitle));
}

/** Every key of every table (the tables must have the same keys; checked by the browser test). */
export function missingKeys() {
  const keys = new Set(Object.keys(MESSAGES.en));
  const missing = [];
  for (const [lang, table] of Object.entries(MESSAGES)) {
    for (const key of keys) if (!(key in table)) missing.push(`${lang}:${key}`);
    for (const key of Object.keys(table)) if (!keys.has(key)) missing.push(`en:${key}`);
  }
  return missing;
}
