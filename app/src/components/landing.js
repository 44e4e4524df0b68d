// A landing's wasm modules in one download (see landing.rs). Filled in per page by `script`:
// PACK, the page's modules (null on a page that is not lazily loaded); PACK_WITH_MAIN, the same led
// by the main module; MAIN, the main module's path (both null in a development build).
(function () {
  // The script's own requests go to the network: the wrapper below would wait on itself.
  var real = window.fetch;
  var PACK = __PACK__, PACK_WITH_MAIN = __PACK_WITH_MAIN__, MAIN = __MAIN__;
  var wasm = { headers: { "content-type": "application/wasm" } };
  // Cache Storage keeps the main module for later landings (secure contexts only).
  var store = MAIN && typeof caches === "object"
    ? caches.open("enclii-wasm").catch(function () { return null; })
    : Promise.resolve(null);
  // Where the main module comes from: on a lazily loaded page, the Response an earlier page load
  // kept, else its pack when the module can be kept for later landings; otherwise the network (a
  // page without a pack preloads it), and it is kept when it can be.
  var main = !PACK_WITH_MAIN ? Promise.resolve("network") : store.then(function (c) {
    if (!c) return "network";
    return c.match(MAIN).then(function (hit) { return hit || "pack"; });
  }).catch(function () { return "network"; });
  // A page with a pack led by the main module has no preload of it: from the network, it is
  // requested at once instead.
  var early = main.then(function (m) {
    return m === "network" && PACK_WITH_MAIN ? real.call(window, MAIN) : null;
  });
  var pack = main
    .then(function (m) {
      if (!PACK) throw new Error("no landing pack");
      return real.call(window, m === "pack" ? PACK_WITH_MAIN : PACK);
    })
    .then(function (r) { if (!r.ok) throw new Error("landing pack: " + r.status); return r.arrayBuffer(); })
    .then(function (buf) {
      // A 4-byte little-endian length, a JSON index [[file name, length], ...], then the modules.
      var n = new DataView(buf).getUint32(0, true), at = 4 + n, parts = new Map();
      JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n))).forEach(function (e) {
        parts.set(e[0], [at, e[1]]);
        at += e[1];
      });
      return { buf: buf, parts: parts };
    });
  pack.catch(function () {});
  early.catch(function () {});
  // Each module is answered from the pack once; a later fetch of it goes to the network.
  function take(p, name) {
    var part = p.parts.get(name);
    if (!part) return null;
    p.parts.delete(name);
    return p.buf.slice(part[0], part[0] + part[1]);
  }
  function keep(response) {
    store.then(function (c) {
      if (!c || !response.ok) return;
      // Only this release's main module stays.
      c.keys().then(function (keys) {
        keys.forEach(function (k) { if (new URL(k.url).pathname !== MAIN) c.delete(k); });
      });
      return c.put(MAIN, response);
    }).catch(function () {});
  }
  window.fetch = function (input, init) {
    var url = typeof input === "string" || input instanceof URL ? new URL(input, location.href) : null;
    var own = url && url.origin === location.origin;
    var network = function () { return real.call(window, input, init); };
    if (own && MAIN && url.pathname === MAIN) {
      return main.then(function (m) {
        if (typeof m === "object") return m;
        if (m === "network") {
          return early.then(function (r) { early = Promise.resolve(null); return r || network(); }, network)
            .then(function (r) { keep(r.clone()); return r; });
        }
        return pack.then(function (p) {
          var body = take(p, MAIN.slice(MAIN.lastIndexOf("/") + 1));
          if (!body) return network();
          keep(new Response(body.slice(0), wasm));
          return new Response(body, wasm);
        }, network);
      });
    }
    var name = own && /\/(chunk|split)_[^\/]*\.wasm$/.test(url.pathname)
      ? url.pathname.slice(url.pathname.lastIndexOf("/") + 1) : null;
    if (!name) return real.apply(window, arguments);
    return pack.then(function (p) {
      var body = take(p, name);
      return body ? new Response(body, wasm) : network();
    }, network);
  };
})();
