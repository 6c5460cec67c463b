"""
How funcplane hands a child an event that is not an HTTP request (a cron trigger's
C{scheduled} event), without C{--experimental} and without a function host being able to
send one.

Each child that can take such events listens on a second socket, C{events}: a unix
socket made by funcplane beside the child's HTTP socket, in the same 0700 run directory
(L{events_socket_path}), handed to workerd with C{--socket-fd} like the first.  Only
funcplane can connect to it; the edge never does (it connects to the HTTP socket only),
and nothing in a function can reach a unix socket.  A request on it is the event: a
C{POST} whose JSON body is C{{"cron", "scheduledTime"}}, answered with the outcome as JSON
(C{{"outcome": "ok"}}, C{{"outcome": "exception", "error": {"name", "message",
"stack"}}} or C{{"outcome": "noHandler", "message"}}).

  - An ES-module version: the socket names an entrypoint of funcplane's entry module
    (L{ENTRYPOINT}, a plain object with a C{fetch}), which calls the default export's
    C{scheduled(controller, env, ctx)} (an object handler) or constructs the default export
    and calls its C{scheduled(controller)} (a class, as a C{WorkerEntrypoint} is), then
    waits for the promises given to C{ctx.waitUntil}.  The version's own fetch path is
    untouched: its public socket still names the default export.
  - A service-worker version has one entrypoint only.  The events socket adds the header
    L{HEADER} to each request it takes (workerd's C{injectRequestHeaders}); the public
    socket removes that header from every client request (the same option with a null
    value), so a request carries it only if it came in on the events socket.  funcplane's
    first fetch listener (registered before the script's own) answers those requests by
    calling the C{scheduled} listeners, and stops the event there; every other request goes
    on to the script's listeners as before.

The JavaScript here is funcplane's own; nothing a user sends reaches its text.
"""

from funcplane.model import MODULE

SOCKET_NAME = "events"
ENTRYPOINT = "__funcplane_events"
HEADER = "x-funcplane-event"
HEADER_VALUE = "scheduled"
EVENTS_FD = 6
_SUFFIX = ".events.sock"


def events_socket_path(socket_path):
    """
    The events socket of the child whose HTTP socket is C{socket_path} (C{<id>.sock}):
    C{<id>.events.sock}, beside it.
    """
    return socket_path.removesuffix(".sock") + _SUFFIX


def takes_events(spec):
    """
    Whether a child of C{spec} has an events socket: a service-worker script, or modules
    whose main module is an ES module (funcplane's entry module wraps it).  A CommonJS main
    module has no entry module to carry the entrypoint.
    """
    return spec.format != MODULE or spec.modules[0].kind == "esModule"


# What a scheduled run does, shared by both formats: `call(controller, context)` runs the
# handler and returns what it returned; the promises given to waitUntil are awaited too
# (including those added while waiting), and the first failure is the run's.
_RUN = (
    "async function __funcplane_run(body, call) {"
    " const pending = [];"
    " const controller = { cron: String(body.cron), scheduledTime: Number(body.scheduledTime),"
    " type: 'scheduled', noRetry() {} };"
    " const describe = (error) => (error !== null && typeof error === 'object')"
    " ? { name: String(error.name || 'Error'), message: String(error.message ?? ''),"
    " stack: String(error.stack || '') }"
    " : { name: 'Error', message: String(error), stack: '' };"
    " let outcome;"
    " try { outcome = await call(controller, (promise) => { pending.push(Promise.resolve(promise)); });"
    " for (let done = 0; done < pending.length;) { const batch = pending.slice(done);"
    " done = pending.length; const settled = await Promise.allSettled(batch);"
    " const failed = settled.find((s) => s.status === 'rejected'); if (failed) throw failed.reason; }"
    " } catch (error) { outcome = { outcome: 'exception', error: describe(error) }; }"
    " return new Response(JSON.stringify(outcome || { outcome: 'ok' }),"
    " { headers: { 'content-type': 'application/json' } }); }"
)
_NO_HANDLER = (
    "{ outcome: 'noHandler', message: 'the version has no scheduled handler: ' + {how} }"
)

# Appended to funcplane's entry module, where `handler` is the main module's default export
# (checked to have a fetch handler above it).  The context given to the handler is the
# request's own, but for waitUntil, which funcplane waits for before it answers.
ENTRY_SOURCE = (
    "\n" + _RUN + "\n"
    "export const " + ENTRYPOINT + " = { async fetch(request, env, ctx) {"
    " const body = await request.json();"
    " return __funcplane_run(body, async (controller, wait) => {"
    " const context = new Proxy(ctx, { get(target, key) {"
    " if (key === 'waitUntil') return wait;"
    " const value = Reflect.get(target, key); return typeof value === 'function' ? value.bind(target) : value; } });"
    " if (typeof handler === 'function' && handler.prototype && typeof handler.prototype.scheduled === 'function') {"
    " const instance = new handler(context, env);"
    " await instance.scheduled(controller); return undefined; }"
    " if (typeof handler.scheduled === 'function') { await handler.scheduled(controller, env, context); return undefined; }"
    " return " + _NO_HANDLER.replace(
        "{how}", "\"its default export must have a scheduled(controller, env, ctx) method\""
    ) + "; }); } };\n"
)

# Put before funcplane's service-worker prologue, on the script's first line (so that no
# line number of the script moves): it keeps the original addEventListener for its own
# fetch listener, registered first, and keeps the script's scheduled listeners.
WORKER_PROLOGUE = (
    "const __funcplane_scheduled = [];"
    + _RUN
    + " { const add = globalThis.addEventListener;"
    " add.call(globalThis, 'fetch', (event) => {"
    " const request = event.request;"
    " if (request.method !== 'POST' || request.headers.get('" + HEADER + "') !== '" + HEADER_VALUE + "') return;"
    " event.stopImmediatePropagation();"
    " event.respondWith(event.request.json().then((body) => __funcplane_run(body, async (controller, wait) => {"
    " if (__funcplane_scheduled.length === 0) return "
    + _NO_HANDLER.replace(
        "{how}", "\"it registers no scheduled listener: add addEventListener('scheduled', event => ...)\""
    )
    + ";"
    " const event = { type: 'scheduled', cron: controller.cron, scheduledTime: controller.scheduledTime,"
    " noRetry() {}, waitUntil: wait };"
    " for (const listener of __funcplane_scheduled) {"
    " if (typeof listener === 'function') listener.call(globalThis, event);"
    " else if (listener && typeof listener.handleEvent === 'function') listener.handleEvent(event); }"
    " return undefined; }))); });"
    " globalThis.addEventListener = function (type, listener, ...rest) {"
    " if (type === 'scheduled') { __funcplane_scheduled.push(listener); return undefined; }"
    " return add.call(this, type, listener, ...rest); }; }"
)
