// What a framework adapter hands the application for a forwarded request
// (no secret in it); one definition for the Node and the web package.
function principalOf(a) {
  return { principal: a.principal, keyId: a.keyId, scopes: a.scopes, outcome: a.outcome, deprecated: a.outcome === "valid_deprecated" };
}
