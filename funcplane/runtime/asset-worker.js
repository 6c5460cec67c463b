// funcplane's asset worker: serves a version's static assets inside its workerd, as
// Cloudflare's router worker and asset worker do. Ported from cloudflare/workers-sdk,
// packages/workers-shared (MIT OR Apache-2.0): router-worker/src/worker.ts,
// asset-worker/src/handler.ts, asset-worker/src/utils/{headers,rules-engine}.ts and
// utils/configuration/{parseRedirects,parseHeaders,validateURL,constructConfiguration}.ts.
// Kept close to them on purpose, so that a change upstream is easy to follow here.
//
// What funcplane gives it (funcplane/runtime/assets.py):
//   env.MANIFEST  json: {"/path": [hash, size, content type or null], ...}
//   env.CONFIG    json: html_handling, not_found_handling, run_worker_first,
//                 has_user_worker, compatibility_date, compatibility_flags, and the
//                 _redirects and _headers files' text (parsed here, as Cloudflare does)
//   env.STORE     the content-addressed store (a read-only disk service): /<2 hex>/<hash>
//   env.USER      the user's worker (absent for an assets-only version)
// The default export is the router (the version's socket points at it); the export
// `binding` serves assets only, and is what the user's env.ASSETS names.
//
// Beyond the asset worker, which leaves them to Cloudflare's edge: a single byte Range of
// an asset (206, or 416 when it is past the end); several ranges get the whole file.

const REDIRECTS_VERSION = 1;
const HEADERS_VERSION = 2;
const PERMITTED_STATUS_CODES = new Set([200, 301, 302, 303, 307, 308]);
const HEADER_SEPARATOR = ":";
const MAX_LINE_LENGTH = 2000;
const MAX_HEADER_RULES = 100;
const MAX_DYNAMIC_REDIRECT_RULES = 100;
const MAX_STATIC_REDIRECT_RULES = 2000;
const UNSET_OPERATOR = "! ";
const SPLAT_REGEX = /\*/g;
const PLACEHOLDER_REGEX_CONFIG = /:[A-Za-z]\w*/g;
const CACHE_CONTROL_BROWSER = "public, max-age=0, must-revalidate";
const NAVIGATION_FLAG = {
  enable: "assets_navigation_prefers_asset_serving",
  disable: "assets_navigation_has_no_effect",
  onByDefaultAfter: "2025-04-01",
};

// ---------------------------------------------------------------- validateURL.ts
const extractPathname = (path = "/", includeSearch, includeHash) => {
  if (!path.startsWith("/")) {
    path = `/${path}`;
  }
  const url = new URL(`//${path}`, "relative://");
  return `${url.pathname}${includeSearch ? url.search : ""}${includeHash ? url.hash : ""}`;
};
const URL_REGEX = /^https:\/\/+(?<host>[^/]+)\/?(?<path>.*)/;
const HOST_WITH_PORT_REGEX = /.*:\d+$/;
const PATH_REGEX = /^\//;

const validateUrl = (token, onlyRelative = false, disallowPorts = false, includeSearch = false, includeHash = false) => {
  const host = URL_REGEX.exec(token);
  if (host && host.groups && host.groups.host) {
    if (onlyRelative) {
      return [undefined, `Only relative URLs are allowed. Skipping absolute URL ${token}.`];
    }
    if (disallowPorts && host.groups.host.match(HOST_WITH_PORT_REGEX)) {
      return [undefined, `Specifying ports is not supported. Skipping absolute URL ${token}.`];
    }
    return [`https://${host.groups.host}${extractPathname(host.groups.path, includeSearch, includeHash)}`, undefined];
  } else {
    if (!token.startsWith("/") && onlyRelative) {
      token = `/${token}`;
    }
    const path = PATH_REGEX.exec(token);
    if (path) {
      try {
        return [extractPathname(token, includeSearch, includeHash), undefined];
      } catch {
        return [undefined, `Error parsing URL segment ${token}. Skipping.`];
      }
    }
  }
  return [
    undefined,
    onlyRelative
      ? "URLs should begin with a forward-slash."
      : 'URLs should either be relative (e.g. begin with a forward-slash), or use HTTPS (e.g. begin with "https://").',
  ];
};

function urlHasHost(token) {
  const host = URL_REGEX.exec(token);
  return Boolean(host && host.groups && host.groups.host);
}

// ---------------------------------------------------------------- parseRedirects.ts
function parseRedirects(input, { htmlHandling = undefined } = {}) {
  const lines = input.split("\n");
  const rules = [];
  const seen_paths = new Set();
  const invalid = [];
  let staticRules = 0;
  let dynamicRules = 0;
  let canCreateStaticRule = true;
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] || "").trim();
    if (line.length === 0 || line.startsWith("#")) {
      continue;
    }
    if (line.length > MAX_LINE_LENGTH) {
      invalid.push({ message: `Ignoring line ${i + 1} as it exceeds the maximum allowed length of ${MAX_LINE_LENGTH}.` });
      continue;
    }
    const tokens = line.replace(/\s+#.*$/, "").split(/\s+/);
    if (tokens.length < 2 || tokens.length > 3) {
      invalid.push({ line, lineNumber: i + 1, message: `Expected exactly 2 or 3 whitespace-separated tokens. Got ${tokens.length}.` });
      continue;
    }
    const [str_from, str_to, str_status = "302"] = tokens;
    const fromResult = validateUrl(str_from, true, true, false, false);
    if (fromResult[0] === undefined) {
      invalid.push({ line, lineNumber: i + 1, message: fromResult[1] });
      continue;
    }
    const from = fromResult[0];
    if (canCreateStaticRule && !from.match(SPLAT_REGEX) && !from.match(PLACEHOLDER_REGEX_CONFIG)) {
      staticRules += 1;
      if (staticRules > MAX_STATIC_REDIRECT_RULES) {
        invalid.push({ message: `Maximum number of static rules supported is ${MAX_STATIC_REDIRECT_RULES}. Skipping line.` });
        continue;
      }
    } else {
      dynamicRules += 1;
      canCreateStaticRule = false;
      if (dynamicRules > MAX_DYNAMIC_REDIRECT_RULES) {
        invalid.push({ message: `Maximum number of dynamic rules supported is ${MAX_DYNAMIC_REDIRECT_RULES}. Skipping remaining ${lines.length - i} lines of file.` });
        break;
      }
    }
    const toResult = validateUrl(str_to, false, false, true, true);
    if (toResult[0] === undefined) {
      invalid.push({ line, lineNumber: i + 1, message: toResult[1] });
      continue;
    }
    const to = toResult[0];
    const status = Number(str_status);
    if (isNaN(status) || !PERMITTED_STATUS_CODES.has(status)) {
      invalid.push({ line, lineNumber: i + 1, message: `Valid status codes are 200, 301, 302 (default), 303, 307, or 308. Got ${str_status}.` });
      continue;
    }
    const hasRelativePath = !urlHasHost(to);
    const hasWildcardToIndex = from.endsWith("/*") && /\/index(.html)?$/.test(to);
    const hasRootToIndex = from.endsWith("/") && /\/index(.html)?$/.test(to);
    const hasHTMLHandling = htmlHandling !== "none";
    if (hasRelativePath && (hasWildcardToIndex || (hasRootToIndex && hasHTMLHandling))) {
      invalid.push({ line, lineNumber: i + 1, message: "Infinite loop detected in this rule and has been ignored. This will cause a redirect to strip `.html` or `/index` and end up triggering this rule again. Please fix or remove this rule to silence this warning." });
      continue;
    }
    if (seen_paths.has(from)) {
      invalid.push({ line, lineNumber: i + 1, message: `Ignoring duplicate rule for path ${from}.` });
      continue;
    }
    seen_paths.add(from);
    if (status === 200) {
      if (urlHasHost(to)) {
        invalid.push({ line, lineNumber: i + 1, message: `Proxy (200) redirects can only point to relative paths. Got ${to}` });
        continue;
      }
    }
    rules.push({ from, to, status, lineNumber: i + 1 });
  }
  return { rules, invalid };
}

// ---------------------------------------------------------------- parseHeaders.ts
const LINE_IS_PROBABLY_A_PATH = new RegExp(/^([^\s]+:\/\/|^\/)/);

function parseHeaders(input) {
  const lines = input.split("\n");
  const rules = [];
  const invalid = [];
  let rule = undefined;
  let skipUntilNextPath = false;
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] || "").trim();
    if (line.length === 0 || line.startsWith("#")) {
      continue;
    }
    if (line.length > MAX_LINE_LENGTH) {
      invalid.push({ message: `Ignoring line ${i + 1} as it exceeds the maximum allowed length of ${MAX_LINE_LENGTH}.` });
      continue;
    }
    if (LINE_IS_PROBABLY_A_PATH.test(line)) {
      skipUntilNextPath = false;
      if (rules.length >= MAX_HEADER_RULES) {
        invalid.push({ message: `Maximum number of rules supported is ${MAX_HEADER_RULES}. Skipping remaining ${lines.length - i} lines of file.` });
        break;
      }
      if (rule) {
        if (isValidRule(rule)) {
          rules.push({ path: rule.path, headers: rule.headers, unsetHeaders: rule.unsetHeaders });
        } else {
          invalid.push({ line: rule.line, lineNumber: i + 1, message: "No headers specified" });
        }
      }
      const [path, pathError] = validateUrl(line, false, true);
      if (pathError) {
        invalid.push({ line, lineNumber: i + 1, message: pathError });
        rule = undefined;
        skipUntilNextPath = true;
        continue;
      }
      const wildcardError = validateNoMultipleWildcards(path);
      if (wildcardError) {
        invalid.push({ line, lineNumber: i + 1, message: wildcardError });
        rule = undefined;
        skipUntilNextPath = true;
        continue;
      }
      rule = { path, line, headers: {}, unsetHeaders: [] };
      continue;
    }
    if (skipUntilNextPath) {
      continue;
    }
    if (!line.includes(HEADER_SEPARATOR)) {
      if (!rule) {
        invalid.push({ line, lineNumber: i + 1, message: "Expected a path beginning with at least one forward-slash" });
      } else {
        if (line.trim().startsWith(UNSET_OPERATOR)) {
          rule.unsetHeaders.push(line.trim().replace(UNSET_OPERATOR, ""));
        } else {
          invalid.push({ line, lineNumber: i + 1, message: "Expected a colon-separated header pair (e.g. name: value)" });
        }
      }
      continue;
    }
    const [rawName, ...rawValue] = line.split(HEADER_SEPARATOR);
    const name = (rawName || "").trim().toLowerCase();
    if (name.includes(" ")) {
      invalid.push({ line, lineNumber: i + 1, message: "Header name cannot include spaces" });
      continue;
    }
    const value = rawValue.join(HEADER_SEPARATOR).trim();
    if (name === "") {
      invalid.push({ line, lineNumber: i + 1, message: "No header name specified" });
      continue;
    }
    if (value === "") {
      invalid.push({ line, lineNumber: i + 1, message: "No header value specified" });
      continue;
    }
    if (!rule) {
      invalid.push({ line, lineNumber: i + 1, message: `Path should come before header (${name}: ${value})` });
      continue;
    }
    const existingValues = rule.headers[name];
    rule.headers[name] = existingValues ? `${existingValues}, ${value}` : value;
  }
  if (rule) {
    if (isValidRule(rule)) {
      rules.push({ path: rule.path, headers: rule.headers, unsetHeaders: rule.unsetHeaders });
    } else {
      invalid.push({ line: rule.line, message: "No headers specified" });
    }
  }
  return { rules, invalid };
}

function isValidRule(rule) {
  return Object.keys(rule.headers).length > 0 || rule.unsetHeaders.length > 0;
}

function validateNoMultipleWildcards(path) {
  const wildcardCount = (path.match(SPLAT_REGEX) ?? []).length;
  const hasSplatPlaceholder = /:splat(?!\w)/.test(path);
  if (wildcardCount > 1) {
    return `Only one wildcard is allowed per rule. Use a named placeholder (e.g. :project) instead. Skipping ${path}.`;
  }
  if (wildcardCount > 0 && hasSplatPlaceholder) {
    return `Cannot combine a wildcard * with a :splat placeholder because wildcards are converted to :splat at runtime. Skipping ${path}.`;
  }
  return undefined;
}

// ---------------------------------------------------------------- constructConfiguration.ts
function constructRedirects(redirects) {
  if (redirects.rules.length === 0) {
    return undefined;
  }
  const staticRules = {};
  const rules = {};
  let canCreateStaticRule = true;
  for (const rule of redirects.rules) {
    if (!rule.from.match(SPLAT_REGEX) && !rule.from.match(PLACEHOLDER_REGEX_CONFIG)) {
      if (canCreateStaticRule) {
        staticRules[rule.from] = { status: rule.status, to: rule.to, lineNumber: rule.lineNumber };
        continue;
      }
    }
    rules[rule.from] = { status: rule.status, to: rule.to };
    canCreateStaticRule = false;
  }
  return { version: REDIRECTS_VERSION, staticRules, rules };
}

function constructHeaders(headers) {
  if (headers.rules.length === 0) {
    return undefined;
  }
  const rules = {};
  for (const rule of headers.rules) {
    const configuredRule = {};
    if (Object.keys(rule.headers).length) {
      configuredRule.set = rule.headers;
    }
    if (rule.unsetHeaders.length) {
      configuredRule.unset = rule.unsetHeaders;
    }
    rules[rule.path] = configuredRule;
  }
  return { version: HEADERS_VERSION, rules };
}

// ---------------------------------------------------------------- rules-engine.ts
const ESCAPE_REGEX_CHARACTERS = /[-/\\^$*+?.()|[\]{}]/g;
const escapeRegex = (str) => str.replace(ESCAPE_REGEX_CHARACTERS, "\\$&");
const HOST_PLACEHOLDER_REGEX = /(?<=^https:\\\/\\\/[^/]*?):([A-Za-z]\w*)(?=\\)/g;
const PLACEHOLDER_REGEX = /:([A-Za-z]\w*)/g;

const replacer = (str, replacements) => {
  for (const [replacement, value] of Object.entries(replacements)) {
    str = str.replaceAll(`:${replacement}`, value);
  }
  return str;
};

const generateGlobOnlyRuleRegExp = (rule) => {
  rule = rule.split("*").map(escapeRegex).join(".*");
  rule = "^" + rule + "$";
  return RegExp(rule);
};

const generateRuleRegExp = (rule) => {
  rule = rule.split("*").map(escapeRegex).join("(?<splat>.*)");
  const host_matches = rule.matchAll(HOST_PLACEHOLDER_REGEX);
  for (const host_match of host_matches) {
    rule = rule.split(host_match[0]).join(`(?<${host_match[1]}>[^/.]+)`);
  }
  const path_matches = rule.matchAll(PLACEHOLDER_REGEX);
  for (const path_match of path_matches) {
    rule = rule.split(path_match[0]).join(`(?<${path_match[1]}>[^/]+)`);
  }
  rule = "^" + rule + "$";
  return RegExp(rule);
};

const generateRulesMatcher = (rules, replacerFn = (match) => match) => {
  if (!rules) {
    return () => [];
  }
  const compiledRules = Object.entries(rules)
    .map(([rule, match]) => {
      const crossHost = rule.startsWith("https://");
      try {
        const regExp = generateRuleRegExp(rule);
        return [{ crossHost, regExp }, match];
      } catch {}
    })
    .filter((value) => value !== undefined);
  return ({ request }) => {
    const { pathname, hostname } = new URL(request.url);
    return compiledRules
      .map(([{ crossHost, regExp }, match]) => {
        const test = crossHost ? `https://${hostname}${pathname}` : pathname;
        const result = regExp.exec(test);
        if (result) {
          return replacerFn(match, result.groups || {});
        }
      })
      .filter((value) => value !== undefined);
  };
};

const staticRedirectsMatcher = (configuration, host, pathname) => {
  const withHostMatch = configuration.redirects.staticRules[`https://${host}${pathname}`];
  const withoutHostMatch = configuration.redirects.staticRules[pathname];
  if (withHostMatch && withoutHostMatch) {
    if (withHostMatch.lineNumber < withoutHostMatch.lineNumber) {
      return withHostMatch;
    } else {
      return withoutHostMatch;
    }
  }
  return withHostMatch || withoutHostMatch;
};

const generateRedirectsMatcher = (configuration) =>
  generateRulesMatcher(
    configuration.redirects.version === REDIRECTS_VERSION ? configuration.redirects.rules : {},
    ({ status, to }, replacements) => {
      const target = replacer(to, replacements).trim();
      const protoPattern = /^(\w+:\/\/)/;
      if (protoPattern.test(target)) {
        return { status, to: target };
      } else {
        return { status, to: target.replace(/\/+/g, "/") };
      }
    }
  );

const generateStaticRoutingRuleMatcher = (rules) => ({ request }) => {
  const { pathname } = new URL(request.url);
  for (const rule of rules) {
    try {
      const regExp = generateGlobOnlyRuleRegExp(rule);
      if (regExp.test(pathname)) {
        return true;
      }
    } catch {}
  }
  return false;
};

// ---------------------------------------------------------------- responses.ts
const redirect = (status, location) => new Response(null, { status, headers: { Location: location } });
class NoIntentResponse extends Response {
  constructor() {
    super(null, { status: 404, statusText: "Not Found" });
  }
}

// ---------------------------------------------------------------- the version's assets
// Parsed once per isolate: the bindings are the same for every request.
let prepared = null;

function prepare(env) {
  if (prepared !== null) {
    return prepared;
  }
  const config = env.CONFIG;
  const manifest = new Map(Object.entries(env.MANIFEST));
  const byHash = new Map();
  for (const [, entry] of manifest) {
    byHash.set(entry[0], entry);
  }
  const flags = [...(config.compatibility_flags ?? [])];
  if (
    (config.compatibility_date ?? "2021-11-02") >= NAVIGATION_FLAG.onByDefaultAfter &&
    !flags.includes(NAVIGATION_FLAG.disable) &&
    !flags.includes(NAVIGATION_FLAG.enable)
  ) {
    flags.push(NAVIGATION_FLAG.enable);
  }
  const html_handling = config.html_handling ?? "auto-trailing-slash";
  const warnings = [];
  const parsedRedirects = parseRedirects(config._redirects ?? "", { htmlHandling: html_handling });
  const parsedHeaders = parseHeaders(config._headers ?? "");
  for (const [file, parsed] of [["_redirects", parsedRedirects], ["_headers", parsedHeaders]]) {
    for (const { line, lineNumber, message } of parsed.invalid) {
      warnings.push(`${file}${lineNumber ? `:${lineNumber}` : ""}: ${message}${line ? ` (${line})` : ""}`);
    }
  }
  const runWorkerFirst = config.run_worker_first ?? false;
  const configuration = {
    compatibility_date: config.compatibility_date,
    compatibility_flags: flags,
    html_handling,
    not_found_handling: config.not_found_handling ?? "none",
    redirects: constructRedirects(parsedRedirects) ?? { version: REDIRECTS_VERSION, staticRules: {}, rules: {} },
    headers: constructHeaders(parsedHeaders) ?? { version: HEADERS_VERSION, rules: {} },
    has_static_routing: Array.isArray(runWorkerFirst),
    debug: false,
  };
  const router = {
    has_user_worker: config.has_user_worker !== false,
    invoke_user_worker_ahead_of_assets: runWorkerFirst === true,
    static_routing: Array.isArray(runWorkerFirst)
      ? {
          user_worker: runWorkerFirst.filter((rule) => rule.startsWith("/")),
          asset_worker: runWorkerFirst.filter((rule) => rule.startsWith("!/")).map((rule) => rule.slice(1)),
        }
      : undefined,
  };
  prepared = { manifest, byHash, configuration, router, warnings, warned: false };
  return prepared;
}

function warnOnce(assets) {
  if (!assets.warned) {
    assets.warned = true;
    for (const warning of assets.warnings) {
      console.warn(`funcplane assets: ignored ${warning}`);
    }
  }
}

const flagIsEnabled = (configuration, flag) => configuration.compatibility_flags.includes(flag.enable);

async function getByETag(env, assets, eTag) {
  const entry = assets.byHash.get(eTag);
  const response = await env.STORE.fetch(`http://store/${eTag.slice(0, 2)}/${eTag}`);
  if (!response.ok || entry === undefined) {
    throw new Error(`Requested asset ${eTag} exists in the asset manifest but not in the store.`);
  }
  return { readableStream: response.body, contentType: entry[2] ?? undefined, size: entry[1] };
}

// ---------------------------------------------------------------- handler.ts
const getResponseOrAssetIntent = async (request, configuration, exists) => {
  const url = new URL(request.url);
  const { search } = url;
  const redirectResult = handleRedirects(request, configuration, url.host, url.pathname, search);
  if (redirectResult instanceof Response) {
    return redirectResult;
  }
  const { proxied, pathname } = redirectResult;
  const decodedPathname = decodePath(pathname);
  const intent = await getIntent(decodedPathname, request, configuration, exists);
  if (!intent) {
    return proxied ? new Response(null, { status: 404, statusText: "Not Found" }) : new NoIntentResponse();
  }
  const method = request.method.toUpperCase();
  if (!["GET", "HEAD"].includes(method)) {
    return new Response(null, { status: 405, statusText: "Method Not Allowed" });
  }
  const decodedDestination = intent.redirect ?? decodedPathname;
  const encodedDestination = encodePath(decodedDestination);
  if ((encodedDestination !== pathname && intent.asset) || intent.redirect) {
    return redirect(307, encodedDestination + search);
  }
  if (!intent.asset) {
    return new Response(null, { status: 500 });
  }
  return { ...intent.asset, resolver: intent.resolver };
};

const resolveAssetIntentToResponse = async (assetIntent, request, env, assets, ctx) => {
  const method = request.method.toUpperCase();
  const asset = await getByETag(env, assets, assetIntent.eTag);
  const headers = getAssetHeaders(assetIntent, asset.contentType, request);
  const strongETag = `"${assetIntent.eTag}"`;
  const weakETag = `W/${strongETag}`;
  const ifNoneMatch = request.headers.get("If-None-Match") || "";
  if ([weakETag, strongETag].includes(ifNoneMatch)) {
    asset.readableStream.cancel();
    return new Response(null, { status: 304, statusText: "Not Modified", headers });
  }
  if (assetIntent.status === 200 && method === "GET") {
    const range = byteRange(request, strongETag, asset.size);
    if (range === "unsatisfiable") {
      asset.readableStream.cancel();
      headers.set("Content-Range", `bytes */${asset.size}`);
      return new Response(null, { status: 416, statusText: "Range Not Satisfiable", headers });
    }
    if (range !== null) {
      const [start, end] = range;
      headers.set("Content-Range", `bytes ${start}-${end}/${asset.size}`);
      return new Response(slice(asset.readableStream, start, end, ctx), { status: 206, statusText: "Partial Content", headers });
    }
  }
  let body = null;
  if (method === "HEAD") {
    asset.readableStream.cancel();
    headers.set("Content-Length", String(asset.size));
  } else {
    // Through a stream of known length, so that the response has a Content-Length.
    const { readable, writable } = new FixedLengthStream(asset.size);
    ctx.waitUntil(asset.readableStream.pipeTo(writable));
    body = readable;
  }
  switch (assetIntent.status) {
    case 404:
      return new Response(body, { status: 404, statusText: "Not Found", headers });
    case 200:
      return new Response(body, { status: 200, headers });
  }
};

// A single "bytes=" range of a file of `size` bytes: [first, last], "unsatisfiable", or
// null (none, several, malformed, or an If-Range that does not match: the whole file).
function byteRange(request, strongETag, size) {
  const header = request.headers.get("Range");
  if (header === null) {
    return null;
  }
  const ifRange = request.headers.get("If-Range");
  if (ifRange !== null && ifRange !== strongETag) {
    return null;
  }
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null || (match[1] === "" && match[2] === "")) {
    return null;
  }
  let start, end;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0) {
      return "unsatisfiable";
    }
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
    if (match[2] !== "" && Number(match[2]) < start) {
      return null;
    }
  }
  if (start >= size) {
    return "unsatisfiable";
  }
  return [start, end];
}

// The bytes first..last of `stream`, as a stream of known length.
function slice(stream, first, last, ctx) {
  const { readable, writable } = new FixedLengthStream(last - first + 1);
  let offset = 0;
  const pump = (async () => {
    const reader = stream.getReader();
    const writer = writable.getWriter();
    try {
      while (offset <= last) {
        const { done, value } = await reader.read();
        if (done) {
          break;
        }
        const from = Math.max(0, first - offset);
        const to = Math.min(value.byteLength, last + 1 - offset);
        offset += value.byteLength;
        if (from < to) {
          await writer.write(value.subarray(from, to));
        }
      }
      await writer.close();
    } catch (error) {
      await writer.abort(error);
    } finally {
      reader.cancel().catch(() => {});
    }
  })();
  ctx.waitUntil(pump);
  return readable;
}

const canFetch = async (request, configuration, exists) => {
  const shouldKeepNotFoundHandling =
    configuration.has_static_routing ||
    (flagIsEnabled(configuration, NAVIGATION_FLAG) && request.headers.get("Sec-Fetch-Mode") === "navigate");
  if (!shouldKeepNotFoundHandling) {
    configuration = { ...configuration, not_found_handling: "none" };
  }
  const responseOrAssetIntent = await getResponseOrAssetIntent(request, configuration, exists);
  return !(responseOrAssetIntent instanceof NoIntentResponse);
};

const handleRequest = async (request, env, assets, ctx) => {
  const configuration = assets.configuration;
  const exists = async (pathname) => assets.manifest.get(pathname)?.[0] ?? null;
  const responseOrAssetIntent = await getResponseOrAssetIntent(request, configuration, exists);
  const response =
    responseOrAssetIntent instanceof Response
      ? responseOrAssetIntent
      : await resolveAssetIntentToResponse(responseOrAssetIntent, request, env, assets, ctx);
  return attachCustomHeaders(request, response, configuration);
};

const getIntent = async (pathname, request, configuration, exists, skipRedirects = false) => {
  switch (configuration.html_handling) {
    case "auto-trailing-slash":
      return htmlHandlingAutoTrailingSlash(pathname, request, configuration, exists, skipRedirects);
    case "force-trailing-slash":
      return htmlHandlingForceTrailingSlash(pathname, request, configuration, exists, skipRedirects);
    case "drop-trailing-slash":
      return htmlHandlingDropTrailingSlash(pathname, request, configuration, exists, skipRedirects);
    case "none":
      return htmlHandlingNone(pathname, request, configuration, exists);
  }
};

const found = (eTag, status = 200, resolver = "html-handling") => ({ asset: { eTag, status }, redirect: null, resolver });

const htmlHandlingAutoTrailingSlash = async (pathname, request, configuration, exists, skipRedirects) => {
  let redirectResult = null;
  let eTagResult = null;
  const safe = (file, destination) => safeRedirect(file, request, destination, configuration, exists, skipRedirects, "html-handling");
  const exactETag = await exists(pathname, request);
  if (pathname.endsWith("/index")) {
    if (exactETag) {
      return found(exactETag);
    } else {
      if ((redirectResult = await safe(`${pathname}.html`, pathname.slice(0, -"index".length)))) {
        return redirectResult;
      } else if ((redirectResult = await safe(`${pathname.slice(0, -"/index".length)}.html`, pathname.slice(0, -"/index".length)))) {
        return redirectResult;
      }
    }
  } else if (pathname.endsWith("/index.html")) {
    if ((redirectResult = await safe(pathname, pathname.slice(0, -"index.html".length)))) {
      return redirectResult;
    } else if ((redirectResult = await safe(`${pathname.slice(0, -"/index.html".length)}.html`, pathname.slice(0, -"/index.html".length)))) {
      return redirectResult;
    }
  } else if (pathname.endsWith("/")) {
    if ((eTagResult = await exists(`${pathname}index.html`, request))) {
      return found(eTagResult);
    } else if ((redirectResult = await safe(`${pathname.slice(0, -"/".length)}.html`, pathname.slice(0, -"/".length)))) {
      return redirectResult;
    }
  } else if (pathname.endsWith(".html")) {
    if ((redirectResult = await safe(pathname, pathname.slice(0, -".html".length)))) {
      return redirectResult;
    } else if ((redirectResult = await safe(`${pathname.slice(0, -".html".length)}/index.html`, `${pathname.slice(0, -".html".length)}/`))) {
      return redirectResult;
    }
  }
  if (exactETag) {
    return found(exactETag);
  } else if ((eTagResult = await exists(`${pathname}.html`, request))) {
    return found(eTagResult);
  } else if ((redirectResult = await safe(`${pathname}/index.html`, `${pathname}/`))) {
    return redirectResult;
  }
  return notFound(pathname, request, configuration, exists);
};

const htmlHandlingForceTrailingSlash = async (pathname, request, configuration, exists, skipRedirects) => {
  let redirectResult = null;
  let eTagResult = null;
  const safe = (file, destination) => safeRedirect(file, request, destination, configuration, exists, skipRedirects, "html-handling");
  const exactETag = await exists(pathname, request);
  if (pathname.endsWith("/index")) {
    if (exactETag) {
      return found(exactETag);
    } else {
      if ((redirectResult = await safe(`${pathname}.html`, pathname.slice(0, -"index".length)))) {
        return redirectResult;
      } else if ((redirectResult = await safe(`${pathname.slice(0, -"/index".length)}.html`, pathname.slice(0, -"index".length)))) {
        return redirectResult;
      }
    }
  } else if (pathname.endsWith("/index.html")) {
    if ((redirectResult = await safe(pathname, pathname.slice(0, -"index.html".length)))) {
      return redirectResult;
    } else if ((redirectResult = await safe(`${pathname.slice(0, -"/index.html".length)}.html`, pathname.slice(0, -"index.html".length)))) {
      return redirectResult;
    }
  } else if (pathname.endsWith("/")) {
    if ((eTagResult = await exists(`${pathname}index.html`, request))) {
      return found(eTagResult);
    } else if ((eTagResult = await exists(`${pathname.slice(0, -"/".length)}.html`, request))) {
      return found(eTagResult);
    }
  } else if (pathname.endsWith(".html")) {
    if ((redirectResult = await safe(pathname, `${pathname.slice(0, -".html".length)}/`))) {
      return redirectResult;
    } else if (exactETag) {
      return found(exactETag);
    } else if ((redirectResult = await safe(`${pathname.slice(0, -".html".length)}/index.html`, `${pathname.slice(0, -".html".length)}/`))) {
      return redirectResult;
    }
  }
  if (exactETag) {
    return found(exactETag);
  } else if ((redirectResult = await safe(`${pathname}.html`, `${pathname}/`))) {
    return redirectResult;
  } else if ((redirectResult = await safe(`${pathname}/index.html`, `${pathname}/`))) {
    return redirectResult;
  }
  return notFound(pathname, request, configuration, exists);
};

const htmlHandlingDropTrailingSlash = async (pathname, request, configuration, exists, skipRedirects) => {
  let redirectResult = null;
  let eTagResult = null;
  const safe = (file, destination) => safeRedirect(file, request, destination, configuration, exists, skipRedirects, "html-handling");
  const exactETag = await exists(pathname, request);
  if (pathname.endsWith("/index")) {
    if (exactETag) {
      return found(exactETag);
    } else {
      if (pathname === "/index") {
        if ((redirectResult = await safe("/index.html", "/"))) {
          return redirectResult;
        }
      } else if ((redirectResult = await safe(`${pathname.slice(0, -"/index".length)}.html`, pathname.slice(0, -"/index".length)))) {
        return redirectResult;
      } else if ((redirectResult = await safe(`${pathname}.html`, pathname.slice(0, -"/index".length)))) {
        return redirectResult;
      }
    }
  } else if (pathname.endsWith("/index.html")) {
    if (pathname === "/index.html") {
      if ((redirectResult = await safe("/index.html", "/"))) {
        return redirectResult;
      }
    } else if ((redirectResult = await safe(pathname, pathname.slice(0, -"/index.html".length)))) {
      return redirectResult;
    } else if (exactETag) {
      return found(exactETag);
    } else if ((redirectResult = await safe(`${pathname.slice(0, -"/index.html".length)}.html`, pathname.slice(0, -"/index.html".length)))) {
      return redirectResult;
    }
  } else if (pathname.endsWith("/")) {
    if (pathname === "/") {
      if ((eTagResult = await exists("/index.html", request))) {
        return found(eTagResult);
      }
    } else if ((redirectResult = await safe(`${pathname.slice(0, -"/".length)}.html`, pathname.slice(0, -"/".length)))) {
      return redirectResult;
    } else if ((redirectResult = await safe(`${pathname.slice(0, -"/".length)}/index.html`, pathname.slice(0, -"/".length)))) {
      return redirectResult;
    }
  } else if (pathname.endsWith(".html")) {
    if ((redirectResult = await safe(pathname, pathname.slice(0, -".html".length)))) {
      return redirectResult;
    } else if ((redirectResult = await safe(`${pathname.slice(0, -".html".length)}/index.html`, pathname.slice(0, -".html".length)))) {
      return redirectResult;
    }
  }
  if (exactETag) {
    return found(exactETag);
  } else if ((eTagResult = await exists(`${pathname}.html`, request))) {
    return found(eTagResult);
  } else if ((eTagResult = await exists(`${pathname}/index.html`, request))) {
    return found(eTagResult);
  }
  return notFound(pathname, request, configuration, exists);
};

const htmlHandlingNone = async (pathname, request, configuration, exists) => {
  const exactETag = await exists(pathname, request);
  if (exactETag) {
    return found(exactETag);
  } else {
    return notFound(pathname, request, configuration, exists);
  }
};

const notFound = async (pathname, request, configuration, exists) => {
  switch (configuration.not_found_handling) {
    case "single-page-application": {
      const eTag = await exists("/index.html", request);
      if (eTag) {
        return found(eTag, 200, "not-found");
      }
      return null;
    }
    case "404-page": {
      let cwd = pathname;
      while (cwd) {
        cwd = cwd.slice(0, cwd.lastIndexOf("/"));
        const eTag = await exists(`${cwd}/404.html`, request);
        if (eTag) {
          return found(eTag, 404, "not-found");
        }
      }
      return null;
    }
    case "none":
    default: {
      return null;
    }
  }
};

const safeRedirect = async (file, request, destination, configuration, exists, skip, resolver) => {
  if (skip) {
    return null;
  }
  if (!(await exists(destination, request))) {
    const intent = await getIntent(destination, request, configuration, exists, true);
    if (intent?.asset && intent.asset.eTag === (await exists(file, request))) {
      return { asset: null, redirect: destination, resolver };
    }
  }
  return null;
};

const decodePath = (pathname) =>
  pathname
    .split("/")
    .map((x) => {
      try {
        return decodeURIComponent(x);
      } catch {
        return x;
      }
    })
    .join("/")
    .replace(/\/+/g, "/");

const encodePath = (pathname) =>
  pathname
    .split("/")
    .map((x) => {
      try {
        return encodeURIComponent(x);
      } catch {
        return x;
      }
    })
    .join("/");

const handleRedirects = (request, configuration, host, pathname, search) => {
  const redirectMatch =
    staticRedirectsMatcher(configuration, host, pathname) || generateRedirectsMatcher(configuration)({ request })[0];
  let proxied = false;
  if (redirectMatch) {
    if (redirectMatch.status === 200) {
      pathname = new URL(redirectMatch.to, request.url).pathname;
      proxied = true;
    } else {
      const { status, to } = redirectMatch;
      const destination = new URL(to, request.url);
      const location =
        destination.origin === new URL(request.url).origin
          ? `${destination.pathname}${destination.search || search}${destination.hash}`
          : `${destination.href.slice(0, destination.href.length - (destination.search.length + destination.hash.length))}${
              destination.search ? destination.search : search
            }${destination.hash}`;
      return redirect([301, 303, 307, 308].includes(status) ? status : 302, location);
    }
  }
  return { proxied, pathname };
};

// ---------------------------------------------------------------- headers.ts
function getAssetHeaders({ eTag }, contentType, request) {
  const headers = new Headers({ ETag: `"${eTag}"` });
  if (contentType !== undefined) {
    headers.append("Content-Type", contentType);
  }
  if (!request.headers.has("Authorization") && !request.headers.has("Range")) {
    headers.append("Cache-Control", CACHE_CONTROL_BROWSER);
  }
  return headers;
}

function attachCustomHeaders(request, response, configuration) {
  const headersMatcher = generateRulesMatcher(
    configuration.headers?.version === HEADERS_VERSION ? configuration.headers.rules : {},
    ({ set = {}, unset = [] }, replacements) => {
      const replacedSet = {};
      Object.entries(set).forEach(([key, value]) => {
        replacedSet[key] = replacer(value, replacements);
      });
      return { set: replacedSet, unset };
    }
  );
  const matches = headersMatcher({ request });
  const setMap = new Set();
  matches.forEach(({ set = {}, unset = [] }) => {
    unset.forEach((key) => {
      response.headers.delete(key);
    });
    Object.entries(set).forEach(([key, value]) => {
      if (setMap.has(key.toLowerCase())) {
        response.headers.append(key, value);
      } else {
        response.headers.set(key, value);
        setMap.add(key.toLowerCase());
      }
    });
  });
  return response;
}

// ---------------------------------------------------------------- router-worker/src/worker.ts
async function route(request, env, ctx) {
  const assets = prepare(env);
  warnOnce(assets);
  const config = assets.router;
  const routeToUserWorker = () => {
    if (!config.has_user_worker) {
      throw new Error("Fetch for user worker without having a user worker binding");
    }
    return env.USER.fetch(request);
  };
  const routeToAssets = () => handleRequest(request, env, assets, ctx);
  if (config.static_routing) {
    if (generateStaticRoutingRuleMatcher(config.static_routing.asset_worker ?? [])({ request })) {
      return routeToAssets();
    }
    if (generateStaticRoutingRuleMatcher(config.static_routing.user_worker ?? [])({ request })) {
      return routeToUserWorker();
    }
  }
  if (config.invoke_user_worker_ahead_of_assets) {
    return routeToUserWorker();
  }
  const exists = async (pathname) => assets.manifest.get(pathname)?.[0] ?? null;
  const assetsExist = await canFetch(
    new Request(request.url, { headers: request.headers, method: request.method }),
    assets.configuration,
    exists
  );
  if (config.has_user_worker && !assetsExist) {
    return routeToUserWorker();
  }
  return routeToAssets();
}

export default {
  fetch(request, env, ctx) {
    return route(request, env, ctx);
  },
};

// What a user worker's assets binding names: the asset worker alone, never the user worker.
export const binding = {
  fetch(request, env, ctx) {
    const assets = prepare(env);
    warnOnce(assets);
    return handleRequest(request, env, assets, ctx);
  },
};
