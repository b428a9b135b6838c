// The client half of a rotation without refused requests (Node 18+, any
// fetch): hold the key in use and the next one, send the one in use, and
// switch when the gateway says so.
//
//   const { RotatingKey } = require("keygate/client");
//   const keys = new RotatingKey(current);         // later: keys.offerNext(newKey)
//   const res = await keys.send((key) => fetch(url, { headers: { authorization: `Bearer ${key}` } }));
//
// - a response with `Deprecation` while a next key is held: the next
//   requests use the next key;
// - the key in use refused as `revoked` or `expired` while a next key is
//   held: the same request again with the next key, kept if it is taken;
// - the next key refused as `unknown` (the gateway has not loaded it yet):
//   the same request again with the previous key; the switch is tried again
//   `retryAfter` ms later.
// No key is ever logged or put in an error by this class.
"use strict";

function refusal(res) {
  if (res.status !== 401) return null;
  const m = /error_description="([a-z_]+)"/.exec(res.headers.get("www-authenticate") || "");
  return m ? m[1] : null;
}

class RotatingKey {
  #current;
  #next;
  #previous = null;
  #notBefore = 0;

  constructor(current, next = null, { retryAfter = 1000 } = {}) {
    this.#current = current;
    this.#next = next;
    this.retryAfter = retryAfter;
    this.switches = 0;
  }

  get inUse() {
    return this.#current;
  }

  offerNext(key) {
    this.#next = key;
  }

  #switch() {
    this.#previous = this.#current;
    this.#current = this.#next;
    this.#next = null;
    this.switches += 1;
  }

  #fallBack() {
    this.#next = this.#current;
    this.#current = this.#previous;
    this.#previous = null;
    this.switches -= 1;
    this.#notBefore = Date.now() + this.retryAfter;
  }

  async send(call) {
    const res = await call(this.#current);
    const why = refusal(res);
    if (why === "unknown" && this.#previous !== null) {
      this.#fallBack();
      return call(this.#current);
    }
    if ((why === "revoked" || why === "expired") && this.#next !== null) {
      this.#switch();
      const again = await call(this.#current);
      if (refusal(again) === "unknown" && this.#previous !== null) {
        this.#fallBack();
        return res;
      }
      return again;
    }
    if (res.headers.get("deprecation") && this.#next !== null && Date.now() >= this.#notBefore) this.#switch();
    return res;
  }

  toJSON() {
    return { switches: this.switches, nextHeld: this.#next !== null };
  }
}

module.exports = { RotatingKey };
