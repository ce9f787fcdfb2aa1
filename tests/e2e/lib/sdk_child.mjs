// sdk_child.mjs - one real wukongimjssdk@1.0.4 user per process (WKSDK.shared() is a singleton).
// Forked by lib/sdk.mjs; talks to the parent over the IPC channel. It reports connect status
// changes, received messages, SENDACKs, and the first byte of every frame the SDK writes (so the
// parent can see the SDK's RECVACKs).

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket as WsWebSocket } from 'ws';

const E2E = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

const emit = (msg) => { if (process.connected) process.send(msg); };

// The SDK logs chattily with console.log; keep it, but send it to the parent's log instead of stdout.
const logLine = (...args) => emit({ ev: 'log', text: args.map((a) => (typeof a === 'string' ? a : safeJson(a))).join(' ') });
console.log = logLine; console.info = logLine; console.warn = logLine; console.error = logLine;
function safeJson(v) { try { return JSON.stringify(v); } catch { return String(v); } }

// A global WebSocket for the SDK (Node 20 has none by default), instrumented to report writes.
class TracingWebSocket extends WsWebSocket {
  send(data, ...rest) {
    const b = Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
    emit({ ev: 'wsout', header: b[0], hex: b.length <= 64 ? b.toString('hex') : b.subarray(0, 64).toString('hex') });
    return super.send(data, ...rest);
  }
}
globalThis.WebSocket = TracingWebSocket;

process.on('uncaughtException', (e) => emit({ ev: 'error', text: `uncaughtException: ${e?.stack ?? e}` }));
process.on('unhandledRejection', (e) => emit({ ev: 'error', text: `unhandledRejection: ${e?.stack ?? e}` }));

const { WKSDK, Channel, MessageText } = require(path.join(E2E, '.build', 'wksdk.cjs'));
const sdk = WKSDK.shared();

function messageToPlain(m) {
  return {
    messageID: m.messageID === undefined ? undefined : String(m.messageID),
    messageSeq: m.messageSeq,
    clientSeq: m.clientSeq,
    clientMsgNo: m.clientMsgNo,
    fromUID: m.fromUID,
    channelID: m.channel?.channelID,
    channelType: m.channel?.channelType,
    timestamp: m.timestamp,
    contentType: m.contentType ?? m.content?.contentType,
    text: m.content?.text,
    reddot: m.header?.reddot,
  };
}

process.on('message', async (msg) => {
  try {
    switch (msg.cmd) {
      case 'connect': {
        sdk.config.addr = msg.addr;
        sdk.config.uid = msg.uid;
        sdk.config.token = msg.token;
        if (msg.heartbeatInterval) sdk.config.heartbeatInterval = msg.heartbeatInterval;
        sdk.connectManager.addConnectStatusListener((status, reasonCode) => emit({ ev: 'status', status, reasonCode }));
        sdk.chatManager.addMessageListener((m) => emit({ ev: 'message', message: messageToPlain(m) }));
        sdk.chatManager.addMessageStatusListener((ack) => emit({
          ev: 'sendack', clientSeq: ack.clientSeq, messageID: String(ack.messageID), messageSeq: ack.messageSeq, reasonCode: ack.reasonCode,
        }));
        sdk.connectManager.connect();
        emit({ ev: 'reply', id: msg.id });
        break;
      }
      case 'send': {
        const m = await sdk.chatManager.send(new MessageText(msg.text), new Channel(msg.channelId, msg.channelType));
        emit({ ev: 'reply', id: msg.id, result: messageToPlain(m) });
        break;
      }
      case 'disconnect': {
        sdk.connectManager.disconnect();
        emit({ ev: 'reply', id: msg.id });
        break;
      }
      case 'exit':
        sdk.connectManager.disconnect();
        setTimeout(() => process.exit(0), 50);
        break;
      default:
        emit({ ev: 'reply', id: msg.id, error: `unknown cmd ${msg.cmd}` });
    }
  } catch (e) {
    emit({ ev: 'reply', id: msg.id, error: String(e?.stack ?? e) });
  }
});

emit({ ev: 'ready' });
