export { Keygate, KeygateOptions, KeygatePrincipal, principalOf } from "./types";
