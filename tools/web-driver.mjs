// Drives headless Chromium through its DevTools protocol over
// --remote-debugging-pipe (JSON messages ended by NUL, written to the
// child's fd 3 and read from its fd 4): opens the page, waits until it has
// loaded the model, types the prompt, sets the token count, clicks
// Generate, waits for the end and prints the page's text to stdout (the
// speed line and the page's console to stderr). No npm packages.
//   node tools/web-driver.mjs URL PROMPT [N_PREDICT]
// CHROMIUM: the browser (default /usr/bin/chromium). WEB_TIMEOUT: seconds
// for the whole run (default 120). WEB_SCREENSHOT: a PNG of the page at
// the end is written there. WEB_RUNS: clicks Generate that many times
// (the same text each time; the later runs show the speed once the engine
// has compiled the module's hot functions fully).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, prompt, n = '64'] = process.argv.slice(2);
if (!url || prompt === undefined) {
    console.error('usage: node tools/web-driver.mjs URL PROMPT [N_PREDICT]');
    process.exit(2);
}
const timeoutMs = Number(process.env.WEB_TIMEOUT ?? 120) * 1000;
const runs = Math.max(1, Number(process.env.WEB_RUNS ?? 1));
const profile = mkdtempSync(join(tmpdir(), 'nanollama-chromium-'));
const args = [
    '--headless=new',
    '--remote-debugging-pipe',
    `--user-data-dir=${profile}`,
    '--disable-gpu',
    '--no-first-run',
    '--no-default-browser-check',
    // This machine's network is closed: no background fetches.
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    '--disable-extensions',
    'about:blank',
];
// Chromium refuses to run as root with its sandbox.
if (process.getuid?.() === 0) args.unshift('--no-sandbox');
const browser = spawn(process.env.CHROMIUM ?? '/usr/bin/chromium', args, {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
});
let browserLog = '';
browser.stderr.on('data', (d) => {
    browserLog += d;
});

let done = false;
function finish(code, why) {
    if (done) return;
    done = true;
    if (why) console.error(`web-driver: ${why}`);
    if (code !== 0 && browserLog) console.error(`web-driver: chromium's stderr (tail):\n${browserLog.slice(-2000)}`);
    try {
        send('Browser.close').catch(() => {});
    } catch {}
    setTimeout(() => {
        browser.kill('SIGKILL');
        rmSync(profile, { recursive: true, force: true });
        process.exit(code);
    }, 300);
}
const timer = setTimeout(() => finish(1, `timed out after ${timeoutMs / 1000} s`), timeoutMs);
browser.on('exit', (c, s) => finish(1, `chromium exited (${c ?? s})`));
browser.on('error', (e) => finish(1, `cannot start chromium: ${e.message}`));

// ---- the protocol -----------------------------------------------------------
const toBrowser = browser.stdio[3];
const fromBrowser = browser.stdio[4];
let nextId = 1;
const pending = new Map();
const listeners = [];
let buffered = '';
fromBrowser.on('data', (chunk) => {
    buffered += chunk.toString('utf8');
    let end;
    while ((end = buffered.indexOf('\0')) >= 0) {
        const msg = JSON.parse(buffered.slice(0, end));
        buffered = buffered.slice(end + 1);
        if (msg.id !== undefined && pending.has(msg.id)) {
            const { resolve, reject, method } = pending.get(msg.id);
            pending.delete(msg.id);
            if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
            else resolve(msg.result);
        } else if (msg.method) {
            for (const l of listeners) l(msg);
        }
    }
});

function send(method, params = {}, sessionId) {
    const id = nextId++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject, method });
        toBrowser.write(JSON.stringify(msg) + '\0');
    });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    const page = (method, params) => send(method, params, sessionId);
    const errors = [];
    listeners.push((m) => {
        if (m.sessionId !== sessionId) return;
        if (m.method === 'Runtime.consoleAPICalled') {
            const text = m.params.args.map((a) => a.value ?? a.description ?? '').join(' ');
            console.error(`page console.${m.params.type}: ${text}`);
        } else if (m.method === 'Runtime.exceptionThrown') {
            const d = m.params.exceptionDetails;
            errors.push(d.exception?.description ?? d.text);
            console.error(`page exception: ${d.exception?.description ?? d.text}`);
        }
    });
    await page('Runtime.enable');
    await page('Page.enable');
    const evaluate = async (expression) => {
        const r = await page('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
        if (r.exceptionDetails) throw new Error(`evaluate ${expression}: ${r.exceptionDetails.text}`);
        return r.result.value;
    };
    const waitState = async (want) => {
        for (;;) {
            const s = await evaluate('document.body ? document.body.dataset.state : ""');
            if (s === want) return;
            if (s === 'error' || errors.length) {
                throw new Error(`the page failed: ${await evaluate("document.getElementById('status').textContent")}`);
            }
            await sleep(50);
        }
    };
    await page('Page.navigate', { url });
    await waitState('ready');
    console.error(`page: ${await evaluate("document.getElementById('status').textContent")}`);

    // Type the prompt (replacing the default) and the token count, as a user would.
    await evaluate("(() => { const e = document.getElementById('prompt'); e.focus(); e.select(); })()");
    await page('Input.insertText', { text: prompt });
    await evaluate("(() => { const e = document.getElementById('n'); e.focus(); e.select(); })()");
    await page('Input.insertText', { text: String(n) });
    const typed = await evaluate("[document.getElementById('prompt').value, document.getElementById('n').value]");
    if (typed[0] !== prompt || typed[1] !== String(n)) throw new Error(`typing failed: ${JSON.stringify(typed)}`);

    // Click Generate in the middle of the button.
    const box = await evaluate(
        "(() => { const r = document.getElementById('generate').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()",
    );
    const at = { x: box[0], y: box[1], button: 'left', clickCount: 1 };
    let text;
    for (let run = 0; run < runs; run++) {
        await evaluate("document.body.dataset.state = 'clicked'");
        await page('Input.dispatchMouseEvent', { type: 'mouseMoved', x: at.x, y: at.y });
        await page('Input.dispatchMouseEvent', { type: 'mousePressed', ...at });
        await page('Input.dispatchMouseEvent', { type: 'mouseReleased', ...at });
        await waitState('done');
        const t = await evaluate("document.getElementById('output').textContent");
        if (text !== undefined && t !== text) throw new Error(`run ${run + 1} wrote another text`);
        text = t;
        console.error(`page: ${await evaluate("document.getElementById('speed').textContent")}`);
    }
    if (process.env.WEB_SCREENSHOT) {
        const { data } = await page('Page.captureScreenshot', { format: 'png' });
        writeFileSync(process.env.WEB_SCREENSHOT, Buffer.from(data, 'base64'));
    }
    process.stdout.write(text + '\n');
}

main().then(
    () => {
        clearTimeout(timer);
        finish(0);
    },
    (e) => {
        clearTimeout(timer);
        finish(1, e.message);
    },
);
