// Reads the stack config, builds the cache, exports what host configs consume.
import * as pulumi from "@pulumi/pulumi";
// The library's public entry (package.json main), as any other program imports it: docs/library.md.
import { CONFIG_NAMESPACE, NixCache, parseSettings, RawSettings, SETTING_KEYS } from "./components";

const config = new pulumi.Config(CONFIG_NAMESPACE);
const raw: RawSettings = Object.fromEntries(SETTING_KEYS.map((k) => [k, config.get(k)]));
// Bad settings stop the program here, before any resource is declared or any request reaches MinIO.
const settings = parseSettings(raw);
// The providers read the admin credentials from the config themselves; fail early if they are missing.
config.require("adminUser");
config.requireSecret("adminPassword");

const cache = new NixCache("nix-cache", {
  ...settings,
  // Unset names are defaults the component derives from the bucket, keeping a name the stack already has.
  builderUser: settings.builderUserDefaulted ? undefined : settings.builderUser,
  gcUser: settings.gcUserDefaulted ? undefined : settings.gcUser,
  // Secret settings stay secrets from here on (state, outputs, logs).
  importKeys: settings.importKeys.length > 0 ? pulumi.secret(settings.importKeys) : undefined,
  builderPassword: settings.builderPassword === undefined ? undefined : pulumi.secret(settings.builderPassword),
});

export const substituterUrl = cache.substituterUrl;
export const publicKey = cache.publicKey;
export const secretKey = cache.secretKey;
export const trustedPublicKeys = cache.trustedPublicKeys;
export const secretKeys = cache.secretKeys;
export const builderAccessKey = cache.builderAccessKey;
export const builderSecretKey = cache.builderSecretKey;
export const awsCredentials = cache.awsCredentials;
export const gcAccessKey = cache.gcAccessKey;
export const gcSecretKey = cache.gcSecretKey;
export const gcCredentials = cache.gcCredentials;
export const retention = cache.retention;
export const retainDays = cache.retainDays;
export const nixosModule = cache.nixosModule;
export const pushUrl = cache.pushUrl;
export const signCommand = cache.signCommand;
export const pushCommand = cache.pushCommand;
export const caCertificate = cache.caCertificate;
export const access = cache.access;
// A private cache's read side (absent for a public one): the S3 reader, the read proxy's tokens and modules.
export const readerAccessKey = cache.reader?.accessKey;
export const readerSecretKey = cache.reader?.secretKey;
export const readerCredentials = cache.reader?.credentials;
export const readerSubstituterUrl = cache.reader?.substituterUrl;
export const readerTokens = cache.reader?.tokens;
export const netrc = cache.reader?.netrc;
export const proxyUrl = cache.reader?.proxyUrl;
export const proxyTokenHashes = cache.reader?.proxyTokenHashes;
export const proxyClientModule = cache.reader?.proxyClientModule;
