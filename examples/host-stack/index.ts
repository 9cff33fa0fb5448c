// A second Pulumi project that configures hosts from the nix-cache stack: it reads the cache's outputs with a
// StackReference (no copied text, no files) and exports what a host's configuration needs. Teams whose hosts
// are Pulumi-managed feed these outputs on into their host resources (a NixOS image, a cloud-init file, ...).
//   pulumi config set cacheStack organization/nix-cache/homelab
//   pulumi up
import * as pulumi from "@pulumi/pulumi";
// The generators host-config uses, so this stack and `npm run host-config` produce the same text.
// Copying this example out of the repository? Copy lib/ along (the builder module reads lib/hosts/sh/*.sh at run
// time; package.json has the esbuild it bundles the GC with).
import { builderModule as builderModuleText } from "../../lib/hosts/builderModule";
import { gcTimerInputOf } from "../../lib/hosts/hostFiles";

const config = new pulumi.Config();
const cache = new pulumi.StackReference(config.require("cacheStack"));

/** A non-secret string output of the cache stack; fails the update when the stack lacks it. */
const cacheOutput = (name: string): pulumi.Output<string> => cache.requireOutput(name).apply((v: unknown) => String(v));

/** HTTP(S) URL the hosts substitute from. */
export const substituterUrl = cacheOutput("substituterUrl");
/** The active key: the one the cache's builder signs with first. */
export const publicKey = cacheOutput("publicKey");
/** Every key hosts trust the cache's signatures with, the active first, then the keys kept during a rotation
 *  (nix-cache:previousKeyNames); a cache stack deployed before key sets has only publicKey. */
export const trustedPublicKeys = pulumi
  .all([cache.getOutput("trustedPublicKeys"), publicKey])
  .apply(([keys, key]: [unknown, string]) =>
    Array.isArray(keys) && keys.length > 0 && keys.every((k) => typeof k === "string") ? (keys as string[]) : [key],
  );
/** The `s3://` URL the builder pushes to. */
export const pushUrl = cacheOutput("pushUrl");
/** The client NixOS module: the same text as the cache stack's nixosModule output and nix-cache.nix. */
export const nixosModule = cacheOutput("nixosModule");
/** PEM of the CA that signed MinIO's certificate ("" when it has a publicly trusted one, or serves http). Both
 *  modules already carry it as security.pki.certificates; hosts that are not NixOS add it to their CA bundle. */
export const caCertificate = cache.getOutput("caCertificate").apply((v: unknown) => (typeof v === "string" ? v : ""));
/** The builder NixOS module: the same text as nix-cache-builder.nix, the daily GC included (retention=gc). It
 *  takes secrets by path only. */
export const builderModule = pulumi
  .all([pushUrl, publicKey, trustedPublicKeys, caCertificate, cache.getOutput("gcAccessKey"), cache.getOutput("retainDays")])
  .apply(([url, key, keys, ca, gcAccessKey, retainDays]: [string, string, string[], string, unknown, unknown]) =>
    builderModuleText({
      pushUrl: url,
      publicKey: key,
      trustedPublicKeys: keys,
      caCertificate: ca || undefined,
      // The GC's user and retention, as host-config reads them; a cache stack without a GC identity has none.
      gc: gcTimerInputOf({
        pushUrl: url,
        ...(typeof gcAccessKey === "string" ? { gcAccessKey } : {}),
        ...(typeof retainDays === "number" ? { retainDays } : {}),
      }),
    }),
  );
// The signing keys and the builder's credentials stay in the cache stack: read them there with
// `cache.requireOutput("secretKeys")` (every key, the active first; "secretKey" is the active one) only to hand
// them to a secret store; the output stays a Pulumi secret.
