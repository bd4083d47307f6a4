// The notebook widget's URL choice (js/widget/src/url.js, SPEC §6.8): loopback detection,
// the jupyter-server-proxy URL, when the proxy is preferred, the probe order of chooseUrl
// and the notebook's base URL.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { chooseUrl, healthOf, isLoopbackUrl, jupyterBaseUrl, preferProxy, proxyUrl } from "../widget/src/url.js";

const QUERY = "?jupyter=true&viewerId=0123456789abcdef&viewerToken=0123456789abcdef0123456789abcdef&anndata=true";
const DIRECT = `http://127.0.0.1:8765/${QUERY}`;

function page(href) {
  const url = new URL(href);
  return { href, origin: url.origin, protocol: url.protocol, hostname: url.hostname };
}

const LOCAL_LAB = page("http://localhost:8888/lab/tree/a.ipynb");
const HUB = page("https://hub.example.org/user/me/lab");
const REMOTE_HTTP = page("http://10.1.2.3:8888/notebooks/a.ipynb");

/** A probe that answers from `answers` (health URL -> bool) and records every call. */
function fakeProbe(answers = {}) {
  const calls = [];
  const probe = async (url) => {
    calls.push(url);
    return Boolean(answers[url]);
  };
  return { probe, calls };
}

describe("isLoopbackUrl", () => {
  for (const url of ["http://127.0.0.1:8765/?a=1", "http://localhost:8765/", "http://localhost/", "http://127.0.0.1/x"]) {
    test(`${url} is loopback`, () => assert.equal(isLoopbackUrl(url), true));
  }
  for (const url of [
    "https://127.0.0.1:8765/",
    "https://localhost:8765/",
    "http://127.0.0.1.example.org/",
    "http://localhost.example.org:8765/",
    "http://localhost",
    "http://10.0.0.1:8765/",
    "http://[::1]:8765/",
    "https://abc-8765-colab.googleusercontent.com/",
    "",
    null,
    undefined,
  ]) {
    test(`${url} is not loopback`, () => assert.equal(isLoopbackUrl(url), false));
  }
});

describe("proxyUrl", () => {
  for (const baseUrl of ["/user/me/", "/user/me", "user/me/", "user/me"]) {
    test(`base ${JSON.stringify(baseUrl)} gets exactly one slash on each side`, () => {
      assert.equal(
        proxyUrl(DIRECT, { location: HUB, baseUrl, port: 8765 }),
        `https://hub.example.org/user/me/proxy/8765/${QUERY}`,
      );
    });
  }
  for (const baseUrl of ["/", "", undefined, null]) {
    test(`base ${JSON.stringify(baseUrl)} means the root`, () => {
      assert.equal(proxyUrl(DIRECT, { location: LOCAL_LAB, baseUrl, port: 9001 }), `http://localhost:8888/proxy/9001/${QUERY}`);
    });
  }
  test("keeps the query of direct and drops its path", () => {
    const url = proxyUrl("http://127.0.0.1:8765/some/page?x=1&y=2", { location: HUB, baseUrl: "/", port: 8765 });
    assert.equal(url, "https://hub.example.org/proxy/8765/?x=1&y=2");
  });
});

describe("preferProxy", () => {
  test("a loopback page over http uses the direct URL", () => {
    assert.equal(preferProxy(DIRECT, LOCAL_LAB), false);
    assert.equal(preferProxy(DIRECT, page("http://127.0.0.1:8888/lab")), false);
    assert.equal(preferProxy(DIRECT, page("http://[::1]:8888/lab")), false);
  });
  test("an https page prefers the proxy, even on localhost", () => {
    assert.equal(preferProxy(DIRECT, HUB), true);
    assert.equal(preferProxy(DIRECT, page("https://localhost:8888/lab")), true);
  });
  test("a page on another host prefers the proxy", () => {
    assert.equal(preferProxy(DIRECT, REMOTE_HTTP), true);
  });
  test("a direct URL that is not loopback is never replaced", () => {
    assert.equal(preferProxy("https://abc-8765-colab.googleusercontent.com/?jupyter=true", HUB), false);
    assert.equal(preferProxy("http://10.1.2.3:8765/?jupyter=true", REMOTE_HTTP), false);
  });
});

describe("healthOf", () => {
  test("is in the page directory, without the query", () => {
    assert.equal(healthOf(DIRECT), "http://127.0.0.1:8765/_cellucid/health");
    assert.equal(
      healthOf(`https://hub.example.org/user/me/proxy/8765/${QUERY}`),
      "https://hub.example.org/user/me/proxy/8765/_cellucid/health",
    );
  });
});

describe("chooseUrl", () => {
  const LOCAL_PROXY_HEALTH = "http://localhost:8888/proxy/8765/_cellucid/health";
  const HUB_PROXY_HEALTH = "https://hub.example.org/user/me/proxy/8765/_cellucid/health";

  test("without a viewer URL there is nothing to load", async () => {
    const { probe, calls } = fakeProbe();
    const choice = await chooseUrl({ direct: "", port: 8765, location: LOCAL_LAB, probe });
    assert.equal(choice.url, null);
    assert.match(choice.reason, /viewer URL/);
    assert.deepEqual(calls, []);
  });

  test("a fixed URL (CELLUCID_CLIENT_SERVER_URL, Colab) skips the proxy", async () => {
    const { probe, calls } = fakeProbe({ [HUB_PROXY_HEALTH]: true });
    const direct = `https://mine.example.org/cellucid/${QUERY}`;
    const choice = await chooseUrl({ direct, port: 8765, location: HUB, baseUrl: "/user/me/", probe, fixed: true });
    assert.deepEqual(choice, { url: direct, via: "direct" });
    assert.deepEqual(calls, []);
  });

  test("a local page tries the proxy first and uses it when it answers", async () => {
    const { probe, calls } = fakeProbe({ [LOCAL_PROXY_HEALTH]: true });
    const choice = await chooseUrl({ direct: DIRECT, port: 8765, location: LOCAL_LAB, baseUrl: "/", probe });
    assert.deepEqual(choice, { url: `http://localhost:8888/proxy/8765/${QUERY}`, via: "proxy" });
    assert.deepEqual(calls, [LOCAL_PROXY_HEALTH]);
  });

  test("a local page falls back to the direct URL", async () => {
    const { probe, calls } = fakeProbe();
    const choice = await chooseUrl({ direct: DIRECT, port: 8765, location: LOCAL_LAB, baseUrl: "/", probe });
    assert.deepEqual(choice, { url: DIRECT, via: "direct" });
    assert.deepEqual(calls, [LOCAL_PROXY_HEALTH]);
  });

  test("a hub page uses the proxy under its base URL", async () => {
    const { probe, calls } = fakeProbe({ [HUB_PROXY_HEALTH]: true });
    const choice = await chooseUrl({ direct: DIRECT, port: 8765, location: HUB, baseUrl: "/user/me/", probe });
    assert.deepEqual(choice, { url: `https://hub.example.org/user/me/proxy/8765/${QUERY}`, via: "proxy" });
    assert.deepEqual(calls, [HUB_PROXY_HEALTH]);
  });

  for (const location of [HUB, REMOTE_HTTP]) {
    test(`${location.href} without a proxy explains what to do instead of loading an unreachable URL`, async () => {
      const { probe, calls } = fakeProbe();
      const choice = await chooseUrl({ direct: DIRECT, port: 8765, location, baseUrl: "/user/me/", probe });
      assert.equal(choice.url, null);
      assert.equal(calls.length, 1, "the direct loopback URL is not probed: it cannot work here");
      assert.match(choice.reason, /jupyter-server-proxy/);
      assert.match(choice.reason, /CELLUCID_CLIENT_SERVER_URL/);
      assert.match(choice.reason, /debug_connection\(\)/);
      assert.match(choice.reason, /http:\/\/127\.0\.0\.1:8765/);
      assert.ok(!choice.reason.includes("viewerToken"), "the token stays out of the message");
    });
  }

  test("a file: page on a loopback host loads the direct URL without probing", async () => {
    const { probe, calls } = fakeProbe();
    const location = { href: "file:///tmp/a.html", origin: "null", protocol: "file:", hostname: "localhost" };
    const choice = await chooseUrl({ direct: DIRECT, port: 8765, location, probe });
    assert.deepEqual(choice, { url: DIRECT, via: "direct" });
    assert.deepEqual(calls, []);
  });

  test("a non-loopback direct URL is used when the proxy does not answer", async () => {
    const { probe, calls } = fakeProbe();
    const direct = `http://10.1.2.3:8765/${QUERY}`;
    const choice = await chooseUrl({ direct, port: 8765, location: REMOTE_HTTP, probe });
    assert.deepEqual(choice, { url: direct, via: "direct" });
    assert.deepEqual(calls, ["http://10.1.2.3:8888/proxy/8765/_cellucid/health"]);
  });
});

describe("jupyterBaseUrl", () => {
  function fakeDocument({ config = null, baseAttr = null } = {}) {
    return {
      getElementById: (id) => (id === "jupyter-config-data" && config !== null ? { textContent: config } : null),
      body: { getAttribute: (name) => (name === "data-base-url" ? baseAttr : null) },
    };
  }

  test("JupyterLab's page config wins", () => {
    const doc = fakeDocument({ config: JSON.stringify({ baseUrl: "/user/me/", other: 1 }), baseAttr: "/classic/" });
    assert.equal(jupyterBaseUrl(doc), "/user/me/");
  });
  test("the classic notebook's data-base-url comes next", () => {
    assert.equal(jupyterBaseUrl(fakeDocument({ baseAttr: "/hub/user/x/" })), "/hub/user/x/");
    assert.equal(jupyterBaseUrl(fakeDocument({ config: JSON.stringify({ baseUrl: "" }), baseAttr: "/x/" })), "/x/");
    assert.equal(jupyterBaseUrl(fakeDocument({ config: "{}", baseAttr: "/x/" })), "/x/");
  });
  test("otherwise the root", () => {
    assert.equal(jupyterBaseUrl(fakeDocument()), "/");
    assert.equal(jupyterBaseUrl(fakeDocument({ config: JSON.stringify({ baseUrl: 42 }) })), "/");
    assert.equal(jupyterBaseUrl({ getElementById: () => null, body: null }), "/");
    assert.equal(jupyterBaseUrl(), "/", "node has no document");
  });
});
