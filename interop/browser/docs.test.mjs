// The tutorial's demo, in a real browser: /docs (Swagger UI) served by
// password-bearer with its own copy of Swagger UI, driven in Debian's
// Chromium by playwright-core, with every request outside the server
// refused. Run by ./run.sh, which builds and starts the server; by hand:
//
//   BASE_URL=http://127.0.0.1:PORT node docs.test.mjs
//
// Environment:
//   BASE_URL                      the server (required), http://127.0.0.1:PORT
//   CHROMIUM                      the browser (default /usr/bin/chromium)
//   BROWSER_TEST_SKIP_MULTIPART=1 skip only the FormData login (step 4)
//
// Exits 0 when every step passes, 1 otherwise; on a failure each open page
// is saved (PNG and HTML) into a temporary directory whose path is printed.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BASE = process.env.BASE_URL;
if (!BASE || !/^http:\/\/127\.0\.0\.1:\d+$/.test(BASE)) {
  console.error('docs.test: BASE_URL must be http://127.0.0.1:PORT, got %j', BASE);
  process.exit(2);
}
const ORIGIN = new URL(BASE).origin;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SKIP_MULTIPART = process.env.BROWSER_TEST_SKIP_MULTIPART === '1';

// The flags known to work on these machines: no sandbox (root), no GPU, and
// none of Chromium's own traffic to Google, which the closed network refuses.
// Playwright adds --headless and a fresh temporary --user-data-dir itself
// (it refuses one in `args`), and deletes that profile on close.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const JOHNDOE = {
  username: 'johndoe',
  email: 'johndoe@example.com',
  full_name: 'John Doe',
  disabled: false,
};
const WRONG_PASSWORD_BODY = {
  detail: 'Incorrect username or password',
  error: 'invalid_grant',
  error_description: 'Incorrect username or password',
};
// What Swagger UI 5 (swagger-ui-dist 5.35.0) writes for a token endpoint
// that answers 400 with RFC 6749 fields: the status text, then `error` and
// `error_description` from the body (src/core/plugins/auth/actions.js,
// authorizeRequest). It ignores FastAPI's `detail`.
const WRONG_PASSWORD_SHOWN =
  'Error: Bad Request, error: invalid_grant, description: Incorrect username or password';

// Generous for a loaded 2-core CI machine; nothing waits this long when
// things work (waits are on elements and responses, never on the clock).
const TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------------------
// Step 1, throughout: every request any page makes is seen here. Requests to
// the server go through; anything else is aborted and recorded.

const seen = []; // every request: {url, allowed}
const outside = []; // requests aborted because they left the server
const websockets = [];

async function guardedContext(browser) {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT_MS);
  await context.route('**/*', async (route) => {
    const request = route.request();
    const url = request.url();
    let allowed = false;
    try {
      allowed = new URL(url).origin === ORIGIN;
    } catch {
      allowed = false;
    }
    seen.push({ url, allowed });
    if (allowed) {
      await route.continue();
    } else {
      outside.push(`${request.method()} ${url}`);
      await route.abort('blockedbyclient');
    }
  });
  context.on('page', (page) => {
    page.on('websocket', (ws) => websockets.push(ws.url()));
  });
  return context;
}

// ---------------------------------------------------------------------------
// Swagger UI, through its own classes, ids and labels.

async function openDocs(page) {
  const response = await page.goto(`${BASE}/docs`);
  assert.equal(response.status(), 200, 'GET /docs');
  assert.equal(
    await page.evaluate(() => typeof SwaggerUIBundle),
    'function',
    "Swagger UI's bundle did not load from the server",
  );
  // Rendered from /openapi.json: the title and GET /users/me.
  await page.locator('.information-container .title').waitFor();
  await page.locator('.opblock-summary-path[data-path="/users/me"]').waitFor();
}

// A response (or request) to wait for, armed before the click that causes
// it. Should the step fail before awaiting it, its later rejection (the
// context closing) must not end the whole run as an unhandled rejection.
function armed(promise) {
  promise.catch(() => {});
  return promise;
}

// Opens the Authorize dialog and submits the password flow's form; returns
// the dialog and the /token response it caused.
async function authorizeWith(page, username, password) {
  await page.locator('.auth-wrapper button.authorize').click();
  const dialog = page.locator('.dialog-ux .modal-ux');
  await dialog.waitFor();
  await dialog.locator('h4', { hasText: 'OAuth2PasswordBearer (OAuth2, password)' }).waitFor();
  await dialog.locator('#oauth_username').fill(username);
  await dialog.locator('#oauth_password').fill(password);
  const tokenResponse = armed(page.waitForResponse(
    (r) => r.url() === `${ORIGIN}/token` && r.request().method() === 'POST',
  ));
  await dialog.getByRole('button', { name: 'Apply given OAuth2 credentials' }).click();
  return { dialog, response: await tokenResponse };
}

function formOf(request) {
  assert.match(
    request.headers()['content-type'] ?? '',
    /^application\/x-www-form-urlencoded/,
    'Swagger UI posts the password grant form-encoded',
  );
  return new URLSearchParams(request.postData() ?? '');
}

// ---------------------------------------------------------------------------
// The steps.

async function guardSelfCheck(context) {
  // The guard must catch a request that leaves the server, or its empty
  // record proves nothing. Taken back out of the record afterwards.
  const page = await context.newPage();
  await page.goto(`${BASE}/healthz`);
  const before = outside.length;
  const result = await page.evaluate(() =>
    fetch('http://192.0.2.1/probe').then(
      () => 'fetched',
      () => 'refused',
    ),
  );
  assert.equal(result, 'refused');
  assert.deepEqual(outside.splice(before), ['GET http://192.0.2.1/probe']);
  seen.splice(seen.findIndex((r) => r.url === 'http://192.0.2.1/probe'), 1);
}

async function authorizeThenTryItOut(context) {
  const page = await context.newPage();
  await openDocs(page);

  // Authorize: johndoe / secret in the password flow dialog.
  const { dialog, response } = await authorizeWith(page, 'johndoe', 'secret');
  const form = formOf(response.request());
  assert.equal(form.get('grant_type'), 'password');
  assert.equal(form.get('username'), 'johndoe');
  assert.equal(form.get('password'), 'secret');
  assert.equal(response.status(), 200, `POST /token: ${await response.text()}`);
  const token = await response.json();
  assert.equal(token.token_type, 'bearer');
  assert.match(token.access_token, /^[\w-]+\.[\w-]+\.[\w-]+$/);

  // The dialog says so, and offers Logout; close it.
  await dialog.locator('h6', { hasText: 'Authorized' }).waitFor();
  await dialog.getByRole('button', { name: 'Remove authorization' }).waitFor();
  assert.equal(await dialog.locator('.errors').count(), 0, 'no error in the dialog');
  await dialog.locator('button.btn-done').click();
  await dialog.waitFor({ state: 'detached' });
  await page.locator('.auth-wrapper button.authorize.locked').waitFor();

  // GET /users/me: expand, Try it out, Execute.
  const op = page.locator('.opblock.opblock-get').filter({
    has: page.locator('.opblock-summary-path[data-path="/users/me"]'),
  });
  await op.locator('button.opblock-summary-control').click();
  await op.locator('button.try-out__btn').click();
  const meResponse = armed(page.waitForResponse(
    (r) => r.url() === `${ORIGIN}/users/me` && r.request().method() === 'GET',
  ));
  await op.locator('button.execute').click();
  const me = await meResponse;
  assert.equal(
    me.request().headers()['authorization'],
    `Bearer ${token.access_token}`,
    'Swagger UI sends the token it was given',
  );
  assert.equal(me.status(), 200, `GET /users/me: ${await me.text()}`);

  // What Swagger UI shows as the live response.
  const live = op.locator('.live-responses-table tbody tr.response');
  await live.waitFor();
  assert.equal((await live.locator('td.response-col_status').innerText()).trim(), '200');
  const shownBody = await live.locator('.response-col_description .highlight-code pre').innerText();
  assert.deepEqual(JSON.parse(shownBody), JOHNDOE, 'the response body Swagger UI shows');
  assert.deepEqual(await me.json(), JOHNDOE, 'the response body on the wire');
  assert.equal(
    (await op.locator('.request-url pre').innerText()).trim(),
    `${ORIGIN}/users/me`,
  );
}

async function wrongPassword(context) {
  const page = await context.newPage();
  await openDocs(page);

  const { dialog, response } = await authorizeWith(page, 'johndoe', 'not-the-password');
  assert.equal(response.status(), 400);
  assert.deepEqual(await response.json(), WRONG_PASSWORD_BODY, 'POST /token body on the wire');

  // Swagger UI shows the error in the dialog (and in its errors panel),
  // and stays unauthorized.
  const error = dialog.locator('.errors');
  await error.waitFor();
  assert.equal((await error.locator('b').innerText()).toLowerCase(), 'auth error');
  assert.equal((await error.locator('span').innerText()).trim(), WRONG_PASSWORD_SHOWN);
  const panel = page.locator('.errors-wrapper');
  await panel.waitFor();
  assert.ok(
    (await panel.innerText()).includes(WRONG_PASSWORD_SHOWN),
    'the errors panel shows the same message',
  );
  assert.equal(await dialog.locator('h6', { hasText: 'Authorized' }).count(), 0);
  await dialog.locator('button.btn-done').click();
  await page.locator('.auth-wrapper button.authorize.unlocked').waitFor();
}

// POST /token's request body is one of two forms (OpenAPI `oneOf`): the
// password grant or the refresh grant. Swagger UI shows such a body as a
// JSON value to edit, and sends it form-encoded.
async function tryOutBothGrants(context) {
  const page = await context.newPage();
  await openDocs(page);
  const op = page.locator('.opblock.opblock-post').filter({
    has: page.locator('.opblock-summary-path[data-path="/token"]'),
  });
  await op.locator('button.opblock-summary-control').click();
  await op.locator('button.try-out__btn').click();
  const execute = async (body) => {
    await op.locator('textarea.body-param__text').fill(JSON.stringify(body));
    const response = armed(page.waitForResponse(
      (r) => r.url() === `${ORIGIN}/token` && r.request().method() === 'POST',
    ));
    await op.locator('button.execute').click();
    const answered = await response;
    const form = formOf(answered.request());
    assert.deepEqual(Object.fromEntries(form), body, 'the form Swagger UI sent');
    assert.equal(answered.status(), 200, `POST /token: ${await answered.text()}`);
    return answered.json();
  };

  const login = await execute({ username: 'johndoe', password: 'secret' });
  assert.equal(login.token_type, 'bearer');
  assert.match(login.refresh_token, /^[\w-]+$/, 'sessions are on: a refresh token');
  const refreshed = await execute({
    grant_type: 'refresh_token',
    refresh_token: login.refresh_token,
  });
  assert.match(refreshed.access_token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  assert.notEqual(refreshed.refresh_token, login.refresh_token, 'rotated');
  // The live response shown is the refresh's.
  const live = op.locator('.live-responses-table tbody tr.response');
  await live.waitFor();
  assert.equal((await live.locator('td.response-col_status').innerText()).trim(), '200');
  const shown = JSON.parse(
    await live.locator('.response-col_description .highlight-code pre').innerText(),
  );
  assert.equal(shown.refresh_token, refreshed.refresh_token);
}

async function formDataLogin(context) {
  const page = await context.newPage();
  await page.goto(`${BASE}/docs`);
  const sent = armed(page.waitForRequest((r) => r.url() === `${ORIGIN}/token`));
  const [status, text] = await page.evaluate(async () => {
    const fd = new FormData();
    fd.append('username', 'johndoe');
    fd.append('password', 'secret');
    const r = await fetch('/token', { method: 'POST', body: fd });
    return [r.status, await r.text()];
  });
  assert.match(
    (await sent).headers()['content-type'] ?? '',
    /^multipart\/form-data; boundary=/,
    'the browser sent multipart/form-data',
  );
  assert.equal(status, 200, `multipart POST /token answered ${status}: ${text}`);
  const body = JSON.parse(text);
  assert.equal(body.token_type, 'bearer');
  assert.match(body.access_token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
}

// ---------------------------------------------------------------------------

let artifacts = null;
async function saveFailure(step, pages) {
  artifacts ??= fs.mkdtempSync(path.join(os.tmpdir(), 'password-bearer-browser-'));
  for (const [i, page] of pages.entries()) {
    const stem = path.join(artifacts, `${step}-${i}`);
    try {
      await page.screenshot({ path: `${stem}.png`, fullPage: true, timeout: 5_000 });
      fs.writeFileSync(`${stem}.html`, await page.content());
      console.log(`  saved ${stem}.png and .html`);
    } catch (e) {
      console.log(`  could not save ${stem}: ${e.message}`);
    }
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
  const failures = [];
  // Each step in a fresh context (its own storage: nothing Swagger UI
  // remembers carries over), behind the request guard; on a failure its
  // pages are saved before the context closes.
  const run = async (name, step) => {
    const started = Date.now();
    const context = step.length ? await guardedContext(browser) : null;
    try {
      await step(context);
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failures.push(name);
      console.log(`FAIL ${name} (${Date.now() - started} ms)`);
      console.log(`  ${(e.stack ?? String(e)).split('\n').join('\n  ')}`);
      if (context) await saveFailure(name.replace(/\W+/g, '-'), context.pages());
    } finally {
      await context?.close();
    }
  };
  try {
    console.log(`browser ${browser.version()}, server ${BASE}`);
    await run('0 the request guard refuses a request that leaves the server', guardSelfCheck);
    await run('2 /docs: Authorize johndoe, Try it out GET /users/me -> 200', authorizeThenTryItOut);
    await run('3 /docs: Authorize with a wrong password shows invalid_grant', wrongPassword);
    if (SKIP_MULTIPART) {
      console.log('skip 4 FormData (multipart/form-data) login (BROWSER_TEST_SKIP_MULTIPART=1)');
    } else {
      await run('4 FormData (multipart/form-data) login -> 200', formDataLogin);
    }
    await run('5 /docs: Try it out POST /token, password then refresh grant -> 200', tryOutBothGrants);
    await run('1 every request the pages made went to the server, none elsewhere', async () => {
      assert.deepEqual(outside, [], 'requests that left the server');
      assert.deepEqual(websockets, [], 'websockets');
      for (const asset of ['/docs/swagger-ui-bundle.js', '/docs/swagger-ui.css', '/openapi.json']) {
        assert.ok(
          seen.some((r) => r.url === `${ORIGIN}${asset}`),
          `the page loaded ${asset} from the server`,
        );
      }
      assert.ok(seen.every((r) => r.allowed));
      console.log(`     ${seen.length} requests, all to ${ORIGIN}`);
    });
  } finally {
    await browser.close();
  }
  if (artifacts) console.log(`failure screenshots: ${artifacts}`);
  if (failures.length) {
    console.log(`${failures.length} step(s) failed: ${failures.join('; ')}`);
    process.exit(1);
  }
  console.log('all steps passed');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
