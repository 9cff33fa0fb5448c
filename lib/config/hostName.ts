// The host names a private cache gives read-proxy tokens to (nix-cache:readerHosts): each is a netrc login and the
// first field of the proxy's tokens file, so DNS-like and lower case: no '_', ':' or white space. Pure; node
// built-ins only (the proxy's host script bundles it).

const LABEL = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
const HOST_NAME = new RegExp(`^${LABEL}(\\.${LABEL})*$`);

/** What a host name may be, for error messages. */
export const HOST_NAME_RULE = "host names of lower-case letters, digits, '-' and '.' (like DNS names: no '_', ':' or white space)";

export const isHostName = (name: string): boolean => name.length <= 253 && HOST_NAME.test(name);
