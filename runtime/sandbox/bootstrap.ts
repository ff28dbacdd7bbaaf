/**
 * The script that turns a fresh isolate context into a function runtime. It receives the host
 * bridge as References, keeps them in a closure (user code never sees them), builds `ctx` and
 * `ctx.imp` for each invocation, validates input with the function's zod schema, and returns a
 * JSON string. Everything crossing the boundary is JSON text: no object of either side is shared.
 */
export const bootstrapSource = String.raw`
(function (bridge, limits) {
  'use strict';
  const callHost = (name, args) => bridge.apply(undefined, [name, args], { arguments: { copy: true }, result: { promise: true, copy: true } });
  const logHost = (invocationId, level, message) => bridge.apply(undefined, ['log', [invocationId, level, message]], { arguments: { copy: true } }).catch(() => {});
  const progressHost = (invocationId, progress, total, message) => bridge.apply(undefined, ['progress', [invocationId, progress, total, message]], { arguments: { copy: true } }).catch(() => {});
  const stringify = (value) => {
    if (typeof value === 'string') return value;
    try { return JSON.stringify(value); } catch { return String(value); }
  };
  const format = (parts) => parts.map(stringify).join(' ').slice(0, limits.maxLogLineLength);

  // Several invocations of one function may be in flight in this context at once. ctx's own
  // APIs know their invocation; the globals (console, fetch, setTimeout) use the one that is
  // running now. JS has no async context here, so "now" is set wherever this context is
  // resumed: a new invocation, a host call's answer (db, fetch, invoke, sleep) and a timer. That
  // is exact except for a promise shared by several invocations (e.g. a module-level cache).
  const active = new Set();
  let current = null;
  const resumeAs = (invocationId) => { if (active.has(invocationId)) current = invocationId; };
  const running = () => (active.has(current) ? current : [...active].at(-1) ?? null);
  const consoleFor = (invocationId) => {
    const at = (level) => (...parts) => logHost(invocationId ?? running(), level, format(parts));
    return Object.freeze({ log: at('info'), info: at('info'), debug: at('debug'), warn: at('warn'), error: at('error') });
  };
  Object.defineProperty(globalThis, 'console', { value: consoleFor(null), writable: false, configurable: false });

  class FunctionError extends Error {
    constructor(status, message, code) { super(message); this.status = status; this.code = code; }
  }
  Object.defineProperty(globalThis, 'FunctionError', { value: FunctionError, writable: false, configurable: false });

  const hostResult = async (name, args) => {
    let text;
    try { text = await callHost(name, args); } finally { resumeAs(args[0]); }
    const reply = JSON.parse(text);
    if (reply.error) throw new FunctionError(reply.error.status ?? 500, reply.error.message, reply.error.code);
    return reply.value;
  };

  const collectionFor = (invocationId, name) => {
    const op = (operation) => (...args) => hostResult('db', [invocationId, operation, String(name), JSON.stringify(args)]);
    return Object.freeze({
      find: (filter = {}, options = {}) => {
        const run = op('find');
        const query = { filter, options: { ...options } };
        const cursor = {
          sort(spec) { query.options.sort = spec; return cursor; },
          limit(n) { query.options.limit = n; return cursor; },
          skip(n) { query.options.skip = n; return cursor; },
          project(spec) { query.options.projection = spec; return cursor; },
          toArray() { return run(query.filter, query.options); },
          then(resolve, reject) { return cursor.toArray().then(resolve, reject); },
        };
        return cursor;
      },
      findOne: op('findOne'),
      insertOne: op('insertOne'),
      insertMany: op('insertMany'),
      updateOne: op('updateOne'),
      updateMany: op('updateMany'),
      replaceOne: op('replaceOne'),
      deleteOne: op('deleteOne'),
      deleteMany: op('deleteMany'),
      countDocuments: op('countDocuments'),
      findOneAndUpdate: op('findOneAndUpdate'),
    });
  };

  const responseFromFetch = (reply) => {
    const headers = new Map(reply.headers.map(([key, value]) => [key.toLowerCase(), value]));
    const text = reply.bodyBase64 !== undefined ? null : reply.body;
    return Object.freeze({
      ok: reply.status >= 200 && reply.status < 300,
      status: reply.status,
      statusText: reply.statusText,
      url: reply.url,
      headers: Object.freeze({ get: (key) => headers.get(String(key).toLowerCase()) ?? null, has: (key) => headers.has(String(key).toLowerCase()), entries: () => headers.entries() }),
      text: async () => text ?? reply.bodyBase64,
      json: async () => JSON.parse(text ?? ''),
    });
  };

  const normalizeHeaders = (headers) => {
    if (!headers) return [];
    if (Array.isArray(headers)) return headers.map(([key, value]) => [String(key), String(value)]);
    if (typeof headers.entries === 'function' && !(headers.constructor === Object)) return [...headers.entries()].map(([key, value]) => [String(key), String(value)]);
    return Object.entries(headers).map(([key, value]) => [String(key), String(value)]);
  };

  const fetchFor = (invocationId) => async (resource, init = {}) => {
    const url = typeof resource === 'string' ? resource : String(resource && resource.url ? resource.url : resource);
    let body = init.body;
    if (body !== undefined && body !== null && typeof body !== 'string') body = JSON.stringify(body);
    const request = { url, method: String(init.method ?? 'GET').toUpperCase(), headers: normalizeHeaders(init.headers), body: body ?? undefined };
    return responseFromFetch(await hostResult('fetch', [invocationId, JSON.stringify(request)]));
  };

  const deepFreeze = (value) => {
    if (value && typeof value === 'object') { Object.freeze(value); for (const inner of Object.values(value)) deepFreeze(inner); }
    return value;
  };

  // Outside ctx (a module-level helper calling fetch), the running invocation is the caller.
  globalThis.fetch = (resource, init) => fetchFor(running())(resource, init);

  // Timers run on the host clock and end with the invocations of this context: one whose
  // invocation ended while others go on is moved to one of those (the attribution may have
  // been wrong, the timer is still wanted); with none left, it is dropped.
  let nextTimer = 1;
  const cancelled = new Set();
  const setTimer = (callback, ms, args) => {
    const handle = nextTimer++;
    const due = Date.now() + Math.max(0, Number(ms) || 0);
    const arm = (owner) => {
      hostResult('sleep', [owner, Math.max(0, due - Date.now())]).then(() => {
        if (cancelled.delete(handle)) return;
        current = owner;
        if (typeof callback === 'function') callback(...args);
      }, () => {
        if (!cancelled.has(handle) && !active.has(owner) && active.size > 0) return arm(running());
        cancelled.delete(handle);
      });
    };
    arm(running());
    return handle;
  };
  globalThis.setTimeout = (callback, ms, ...args) => setTimer(callback, ms, args);
  globalThis.clearTimeout = (handle) => { cancelled.add(handle); };

  const run = async (invocationText) => {
    const invocation = JSON.parse(invocationText);
    const id = invocation.id;
    active.add(id);
    current = id;
    try {
      return await invoke(invocation, id);
    } finally {
      active.delete(id);
    }
  };

  const invoke = async (invocation, id) => {
    const module = globalThis.__imprun_module ?? {};
    const response = { status: 200, headers: {} };
    const log = consoleFor(id);
    let input = invocation.input;
    if (module.input && typeof module.input.safeParse === 'function') {
      const parsed = await module.input.safeParseAsync(input);
      if (!parsed.success) {
        return JSON.stringify({ kind: 'invalid_input', issues: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message, code: issue.code })) });
      }
      input = parsed.data;
    }
    const ctx = Object.freeze({
      input,
      request: deepFreeze(invocation.request),
      env: deepFreeze(invocation.env),
      gateway: invocation.gatewayId,
      stage: invocation.stage,
      function: invocation.functionName,
      requestId: invocation.requestId,
      log,
      progress(progress, total, message) {
        if (typeof progress !== 'number' || !Number.isFinite(progress)) throw new FunctionError(500, 'progress needs a number: ctx.progress(done, total?, message?)', 'invalid_progress');
        progressHost(id, progress, typeof total === 'number' && Number.isFinite(total) ? total : null, message === undefined ? null : String(message));
      },
      setStatus(code) {
        if (!Number.isInteger(code) || code < 100 || code > 599) throw new FunctionError(500, 'setStatus needs an HTTP status code from 100 to 599', 'invalid_status');
        response.status = code;
      },
      setHeader(key, value) { response.headers[String(key).toLowerCase()] = String(value); },
      fail(status, message) { throw new FunctionError(status, message, 'function_error'); },
      imp: Object.freeze({
        db: () => Object.freeze({ collection: (name) => collectionFor(id, name) }),
        fetch: fetchFor(id),
        invoke: (name, input) => hostResult('invoke', [id, String(name), JSON.stringify(input ?? {})]),
        log,
      }),
      fetch: fetchFor(id),
    });
    try {
      let value = await module.default(ctx);
      if (value !== undefined && module.output && typeof module.output.safeParse === 'function') {
        const checked = await module.output.safeParseAsync(value);
        if (!checked.success) {
          return JSON.stringify({ kind: 'invalid_output', issues: checked.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })) });
        }
        value = checked.data;
      }
      const text = JSON.stringify({ kind: 'ok', status: response.status, headers: response.headers, value: value === undefined ? null : value, empty: value === undefined });
      if (text.length > limits.maxResponseLength) {
        return JSON.stringify({ kind: 'response_too_large', size: text.length });
      }
      return text;
    } catch (error) {
      const status = error && Number.isInteger(error.status) && error.status >= 400 && error.status <= 599 ? error.status : 500;
      const message = error && typeof error.message === 'string' ? error.message : String(error);
      return JSON.stringify({ kind: 'error', status, code: error && typeof error.code === 'string' ? error.code : undefined, message: message.slice(0, 2000), stack: error && typeof error.stack === 'string' ? error.stack.slice(0, 4000) : undefined });
    }
  };
  return run;
})
`
